"""Rack scans: the findings (rack code mismatch, unknown tubes, unreadable wells) the person
confirming acknowledged.

Revision ID: a16c1a1e0002
Revises: a16c1a1e0001
Create Date: 2026-12-01 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'a16c1a1e0002'
down_revision = 'a16c1a1e0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rack_scan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rack_scan', schema=None) as batch_op:
        batch_op.drop_column('acknowledged')
