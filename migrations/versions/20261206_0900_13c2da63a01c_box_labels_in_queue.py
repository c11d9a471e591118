"""Box labels in the label queue: every print writes its labels there before the bytes go
(biobank/labels/printing.py), box labels too. A queued label is a tube's or a box's.

Revision ID: 13c2da63a01c
Revises: e6b8c4d2f012
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '13c2da63a01c'
down_revision = 'e6b8c4d2f012'
branch_labels = None
depends_on = None

WAITING = "printed_at IS NULL AND cancelled_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("label_queue") as batch:
        batch.alter_column("aliquot_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("container_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_label_queue_container_id_storage_container"),
                                 "storage_container", ["container_id"], ["id"])
        batch.create_check_constraint(op.f("ck_label_queue_one_label"),
                                      "(aliquot_id IS NULL) <> (container_id IS NULL)")
    op.create_index("uq_label_queue_waiting_box", "label_queue", ["printer_id", "container_id"],
                    unique=True, sqlite_where=sa.text(WAITING),
                    postgresql_where=sa.text(WAITING))


def downgrade() -> None:
    # The old queue holds tubes' labels only: box labels go (refused unless --force when
    # any are there: the column held values).
    op.execute("DELETE FROM label_queue WHERE container_id IS NOT NULL")
    op.drop_index("uq_label_queue_waiting_box", table_name="label_queue")
    with op.batch_alter_table("label_queue") as batch:
        batch.drop_constraint(op.f("ck_label_queue_one_label"), type_="check")
        batch.drop_constraint(op.f("fk_label_queue_container_id_storage_container"),
                              type_="foreignkey")
        batch.drop_column("container_id")
        batch.alter_column("aliquot_id", existing_type=sa.Integer(), nullable=False)
