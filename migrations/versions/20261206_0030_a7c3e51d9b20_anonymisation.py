"""Anonymise instead of destroy: a sample may lose its patient (and the patient's dates), a
per-country rule says where that is allowed, withdrawals say destroy or anonymise,
anonymisation tasks, sub-studies that accept anonymised tubes, and releases whose basis is
the consent entries or the tube being anonymised.

On SQLite ``sample``, ``consent_withdrawal`` and ``release_justification`` are recreated
(batch "move and copy", with foreign keys off: ``biobank.cli``): that drops their triggers,
so the availability tally's triggers (now keyed by ``coalesce(patient_id, 0)``) and the
append-only triggers are made again.

Revision ID: a7c3e51d9b20
Revises: a16c1a1e0003
Create Date: 2026-12-06 00:30:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import biobank.db

revision = 'a7c3e51d9b20'
down_revision = 'a16c1a1e0003'
branch_labels = None
depends_on = None

APPEND_ONLY = ("consent_withdrawal", "release_justification")
_HERE = Path(__file__).parent


def _tally_triggers(anonymous: bool) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The tally's triggers as the tally revision wrote them, or keyed by coalesce(patient_id,
    0) (a sample without a patient: anonymised) as this revision writes them."""
    [path] = _HERE.glob("*_48b1893b1b55_availability_tally.py")
    spec = importlib.util.spec_from_file_location("_tally_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not anonymous:
        return list(module.TRIGGERS)
    found = []
    for name, event, when, statements in module.TRIGGERS:
        if name == "availability_tally_sample_update":
            when = when.replace("OLD.patient_id <> NEW.patient_id",
                                "coalesce(OLD.patient_id, 0) <> coalesce(NEW.patient_id, 0)")
            statements = (statements[0].replace("patient_id = OLD.patient_id",
                                                "patient_id = coalesce(OLD.patient_id, 0)"),
                          statements[1].replace("NEW.patient_id, count(*)",
                                                "coalesce(NEW.patient_id, 0), count(*)"))
        else:
            statements = tuple(s.replace("aliquot_type_id, patient_id FROM sample",
                                         "aliquot_type_id, coalesce(patient_id, 0) FROM sample")
                               .replace("aliquot_type_id, patient_id, 1 FROM sample",
                                        "aliquot_type_id, coalesce(patient_id, 0), 1 FROM sample")
                               for s in statements)
        found.append((name, event, when, statements))
    return found


def _drop_tally_triggers(postgresql: bool) -> None:
    for name, event, _when, _statements in _tally_triggers(False):
        if postgresql:
            op.execute(f"DROP TRIGGER {name} ON {event.rsplit(' ON ', 1)[1]}")
            op.execute(f"DROP FUNCTION {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _create_tally_triggers(postgresql: bool, anonymous: bool) -> None:
    for name, event, when, statements in _tally_triggers(anonymous):
        body = "".join(f"{s}; " for s in statements)
        if postgresql:
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                       f"$$ BEGIN {body}RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {name} AFTER {event} FOR EACH ROW WHEN ({when}) "
                       f"EXECUTE FUNCTION {name}()")
        else:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} FOR EACH ROW WHEN {when} "
                       f"BEGIN {body}END")


