"""A withdrawal recorded in error can be corrected: the correction's own append-only record,
and recall notices that a correction cancels before the recipient answered.

Revision ID: c0ec7ed1a001
Revises: 5a1f0c3e9b17
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = 'c0ec7ed1a001'
down_revision = '5a1f0c3e9b17'
branch_labels = None
depends_on = None

TABLE = "consent_withdrawal_correction"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('withdrawal_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('recorded_by', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', biobank.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['withdrawal_id'], ['consent_withdrawal.id'],
                                name=op.f('fk_consent_withdrawal_correction_withdrawal_id_consent_withdrawal')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_withdrawal_correction')),
        sa.UniqueConstraint('withdrawal_id',
                            name=op.f('uq_consent_withdrawal_correction_withdrawal_id')),
    )
    with op.batch_alter_table("recall_notice") as batch:
        batch.add_column(sa.Column("cancelled_at", biobank.db.UTCDateTime(), nullable=True))
    # Append-only like the rest of the consent record (the function exists on PostgreSQL
    # since the consent migration).
    postgres = op.get_bind().dialect.name == "postgresql"
    for verb in ("UPDATE", "DELETE"):
        if postgres:
            op.execute(f"CREATE TRIGGER {TABLE}_no_{verb.lower()} BEFORE {verb} ON {TABLE} "
                       "FOR EACH ROW EXECUTE FUNCTION consent_append_only()")
        else:
            op.execute(f"CREATE TRIGGER {TABLE}_no_{verb.lower()} BEFORE {verb} ON {TABLE} "
                       f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER {TABLE}_no_{verb}" + (f" ON {TABLE}" if postgres else ""))
    with op.batch_alter_table("recall_notice") as batch:
        batch.drop_column("cancelled_at")
    op.drop_table(TABLE)
