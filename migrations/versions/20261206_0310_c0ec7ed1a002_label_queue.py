"""Labels queued at the bench for a printer that did not answer, printed when it does.

Revision ID: c0ec7ed1a002
Revises: c0ec7ed1a001
Create Date: 2026-12-06 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = 'c0ec7ed1a002'
down_revision = 'c0ec7ed1a001'
branch_labels = None
depends_on = None

WAITING = "printed_at IS NULL AND cancelled_at IS NULL"


def upgrade() -> None:
    op.create_table(
        'label_queue',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('printer_id', sa.Integer(), nullable=False),
        sa.Column('aliquot_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=True),
        sa.Column('queued_by', sa.String(length=64), nullable=False),
        sa.Column('queued_at', biobank.db.UTCDateTime(), nullable=False),
        sa.Column('printed_at', biobank.db.UTCDateTime(), nullable=True),
        sa.Column('print_job_id', sa.Integer(), nullable=True),
        sa.Column('cancelled_at', biobank.db.UTCDateTime(), nullable=True),
        sa.Column('cancelled_by', sa.String(length=64), nullable=True),
        sa.CheckConstraint('printed_at IS NULL OR cancelled_at IS NULL',
                           name=op.f('ck_label_queue_one_ending')),
        sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'],
                                name=op.f('fk_label_queue_aliquot_id_aliquot')),
        sa.ForeignKeyConstraint(['print_job_id'], ['print_job.id'],
                                name=op.f('fk_label_queue_print_job_id_print_job')),
        sa.ForeignKeyConstraint(['printer_id'], ['label_printer.id'],
                                name=op.f('fk_label_queue_printer_id_label_printer')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_label_queue')),
    )
    op.create_index('uq_label_queue_waiting', 'label_queue', ['printer_id', 'aliquot_id'],
                    unique=True, sqlite_where=sa.text(WAITING),
                    postgresql_where=sa.text(WAITING))


def downgrade() -> None:
    op.drop_index('uq_label_queue_waiting', table_name='label_queue')
    op.drop_table('label_queue')
