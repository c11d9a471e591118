"""Core schema: reference data, patients, samples, aliquots, custody log, users.

Custody events are append-only: triggers refuse UPDATE and DELETE on both backends.

Revision ID: 3e727975deed
Revises: 
Create Date: 2026-11-21 15:46:27.704187
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = '3e727975deed'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('aliquot_type',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sprec_type', sa.String(length=32), nullable=True),
    sa.Column('unit', sa.String(length=32), nullable=False),
    sa.Column('materials', sa.JSON(), nullable=False),
    sa.CheckConstraint("unit IN ('mL', 'cells')", name=op.f('ck_aliquot_type_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aliquot_type')),
    sa.UniqueConstraint('code', name=op.f('uq_aliquot_type_code'))
    )
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("role IN ('technician', 'researcher', 'consent_officer', 'manager', 'admin')", name=op.f('ck_app_user_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('audit_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity_type', sa.String(length=32), nullable=False),
    sa.Column('entity_key', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('old_values', sa.JSON(), nullable=True),
    sa.Column('new_values', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_record'))
    )
    with op.batch_alter_table('audit_record', schema=None) as batch_op:
        batch_op.create_index('ix_audit_record_entity', ['entity_type', 'entity_key', 'id'], unique=False)

    op.create_table('barcode_counter',
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('next_value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('prefix', name=op.f('pk_barcode_counter'))
    )
    op.create_table('material',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sprec_type', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_material')),
    sa.UniqueConstraint('code', name=op.f('uq_material_code'))
    )
    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site')),
    sa.UniqueConstraint('code', name=op.f('uq_site_code'))
    )
    op.create_table('timepoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phase', sa.String(length=200), nullable=False),
    sa.Column('nominal_day', sa.Integer(), nullable=True),
    sa.Column('window_before_days', sa.Integer(), nullable=False),
    sa.Column('window_after_days', sa.Integer(), nullable=False),
    sa.Column('risk_groups', sa.JSON(), nullable=False),
    sa.Column('expected_materials', sa.JSON(), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.CheckConstraint('window_before_days >= 0 AND window_after_days >= 0', name=op.f('ck_timepoint_window')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timepoint')),
    sa.UniqueConstraint('code', name=op.f('uq_timepoint_code'))
    )
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('hint', sa.String(length=12), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', biobank.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_api_token_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('sex', sa.String(length=32), nullable=False),
    sa.Column('diagnosis', sa.String(length=32), nullable=False),
    sa.Column('fusion_partner', sa.String(length=64), nullable=False),
    sa.Column('diagnosis_date', sa.Date(), nullable=False),
    sa.Column('age_at_diagnosis_days', sa.Integer(), nullable=False),
    sa.Column('wbc_at_diagnosis', sa.Numeric(precision=12, scale=4), nullable=True),
    sa.Column('day8_blasts_per_ul', sa.Integer(), nullable=True),
    sa.Column('prednisone_response', sa.String(length=32), nullable=False),
    sa.Column('risk_group', sa.String(length=32), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("diagnosis IN ('B-ALL', 'B-MPAL')", name=op.f('ck_patient_diagnosis')),
    sa.CheckConstraint("prednisone_response IN ('good', 'poor', 'unknown')", name=op.f('ck_patient_pred')),
    sa.CheckConstraint("risk_group IN ('MR', 'HR')", name=op.f('ck_patient_risk_group')),
    sa.CheckConstraint("sex IN ('F', 'M', 'U')", name=op.f('ck_patient_sex')),
    sa.CheckConstraint('age_at_diagnosis_days BETWEEN 0 AND 365', name=op.f('ck_patient_age_limit')),
    sa.CheckConstraint('wbc_at_diagnosis IS NULL OR wbc_at_diagnosis >= 0', name=op.f('ck_patient_wbc')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_patient_site_id_site')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient')),
    sa.UniqueConstraint('study_id', name=op.f('uq_patient_study_id'))
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_site_id'), ['site_id'], unique=False)

    op.create_table('user_site',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['site_code'], ['site.code'], name=op.f('fk_user_site_site_code_site')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_user_site_user_id_app_user')),
    sa.PrimaryKeyConstraint('user_id', 'site_code', name=op.f('pk_user_site'))
    )
    op.create_table('user_substudy',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('substudy_code', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_user_substudy_user_id_app_user')),
    sa.PrimaryKeyConstraint('user_id', 'substudy_code', name=op.f('pk_user_substudy'))
    )
    op.create_table('mrd_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('timepoint_id', sa.Integer(), nullable=False),
    sa.Column('value_percent', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('measured_on', sa.Date(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('value_percent >= 0 AND value_percent <= 100', name=op.f('ck_mrd_result_percent')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_mrd_result_patient_id_patient')),
    sa.ForeignKeyConstraint(['timepoint_id'], ['timepoint.id'], name=op.f('fk_mrd_result_timepoint_id_timepoint')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mrd_result')),
    sa.UniqueConstraint('patient_id', 'timepoint_id', 'method', name=op.f('uq_mrd_result_patient_id_timepoint_id_method'))
    )
    with op.batch_alter_table('mrd_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mrd_result_patient_id'), ['patient_id'], unique=False)

    op.create_table('risk_group_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('previous', sa.String(length=32), nullable=True),
    sa.Column('risk_group', sa.String(length=32), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("risk_group IN ('MR', 'HR')", name=op.f('ck_risk_group_change_risk_group')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_risk_group_change_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_group_change'))
    )
    with op.batch_alter_table('risk_group_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_group_change_patient_id'), ['patient_id'], unique=False)

    op.create_table('sample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('barcode', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('timepoint_id', sa.Integer(), nullable=True),
    sa.Column('unscheduled_reason', sa.String(length=200), nullable=True),
    sa.Column('material_id', sa.Integer(), nullable=False),
    sa.Column('collected_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('received_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('volume_ml', sa.Numeric(precision=10, scale=3), nullable=False),
    sa.Column('volume_remaining_ml', sa.Numeric(precision=10, scale=3), nullable=False),
    sa.Column('container_code', sa.String(length=3), nullable=False),
    sa.Column('precentrifugation_delay_hours', sa.Numeric(precision=12, scale=4), nullable=True),
    sa.Column('precentrifugation_temperature', sa.String(length=8), nullable=True),
    sa.Column('accession_number', sa.String(length=64), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("precentrifugation_temperature IN ('RT', '2-10C')", name=op.f('ck_sample_precentrif_temp')),
    sa.CheckConstraint('received_at >= collected_at', name=op.f('ck_sample_received_after_collected')),
    sa.CheckConstraint('timepoint_id IS NOT NULL OR unscheduled_reason IS NOT NULL', name=op.f('ck_sample_timepoint_or_reason')),
    sa.CheckConstraint('volume_ml > 0', name=op.f('ck_sample_volume_positive')),
    sa.CheckConstraint('volume_remaining_ml >= 0 AND volume_remaining_ml <= volume_ml', name=op.f('ck_sample_remaining_within_volume')),
    sa.ForeignKeyConstraint(['material_id'], ['material.id'], name=op.f('fk_sample_material_id_material')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_sample_patient_id_patient')),
    sa.ForeignKeyConstraint(['timepoint_id'], ['timepoint.id'], name=op.f('fk_sample_timepoint_id_timepoint')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample')),
    sa.UniqueConstraint('barcode', name=op.f('uq_sample_barcode'))
    )
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.create_index('ix_sample_patient_timepoint', ['patient_id', 'timepoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sample_timepoint_id'), ['timepoint_id'], unique=False)

    op.create_table('aliquot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('barcode', sa.String(length=64), nullable=False),
    sa.Column('barcode_source', sa.String(length=32), nullable=False),
    sa.Column('sample_id', sa.Integer(), nullable=False),
    sa.Column('parent_aliquot_id', sa.Integer(), nullable=True),
    sa.Column('aliquot_type_id', sa.Integer(), nullable=False),
    sa.Column('volume_ml', sa.Numeric(precision=10, scale=3), nullable=True),
    sa.Column('volume_remaining_ml', sa.Numeric(precision=10, scale=3), nullable=True),
    sa.Column('source_volume_ml', sa.Numeric(precision=10, scale=3), nullable=True),
    sa.Column('cell_count', sa.Integer(), nullable=True),
    sa.Column('sprec_code', sa.String(length=64), nullable=True),
    sa.Column('freeze_thaw_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("barcode_source IN ('issued', 'external')", name=op.f('ck_aliquot_barcode_source')),
    sa.CheckConstraint("status IN ('available', 'reserved', 'shipped', 'consumed', 'destroyed', 'missing', 'blocked')", name=op.f('ck_aliquot_status')),
    sa.CheckConstraint('cell_count IS NULL OR cell_count > 0', name=op.f('ck_aliquot_cells_positive')),
    sa.CheckConstraint('freeze_thaw_count >= 0', name=op.f('ck_aliquot_freeze_thaw')),
    sa.CheckConstraint('volume_ml IS NOT NULL OR cell_count IS NOT NULL', name=op.f('ck_aliquot_amount')),
    sa.CheckConstraint('volume_ml IS NULL OR volume_ml > 0', name=op.f('ck_aliquot_volume_positive')),
    sa.CheckConstraint('volume_remaining_ml IS NULL OR (volume_remaining_ml >= 0 AND volume_remaining_ml <= volume_ml)', name=op.f('ck_aliquot_remaining_within_volume')),
    sa.ForeignKeyConstraint(['aliquot_type_id'], ['aliquot_type.id'], name=op.f('fk_aliquot_aliquot_type_id_aliquot_type')),
    sa.ForeignKeyConstraint(['parent_aliquot_id'], ['aliquot.id'], name=op.f('fk_aliquot_parent_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['sample_id'], ['sample.id'], name=op.f('fk_aliquot_sample_id_sample')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aliquot')),
    sa.UniqueConstraint('barcode', name=op.f('uq_aliquot_barcode'))
    )
    with op.batch_alter_table('aliquot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aliquot_parent_aliquot_id'), ['parent_aliquot_id'], unique=False)
        batch_op.create_index('ix_aliquot_sample_status', ['sample_id', 'status'], unique=False)
        batch_op.create_index('ix_aliquot_type_status', ['aliquot_type_id', 'status'], unique=False)

    op.create_table('custody_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=True),
    sa.Column('sample_id', sa.Integer(), nullable=True),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('old_values', sa.JSON(), nullable=True),
    sa.Column('new_values', sa.JSON(), nullable=True),
    sa.CheckConstraint('aliquot_id IS NOT NULL OR sample_id IS NOT NULL', name=op.f('ck_custody_event_subject')),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_custody_event_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['sample_id'], ['sample.id'], name=op.f('fk_custody_event_sample_id_sample')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custody_event'))
    )
    with op.batch_alter_table('custody_event', schema=None) as batch_op:
        batch_op.create_index('ix_custody_event_aliquot', ['aliquot_id', 'id'], unique=False)
        batch_op.create_index('ix_custody_event_sample', ['sample_id', 'id'], unique=False)


    _protect_custody_log()


def downgrade() -> None:
    _unprotect_custody_log()
    with op.batch_alter_table('custody_event', schema=None) as batch_op:
        batch_op.drop_index('ix_custody_event_sample')
        batch_op.drop_index('ix_custody_event_aliquot')

    op.drop_table('custody_event')
    with op.batch_alter_table('aliquot', schema=None) as batch_op:
        batch_op.drop_index('ix_aliquot_type_status')
        batch_op.drop_index('ix_aliquot_sample_status')
        batch_op.drop_index(batch_op.f('ix_aliquot_parent_aliquot_id'))

    op.drop_table('aliquot')
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sample_timepoint_id'))
        batch_op.drop_index('ix_sample_patient_timepoint')

    op.drop_table('sample')
    with op.batch_alter_table('risk_group_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risk_group_change_patient_id'))

    op.drop_table('risk_group_change')
    with op.batch_alter_table('mrd_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mrd_result_patient_id'))

    op.drop_table('mrd_result')
    op.drop_table('user_substudy')
    op.drop_table('user_site')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_site_id'))

    op.drop_table('patient')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_user_id'))

    op.drop_table('api_token')
    op.drop_table('timepoint')
    op.drop_table('site')
    op.drop_table('material')
    op.drop_table('barcode_counter')
    with op.batch_alter_table('audit_record', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_record_entity')

    op.drop_table('audit_record')
    op.drop_table('app_user')
    op.drop_table('aliquot_type')


_APPEND_ONLY = "custody events are append-only"


def _protect_custody_log() -> None:
    """The database itself refuses to rewrite or erase the custody log."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION custody_event_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{_APPEND_ONLY}';
            END;
            $$ LANGUAGE plpgsql
        """)
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER custody_event_no_{verb.lower()} BEFORE {verb} ON custody_event
                FOR EACH ROW EXECUTE FUNCTION custody_event_append_only()
            """)
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER custody_event_no_{verb.lower()} BEFORE {verb} ON custody_event
                BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END
            """)


def _unprotect_custody_log() -> None:
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER custody_event_no_{verb}" +
                   (" ON custody_event" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION custody_event_append_only()")
