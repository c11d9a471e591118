"""The CSV import counts its tubes into the inventory tallies itself, one grouped statement
per chunk: the aliquot insert trigger (four statements per row) is held back meanwhile by a
row of ``tally_pause`` that the import's transaction inserts and deletes (biobank.reports.tally).

Revision ID: d5a7b3c1e901
Revises: b2971a75068c
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from biobank.reports import tally

revision = 'd5a7b3c1e901'
down_revision = 'b2971a75068c'
branch_labels = None
depends_on = None

INSERT_TRIGGER = ("inventory_tally_aliquot_insert",)


def _insert_trigger(pausable: bool) -> None:
    dialect = op.get_bind().dialect.name
    for statement in tally.drop_statements(dialect, INSERT_TRIGGER):
        op.execute(statement)
    for statement in tally.create_statements(dialect, pausable, INSERT_TRIGGER):
        op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "tally_pause",
        sa.Column("holder", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_tally_pause")))
    _insert_trigger(pausable=True)


def downgrade() -> None:
    _insert_trigger(pausable=False)
    op.drop_table("tally_pause")
