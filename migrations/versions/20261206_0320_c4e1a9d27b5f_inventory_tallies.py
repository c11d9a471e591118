"""Inventory tallies: tubes per month, site, material, aliquot type and flow, and tubes held
per freeze–thaw count, kept by triggers (biobank.reports.tally) and filled from the tubes and
the custody log already there; an index on sample for the completeness report.

Inventory over time reads them instead of grouping a million tubes and their custody events
per request. The backfill dates each flow by its custody event; a tube no longer held left the
stock in the month of its last status change (its creation month when the log has none).

Revision ID: c4e1a9d27b5f
Revises: c0ec7ed1a002
Create Date: 2026-12-06 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from biobank.reports import tally

revision = 'c4e1a9d27b5f'
down_revision = 'c0ec7ed1a002'
branch_labels = None
depends_on = None

HOUSE = "('available', 'blocked', 'reserved')"
LEAVING = ("'shipped', 'returned', 'consumed', 'destroyed', 'marked_missing', 'found', "
           "'blocked', 'unblocked', 'made_available'")
FLOWS = "'shipped', 'returned', 'consumed', 'destroyed', 'marked_missing', 'found', 'blocked', " \
        "'unblocked'"
MONTH = {"sqlite": "strftime('%Y-%m', {0})", "postgresql": "to_char({0}, 'YYYY-MM')"}
TUBES = ("FROM aliquot a JOIN sample s ON s.id = a.sample_id "
         "LEFT JOIN patient p ON p.id = s.patient_id")
KEY = "coalesce(p.site_id, 0), s.material_id, a.aliquot_type_id"


def upgrade() -> None:
    op.create_table(
        "inventory_tally",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("site_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("material_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("aliquot_type_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tubes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month", "site_id", "material_id", "aliquot_type_id", "kind",
                                name=op.f("pk_inventory_tally")),
        sqlite_with_rowid=False)
    op.create_table(
        "thaw_tally",
        sa.Column("site_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("material_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("aliquot_type_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("freeze_thaw_count", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tubes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "material_id", "aliquot_type_id",
                                "freeze_thaw_count", name=op.f("pk_thaw_tally")),
        sqlite_with_rowid=False)
    op.create_index("ix_sample_completeness", "sample",
                    ["timepoint_id", "material_id", "patient_id"])
    dialect = op.get_bind().dialect.name
    month = MONTH[dialect]
    created, occurred = month.format("a.created_at"), month.format("e.occurred_at")
    left = month.format(f"(SELECT max(occurred_at) FROM custody_event WHERE aliquot_id = a.id "
                        f"AND event_type IN ({LEAVING}))")
    op.execute(f"INSERT INTO inventory_tally (month, site_id, material_id, aliquot_type_id, "
               f"kind, tubes) SELECT {created}, {KEY}, 'received', count(*) {TUBES} "
               f"GROUP BY {created}, {KEY}")
    op.execute(f"INSERT INTO inventory_tally (month, site_id, material_id, aliquot_type_id, "
               f"kind, tubes) SELECT {occurred}, {KEY}, "
               f"CASE e.event_type WHEN 'marked_missing' THEN 'missing' ELSE e.event_type END, "
               f"count(*) FROM custody_event e JOIN aliquot a ON a.id = e.aliquot_id "
               f"JOIN sample s ON s.id = a.sample_id LEFT JOIN patient p ON p.id = s.patient_id "
               f"WHERE e.event_type IN ({FLOWS}) GROUP BY {occurred}, {KEY}, e.event_type")
    op.execute(f"INSERT INTO inventory_tally (month, site_id, material_id, aliquot_type_id, "
               f"kind, tubes) SELECT month, site_id, material_id, aliquot_type_id, 'in_stock', "
               f"sum(delta) FROM ("
               f"SELECT {created} AS month, coalesce(p.site_id, 0) AS site_id, "
               f"s.material_id AS material_id, a.aliquot_type_id AS aliquot_type_id, "
               f"1 AS delta {TUBES} "
               f"UNION ALL SELECT coalesce({left}, {created}), {KEY}, -1 {TUBES} "
               f"WHERE a.status NOT IN {HOUSE}) moves "
               f"GROUP BY month, site_id, material_id, aliquot_type_id")
    op.execute(f"INSERT INTO thaw_tally (site_id, material_id, aliquot_type_id, "
               f"freeze_thaw_count, tubes) SELECT {KEY}, a.freeze_thaw_count, count(*) {TUBES} "
               f"WHERE a.status IN {HOUSE} GROUP BY {KEY}, a.freeze_thaw_count")
    for statement in tally.create_statements(dialect, pausable=False):
        op.execute(statement)


def downgrade() -> None:
    for statement in tally.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("thaw_tally")
    op.drop_table("inventory_tally")
    op.drop_index("ix_sample_completeness", table_name="sample")
