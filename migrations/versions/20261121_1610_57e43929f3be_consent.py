"""Consent: sub-studies, form versions, the consent log, withdrawals, destruction tasks,
recall notices, release justifications; the age of majority per country (reference data).

The consent log, withdrawals and release justifications are append-only: triggers refuse
UPDATE and DELETE on both backends.

Revision ID: 57e43929f3be
Revises: e13e3cd4c6f0
Create Date: 2026-11-21 15:53:50.490337
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = '57e43929f3be'
down_revision = 'e13e3cd4c6f0'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consent_form_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=32), nullable=False),
    sa.Column('covers', sa.JSON(), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_form_version')),
    sa.UniqueConstraint('code', name=op.f('uq_consent_form_version_code'))
    )
    op.create_table('country_majority',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('age', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.CheckConstraint('age BETWEEN 12 AND 25', name=op.f('ck_country_majority_age')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_country_majority')),
    sa.UniqueConstraint('code', name=op.f('uq_country_majority_code'))
    )
    op.create_table('substudy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('principal_investigator', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_substudy')),
    sa.UniqueConstraint('code', name=op.f('uq_substudy_code'))
    )
    op.create_table('consent_withdrawal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('substudy_id', sa.Integer(), nullable=True),
    sa.Column('withdrawn_on', sa.Date(), nullable=False),
    sa.Column('requested_by', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("(scope = 'substudy' AND substudy_id IS NOT NULL) OR (scope <> 'substudy' AND substudy_id IS NULL)", name=op.f('ck_consent_withdrawal_substudy_scope')),
    sa.CheckConstraint("requested_by IN ('mother', 'father', 'legal_guardian', 'participant', 'other')", name=op.f('ck_consent_withdrawal_requested_by')),
    sa.CheckConstraint("scope IN ('storage', 'data', 'all', 'substudy')", name=op.f('ck_consent_withdrawal_scope')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_consent_withdrawal_patient_id_patient')),
    sa.ForeignKeyConstraint(['substudy_id'], ['substudy.id'], name=op.f('fk_consent_withdrawal_substudy_id_substudy')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_withdrawal'))
    )
    with op.batch_alter_table('consent_withdrawal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_withdrawal_patient_id'), ['patient_id'], unique=False)

    op.create_table('consent_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('component', sa.String(length=32), nullable=False),
    sa.Column('substudy_id', sa.Integer(), nullable=True),
    sa.Column('decision', sa.String(length=32), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('form_version_id', sa.Integer(), nullable=True),
    sa.Column('signed_by', sa.String(length=32), nullable=False),
    sa.Column('signatory_note', sa.String(length=200), nullable=True),
    sa.Column('corrects_id', sa.Integer(), nullable=True),
    sa.Column('withdrawal_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("(component = 'substudy' AND substudy_id IS NOT NULL) OR (component <> 'substudy' AND substudy_id IS NULL)", name=op.f('ck_consent_entry_substudy_component')),
    sa.CheckConstraint("(decision = 'withdrawn' AND withdrawal_id IS NOT NULL) OR (decision <> 'withdrawn' AND withdrawal_id IS NULL)", name=op.f('ck_consent_entry_withdrawn_by_withdrawal')),
    sa.CheckConstraint("component IN ('storage', 'data', 'substudy')", name=op.f('ck_consent_entry_component')),
    sa.CheckConstraint("decision = 'withdrawn' OR form_version_id IS NOT NULL", name=op.f('ck_consent_entry_form_for_decision')),
    sa.CheckConstraint("decision IN ('given', 'declined', 'withdrawn')", name=op.f('ck_consent_entry_decision')),
    sa.CheckConstraint("signed_by IN ('mother', 'father', 'legal_guardian', 'participant', 'other')", name=op.f('ck_consent_entry_signed_by')),
    sa.CheckConstraint('corrects_id IS NULL OR reason IS NOT NULL', name=op.f('ck_consent_entry_correction_reason')),
    sa.ForeignKeyConstraint(['corrects_id'], ['consent_entry.id'], name=op.f('fk_consent_entry_corrects_id_consent_entry')),
    sa.ForeignKeyConstraint(['form_version_id'], ['consent_form_version.id'], name=op.f('fk_consent_entry_form_version_id_consent_form_version')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_consent_entry_patient_id_patient')),
    sa.ForeignKeyConstraint(['substudy_id'], ['substudy.id'], name=op.f('fk_consent_entry_substudy_id_substudy')),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['consent_withdrawal.id'], name=op.f('fk_consent_entry_withdrawal_id_consent_withdrawal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_entry')),
    sa.UniqueConstraint('corrects_id', name=op.f('uq_consent_entry_corrects_id'))
    )
    with op.batch_alter_table('consent_entry', schema=None) as batch_op:
        batch_op.create_index('ix_consent_entry_patient', ['patient_id', 'component', 'substudy_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_entry_withdrawal_id'), ['withdrawal_id'], unique=False)

    op.create_table('destruction_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('withdrawal_id', sa.Integer(), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=False),
    sa.Column('blocked_from', sa.String(length=32), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('completed_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('completed_by', sa.String(length=64), nullable=True),
    sa.Column('cancelled_at', biobank.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint('completed_at IS NULL OR cancelled_at IS NULL', name=op.f('ck_destruction_task_one_ending')),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_destruction_task_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['consent_withdrawal.id'], name=op.f('fk_destruction_task_withdrawal_id_consent_withdrawal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_destruction_task')),
    sa.UniqueConstraint('withdrawal_id', 'aliquot_id', name=op.f('uq_destruction_task_withdrawal_id_aliquot_id'))
    )
    with op.batch_alter_table('destruction_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_destruction_task_aliquot_id'), ['aliquot_id'], unique=False)

    op.create_table('recall_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('withdrawal_id', sa.Integer(), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=False),
    sa.Column('request_reference', sa.String(length=64), nullable=True),
    sa.Column('recipient', sa.String(length=200), nullable=True),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('acknowledged_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('destruction_reported_at', biobank.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_recall_notice_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['consent_withdrawal.id'], name=op.f('fk_recall_notice_withdrawal_id_consent_withdrawal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recall_notice')),
    sa.UniqueConstraint('withdrawal_id', 'aliquot_id', name=op.f('uq_recall_notice_withdrawal_id_aliquot_id'))
    )
    with op.batch_alter_table('recall_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recall_notice_aliquot_id'), ['aliquot_id'], unique=False)

    op.create_table('release_justification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('release_kind', sa.String(length=32), nullable=False),
    sa.Column('release_reference', sa.String(length=64), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=False),
    sa.Column('substudy_id', sa.Integer(), nullable=False),
    sa.Column('storage_consent_id', sa.Integer(), nullable=False),
    sa.Column('substudy_consent_id', sa.Integer(), nullable=False),
    sa.Column('released_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_release_justification_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['storage_consent_id'], ['consent_entry.id'], name=op.f('fk_release_justification_storage_consent_id_consent_entry')),
    sa.ForeignKeyConstraint(['substudy_consent_id'], ['consent_entry.id'], name=op.f('fk_release_justification_substudy_consent_id_consent_entry')),
    sa.ForeignKeyConstraint(['substudy_id'], ['substudy.id'], name=op.f('fk_release_justification_substudy_id_substudy')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release_justification')),
    sa.UniqueConstraint('release_kind', 'release_reference', 'aliquot_id', name=op.f('uq_release_justification_release_kind_release_reference_aliquot_id'))
    )
    with op.batch_alter_table('release_justification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_justification_aliquot_id'), ['aliquot_id'], unique=False)

    _protect(APPEND_ONLY)


def downgrade() -> None:
    _unprotect(APPEND_ONLY)
    with op.batch_alter_table('release_justification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_justification_aliquot_id'))

    op.drop_table('release_justification')
    with op.batch_alter_table('recall_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recall_notice_aliquot_id'))

    op.drop_table('recall_notice')
    with op.batch_alter_table('destruction_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_destruction_task_aliquot_id'))

    op.drop_table('destruction_task')
    with op.batch_alter_table('consent_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_entry_withdrawal_id'))
        batch_op.drop_index('ix_consent_entry_patient')

    op.drop_table('consent_entry')
    with op.batch_alter_table('consent_withdrawal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_withdrawal_patient_id'))

    op.drop_table('consent_withdrawal')
    op.drop_table('substudy')
    op.drop_table('country_majority')
    op.drop_table('consent_form_version')


APPEND_ONLY = ("consent_entry", "consent_withdrawal", "release_justification")


def _protect(tables: tuple[str, ...]) -> None:
    """The database itself refuses to rewrite or erase the consent record."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("""
            CREATE FUNCTION consent_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
            END;
            $$ LANGUAGE plpgsql
        """)
    for table in tables:
        for verb in ("UPDATE", "DELETE"):
            if postgres:
                op.execute(f"""
                    CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
                    FOR EACH ROW EXECUTE FUNCTION consent_append_only()
                """)
            else:
                op.execute(f"""
                    CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
                    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
                """)


def _unprotect(tables: tuple[str, ...]) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in tables:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER {table}_no_{verb}" + (f" ON {table}" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION consent_append_only()")