def _protect_sqlite() -> None:
    """The append-only triggers of the consent revision, again (SQLite dropped them)."""
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def _append_only(postgresql: bool, enabled: bool) -> None:
    """PostgreSQL keeps the triggers through ALTER TABLE: switch them off for the backfill."""
    if postgresql:
        for table in APPEND_ONLY:
            op.execute(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER USER")
    elif enabled:
        _protect_sqlite()
    else:
        for table in APPEND_ONLY:
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table('country_anonymisation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('allowed', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_country_anonymisation')),
    sa.UniqueConstraint('code', name=op.f('uq_country_anonymisation_code'))
    )
    op.create_table('anonymisation_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('withdrawal_id', sa.Integer(), nullable=False),
    sa.Column('aliquot_id', sa.Integer(), nullable=True),
    sa.Column('barcode', sa.String(length=64), nullable=True),
    sa.Column('blocked_from', sa.String(length=32), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.Column('completed_at', biobank.db.UTCDateTime(), nullable=True),
    sa.Column('completed_by', sa.String(length=64), nullable=True),
    sa.CheckConstraint('(completed_at IS NULL AND aliquot_id IS NOT NULL AND barcode IS NOT NULL) OR (completed_at IS NOT NULL AND aliquot_id IS NULL AND barcode IS NULL)', name=op.f('ck_anonymisation_task_link_until_done')),
    sa.ForeignKeyConstraint(['aliquot_id'], ['aliquot.id'], name=op.f('fk_anonymisation_task_aliquot_id_aliquot')),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['consent_withdrawal.id'], name=op.f('fk_anonymisation_task_withdrawal_id_consent_withdrawal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anonymisation_task'))
    )
    with op.batch_alter_table('anonymisation_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_anonymisation_task_aliquot_id'), ['aliquot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_anonymisation_task_withdrawal_id'), ['withdrawal_id'], unique=False)

    with op.batch_alter_table('substudy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepts_anonymised', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('substudy', schema=None) as batch_op:
        batch_op.alter_column('accepts_anonymised', server_default=None)

    _drop_tally_triggers(postgresql)
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.alter_column('patient_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('collected_at', existing_type=biobank.db.UTCDateTime(), nullable=True)
        batch_op.alter_column('received_at', existing_type=biobank.db.UTCDateTime(), nullable=True)
        batch_op.create_check_constraint(
            'anonymised_undated',
            "(patient_id IS NOT NULL AND collected_at IS NOT NULL AND received_at IS NOT NULL) "
            "OR (patient_id IS NULL AND collected_at IS NULL AND received_at IS NULL "
            "AND accession_number IS NULL AND notes IS NULL)")
    _create_tally_triggers(postgresql, anonymous=True)

    _append_only(postgresql, enabled=False)
    with op.batch_alter_table('consent_withdrawal', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sa.String(length=32), nullable=True))
        batch_op.create_check_constraint(
            'outcome', "outcome IS NULL OR outcome IN ('destroy', 'anonymise')")
        batch_op.create_check_constraint(
            'outcome_for_storage', "outcome IS NULL OR scope IN ('storage', 'all')")
    # Every storage withdrawal before this revision destroyed (there was no other outcome).
    op.execute("UPDATE consent_withdrawal SET outcome = 'destroy' "
               "WHERE scope IN ('storage', 'all') AND EXISTS (SELECT 1 FROM consent_entry "
               "WHERE consent_entry.withdrawal_id = consent_withdrawal.id "
               "AND consent_entry.component = 'storage')")
    with op.batch_alter_table('release_justification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('basis', sa.String(length=32), nullable=False,
                                      server_default='consent'))
        batch_op.alter_column('storage_consent_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('substudy_consent_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_check_constraint('basis', "basis IN ('consent', 'anonymised')")
        batch_op.create_check_constraint(
            'basis_entries',
            "(basis = 'consent' AND storage_consent_id IS NOT NULL "
            "AND substudy_consent_id IS NOT NULL) OR (basis = 'anonymised' "
            "AND storage_consent_id IS NULL AND substudy_consent_id IS NULL)")
    with op.batch_alter_table('release_justification', schema=None) as batch_op:
        batch_op.alter_column('basis', server_default=None)
    _append_only(postgresql, enabled=True)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    bind = op.get_bind()
    if bind.scalar(sa.text("SELECT count(*) FROM sample WHERE patient_id IS NULL")):
        raise RuntimeError("anonymised samples exist: their link to a patient was cut for "
                           "good, so the schema cannot go back to a patient per sample")
    if bind.scalar(sa.text("SELECT count(*) FROM release_justification "
                           "WHERE basis = 'anonymised'")):
        raise RuntimeError("releases of anonymised tubes exist: they have no consent entries")
    _append_only(postgresql, enabled=False)
    with op.batch_alter_table('release_justification', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_release_justification_basis_entries'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_release_justification_basis'), type_='check')
        batch_op.alter_column('substudy_consent_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('storage_consent_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('basis')
    with op.batch_alter_table('consent_withdrawal', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_consent_withdrawal_outcome_for_storage'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_consent_withdrawal_outcome'), type_='check')
        batch_op.drop_column('outcome')
    _append_only(postgresql, enabled=True)

    _drop_tally_triggers(postgresql)
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_sample_anonymised_undated'), type_='check')
        batch_op.alter_column('received_at', existing_type=biobank.db.UTCDateTime(), nullable=False)
        batch_op.alter_column('collected_at', existing_type=biobank.db.UTCDateTime(), nullable=False)
        batch_op.alter_column('patient_id', existing_type=sa.Integer(), nullable=False)
    _create_tally_triggers(postgresql, anonymous=False)

    with op.batch_alter_table('substudy', schema=None) as batch_op:
        batch_op.drop_column('accepts_anonymised')
    with op.batch_alter_table('anonymisation_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_anonymisation_task_withdrawal_id'))
        batch_op.drop_index(batch_op.f('ix_anonymisation_task_aliquot_id'))
    op.drop_table('anonymisation_task')
    op.drop_table('country_anonymisation')
