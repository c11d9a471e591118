"""Web sessions and login throttle: browser logins and the delay after failed ones.

``web_session`` keeps only the SHA-256 of the secret a browser's cookie carries, so a
logout or a deactivation ends the session at once. ``login_throttle`` counts failed logins
per username and address in the database, so every gunicorn worker applies the same delay.

Revision ID: 86b1cfdb8ee1
Revises: 3e727975deed
Create Date: 2026-11-21 15:48:53.423359
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = '86b1cfdb8ee1'
down_revision = '3e727975deed'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_throttle',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failed_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('locked_until', biobank.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('username', 'address', name=op.f('pk_login_throttle'))
    )
    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttle_last_failed_at'), ['last_failed_at'], unique=False)

    op.create_table('web_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', biobank.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_web_session_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_web_session_token_hash'))
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_user_id'))
    op.drop_table('web_session')

    with op.batch_alter_table('login_throttle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttle_last_failed_at'))
    op.drop_table('login_throttle')
