"""Freezer storage: box types, the container tree, tube positions, thaws, temperature
excursions, condition notes and rack-scan previews.

One tube per place and one place per tube are unique constraints on ``aliquot_position``:
(box_id, row_no, col_no) and aliquot_id.

Revision ID: b99eba6e7ed9
Revises: 86b1cfdb8ee1
Create Date: 2026-11-21 15:54:54.605527
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = 'b99eba6e7ed9'
down_revision = '86b1cfdb8ee1'
branch_labels = None
depends_on = None


# The usual boxes, so a new biobank can store tubes at once (editable: /api/v1/box-types).
DEFAULT_BOX_TYPES = [
    {"code": "9X9", "name": "9×9 cryobox, 81 × 2 mL vials", "rows": 9, "columns": 9,
     "scheme": "letter-number"},
    {"code": "9X9-NUM", "name": "9×9 cryobox numbered 1…81", "rows": 9, "columns": 9,
     "scheme": "numeric"},
    {"code": "10X10", "name": "10×10 cryobox, 100 × 1–2 mL vials", "rows": 10,
     "columns": 10, "scheme": "letter-number"},
    {"code": "SBS96", "name": "8×12 SBS rack, 96 2D-coded tubes", "rows": 8, "columns": 12,
     "scheme": "letter-number-padded"},
    {"code": "BAG", "name": "bag (no grid)", "rows": None, "columns": None, "scheme": "none"},
]


def upgrade() -> None:
    box_types = op.create_table('box_type',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('columns', sa.Integer(), nullable=True),
    sa.Column('scheme', sa.String(length=32), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.CheckConstraint("(scheme = 'none' AND rows IS NULL AND columns IS NULL) OR (scheme <> 'none' AND rows BETWEEN 1 AND 26 AND columns BETWEEN 1 AND 99)", name=op.f('ck_box_type_grid')),
    sa.CheckConstraint("scheme IN ('letter-number', 'letter-number-padded', 'numeric', 'none')", name=op.f('ck_box_type_scheme')),
    sa.CheckConstraint('capacity IS NULL OR capacity > 0', name=op.f('ck_box_type_capacity')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_box_type')),
    sa.UniqueConstraint('code', name=op.f('uq_box_type_code'))
    )
    op.bulk_insert(box_types, DEFAULT_BOX_TYPES)
    op.create_table('storage_container',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('barcode', sa.String(length=64), nullable=False),
    sa.Column('external_barcode', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('freezer_type', sa.String(length=32), nullable=True),
    sa.Column('temperature_band', sa.String(length=32), nullable=True),
    sa.Column('room', sa.String(length=64), nullable=True),
    sa.Column('box_type_id', sa.Integer(), nullable=True),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("(kind = 'box') = (box_type_id IS NOT NULL)", name=op.f('ck_storage_container_box_has_type')),
    sa.CheckConstraint("(kind = 'freezer' AND parent_id IS NULL AND site_id IS NOT NULL AND freezer_type IS NOT NULL AND temperature_band IS NOT NULL) OR (kind <> 'freezer' AND parent_id IS NOT NULL AND site_id IS NULL AND freezer_type IS NULL AND temperature_band IS NULL)", name=op.f('ck_storage_container_freezer_is_root')),
    sa.CheckConstraint("freezer_type IS NULL OR freezer_type IN ('mechanical-80', 'mechanical-150', 'mechanical-20', 'ln2-vapour', 'ln2-liquid', 'refrigerator', 'room')", name=op.f('ck_storage_container_freezer_type')),
    sa.CheckConstraint("kind IN ('freezer', 'shelf', 'rack', 'drawer', 'tower', 'canister', 'compartment', 'box')", name=op.f('ck_storage_container_kind')),
    sa.CheckConstraint("temperature_band IS NULL OR temperature_band IN ('RT', '2to10', '-18to-35', '-60to-85', 'below-135', 'LN-vapour', 'LN-liquid')", name=op.f('ck_storage_container_temperature_band')),
    sa.CheckConstraint('parent_id <> id', name=op.f('ck_storage_container_not_own_parent')),
    sa.ForeignKeyConstraint(['box_type_id'], ['box_type.id'], name=op.f('fk_storage_container_box_type_id_box_type')),
    sa.ForeignKeyConstraint(['parent_id'], ['storage_container.id'], name=op.f('fk_storage_container_parent_id_storage_container')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_storage_container_site_id_site')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_storage_container')),
    sa.UniqueConstraint('barcode', name=op.f('uq_storage_container_barcode')),
    sa.UniqueConstraint('external_barcode', name=op.f('uq_storage_container_external_barcode')),
    sa.UniqueConstraint('parent_id', 'name', name=op.f('uq_storage_container_parent_id_name')),
    sa.UniqueConstraint('site_id', 'name', name=op.f('uq_storage_container_site_id_name'))
    )
    with op.batch_alter_table('storage_container', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_storage_container_box_type_id'), ['box_type_id'], unique=False)

    op.create_table('rack_scan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('box_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=64), nullable=False),
    sa.Column('uploaded_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('confirmed_by', sa.String(length=64), nullable=True),
    sa.Column('confirmed_at', biobank.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['box_id'], ['storage_container.id'], name=op.f('fk_rack_scan_box_id_storage_container')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rack_scan')),
    sa.UniqueConstraint('token', name=op.f('uq_rack_scan_token'))
    )
    with op.batch_alter_table('rack_scan', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rack_scan_box_id'), ['box_id'], unique=False)

    op.create_table('temperature_excursion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('freezer_id', sa.Integer(), nullable=False),
    sa.Column('started_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('peak_celsius', sa.Numeric(precision=5, scale=1), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('ended_at > started_at', name=op.f('ck_temperature_excursion_ends_after_start')),
    sa.ForeignKeyConstraint(['freezer_id'], ['storage_container.id'], name=op.f('fk_temperature_excursion_freezer_id_storage_container')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_temperature_excursion'))
    )
    with op.batch_alter_table('temperature_excursion', schema=None) as batch_op:
        batch_op.create_index('ix_temperature_excursion_freezer', ['freezer_id', 'started_at'], unique=False)

    op.create_table('aliquot_condition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=False),
    sa.Column('excursion_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', biobank.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_aliquot_condition_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['excursion_id'], ['temperature_excursion.id'], name=op.f('fk_aliquot_condition_excursion_id_temperature_excursion')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aliquot_condition')),
    sa.UniqueConstraint('aliquot_id', 'excursion_id', name=op.f('uq_aliquot_condition_aliquot_id_excursion_id'))
    )
    with op.batch_alter_table('aliquot_condition', schema=None) as batch_op:
        batch_op.create_index('ix_aliquot_condition_aliquot', ['aliquot_id', 'id'], unique=False)

    op.create_table('aliquot_position',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=False),
    sa.Column('box_id', sa.Integer(), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=True),
    sa.Column('col_no', sa.Integer(), nullable=True),
    sa.Column('placed_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('out_since', biobank.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint('(row_no IS NULL) = (col_no IS NULL)', name=op.f('ck_aliquot_position_row_and_col')),
    sa.CheckConstraint('row_no IS NULL OR (row_no >= 1 AND col_no >= 1)', name=op.f('ck_aliquot_position_positive')),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_aliquot_position_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['box_id'], ['storage_container.id'], name=op.f('fk_aliquot_position_box_id_storage_container')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aliquot_position')),
    sa.UniqueConstraint('aliquot_id', name=op.f('uq_aliquot_position_aliquot_id')),
    sa.UniqueConstraint('box_id', 'row_no', 'col_no', name=op.f('uq_aliquot_position_box_id_row_no_col_no'))
    )
    op.create_table('aliquot_thaw',
    sa.Column('aliquot_id', sa.Integer(), nullable=False),
    sa.Column('thawed_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('thawed_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_aliquot_thaw_aliquot_id_aliquot')),
    sa.PrimaryKeyConstraint('aliquot_id', name=op.f('pk_aliquot_thaw'))
    )


def downgrade() -> None:
    op.drop_table('aliquot_thaw')
    op.drop_table('aliquot_position')
    with op.batch_alter_table('aliquot_condition', schema=None) as batch_op:
        batch_op.drop_index('ix_aliquot_condition_aliquot')

    op.drop_table('aliquot_condition')
    with op.batch_alter_table('temperature_excursion', schema=None) as batch_op:
        batch_op.drop_index('ix_temperature_excursion_freezer')

    op.drop_table('temperature_excursion')
    with op.batch_alter_table('rack_scan', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rack_scan_box_id'))

    op.drop_table('rack_scan')
    with op.batch_alter_table('storage_container', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_storage_container_box_type_id'))

    op.drop_table('storage_container')
    op.drop_table('box_type')
