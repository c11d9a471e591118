"""Sample requests: the request, the tubes allocated to it (a partial unique index holds
each tube for one open request at most), the shipment; and a covering index on aliquot
(status, sample, type, freeze-thaw, volume) that lets availability count a million tubes
without reading the table.

Revision ID: cd4354a29f1c
Revises: 57e43929f3be
Create Date: 2026-11-21 16:42:38.096145
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = 'cd4354a29f1c'
down_revision = '57e43929f3be'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sample_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('substudy_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('criteria', sa.JSON(), nullable=False),
    sa.Column('approved_criteria', sa.JSON(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('submitted_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('decision_reason', sa.String(length=200), nullable=True),
    sa.Column('allocated_by', sa.String(length=64), nullable=True),
    sa.Column('allocated_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('allocation_summary', sa.JSON(), nullable=True),
    sa.Column('cancelled_by', sa.String(length=64), nullable=True),
    sa.Column('cancelled_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('cancel_reason', sa.String(length=200), nullable=True),
    sa.Column('closed_by', sa.String(length=64), nullable=True),
    sa.Column('closed_at', biobank.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("state <> 'cancelled' OR cancel_reason IS NOT NULL", name=op.f('ck_sample_request_cancel_reason')),
    sa.CheckConstraint("state <> 'rejected' OR decision_reason IS NOT NULL", name=op.f('ck_sample_request_rejection_reason')),
    sa.CheckConstraint("state IN ('draft', 'submitted', 'approved', 'rejected', 'allocated', 'picking', 'shipped', 'received', 'closed', 'cancelled')", name=op.f('ck_sample_request_state')),
    sa.ForeignKeyConstraint(['substudy_id'], ['substudy.id'], name=op.f('fk_sample_request_substudy_id_substudy')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample_request')),
    sa.UniqueConstraint('number', name=op.f('uq_sample_request_number'))
    )
    with op.batch_alter_table('sample_request', schema=None) as batch_op:
        batch_op.create_index('ix_sample_request_substudy_state', ['substudy_id', 'state'], unique=False)

    op.create_table('request_shipment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('courier', sa.String(length=64), nullable=False),
    sa.Column('tracking_number', sa.String(length=64), nullable=False),
    sa.Column('condition', sa.String(length=32), nullable=False),
    sa.Column('recipient_name', sa.String(length=200), nullable=False),
    sa.Column('recipient_institution', sa.String(length=200), nullable=False),
    sa.Column('recipient_address', sa.Text(), nullable=False),
    sa.Column('shipped_by', sa.String(length=64), nullable=False),
    sa.Column('shipped_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('received_by', sa.String(length=64), nullable=True),
    sa.Column('received_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('receipt_note', sa.String(length=200), nullable=True),
    sa.CheckConstraint("condition IN ('dry_ice', 'ln2_dry_shipper', 'ambient')", name=op.f('ck_request_shipment_condition')),
    sa.ForeignKeyConstraint(['request_id'], ['sample_request.id'], name=op.f('fk_request_shipment_request_id_sample_request')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_shipment')),
    sa.UniqueConstraint('request_id', name=op.f('uq_request_shipment_request_id'))
    )
    op.create_table('request_aliquot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('allocated_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('picked_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('picked_by', sa.String(length=64), nullable=True),
    sa.Column('discrepancy', sa.String(length=200), nullable=True),
    sa.Column('updated_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("state <> 'dropped' OR reason IS NOT NULL", name=op.f('ck_request_aliquot_dropped_reason')),
    sa.CheckConstraint("state IN ('allocated', 'picked', 'dropped', 'shipped', 'received', 'consumed', 'returned', 'destroyed')", name=op.f('ck_request_aliquot_state')),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_request_aliquot_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['request_id'], ['sample_request.id'], name=op.f('fk_request_aliquot_request_id_sample_request')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_aliquot'))
    )
    with op.batch_alter_table('request_aliquot', schema=None) as batch_op:
        batch_op.create_index('uq_request_aliquot_held', ['aliquot_id'], unique=True, sqlite_where=sa.text("state IN ('allocated', 'picked')"), postgresql_where=sa.text("state IN ('allocated', 'picked')"))
        batch_op.create_index('uq_request_aliquot_request_aliquot', ['request_id', 'aliquot_id'], unique=True)

    with op.batch_alter_table('aliquot', schema=None) as batch_op:
        batch_op.create_index('ix_aliquot_available_sample', ['status', 'sample_id', 'aliquot_type_id', 'freeze_thaw_count', 'volume_remaining_ml'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('aliquot', schema=None) as batch_op:
        batch_op.drop_index('ix_aliquot_available_sample')

    with op.batch_alter_table('request_aliquot', schema=None) as batch_op:
        batch_op.drop_index('uq_request_aliquot_request_aliquot')
        batch_op.drop_index('uq_request_aliquot_held', sqlite_where=sa.text("state IN ('allocated', 'picked')"), postgresql_where=sa.text("state IN ('allocated', 'picked')"))

    op.drop_table('request_aliquot')
    op.drop_table('request_shipment')
    with op.batch_alter_table('sample_request', schema=None) as batch_op:
        batch_op.drop_index('ix_sample_request_substudy_state')

    op.drop_table('sample_request')
