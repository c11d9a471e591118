"""A box may hold tubes of other types or temperatures only when a manager allows it.

Revision ID: 5a1f0c3e9b17
Revises: a7c3e51d9b20
Create Date: 2026-12-05 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '5a1f0c3e9b17'
down_revision = 'a7c3e51d9b20'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("storage_container") as batch:
        batch.add_column(sa.Column("mixing_allowed", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("storage_container") as batch:
        batch.drop_column("mixing_allowed")
