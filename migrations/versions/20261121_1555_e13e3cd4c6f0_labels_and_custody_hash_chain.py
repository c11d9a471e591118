"""Labels and the custody hash chain: printers, print jobs, prev_hash/hash on every event.

Events already present are chained here, in id order, per aliquot (and per sample for a
sample's own events), exactly as biobank.custody.service would have chained them; their
old/new values are rewritten with sorted keys (same content), so that the stored JSON text
is the canonical one. The append-only triggers are lifted for that, and put back.

Revision ID: e13e3cd4c6f0
Revises: b99eba6e7ed9
Create Date: 2026-11-21 15:55:50.848250
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import biobank.db
from biobank.custody import chain

revision = 'e13e3cd4c6f0'
down_revision = 'b99eba6e7ed9'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_printer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('dpi', sa.Integer(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('dpi IN (203, 300)', name=op.f('ck_label_printer_dpi')),
    sa.CheckConstraint('port BETWEEN 1 AND 65535', name=op.f('ck_label_printer_port')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_label_printer_site_id_site')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_printer')),
    sa.UniqueConstraint('name', name=op.f('uq_label_printer_name'))
    )
    with op.batch_alter_table('label_printer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_printer_site_id'), ['site_id'], unique=False)

    op.create_table('print_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('printer_id', sa.Integer(), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('dpi', sa.Integer(), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('bytes_sent', sa.Integer(), nullable=False),
    sa.Column('reprint', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('printed_at', biobank.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('copies >= 1', name=op.f('ck_print_job_copies')),
    sa.CheckConstraint('labels >= 1', name=op.f('ck_print_job_labels')),
    sa.ForeignKeyConstraint(['printer_id'], ['label_printer.id'],
                            name=op.f('fk_print_job_printer_id_label_printer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_print_job'))
    )
    with op.batch_alter_table('print_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_print_job_printer_id'), ['printer_id'], unique=False)

    _unprotect_custody_log()
    op.add_column('custody_event', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column('custody_event', sa.Column('hash', sa.String(length=64), nullable=True))
    _chain_existing_events()
    with op.batch_alter_table('custody_event', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index('uq_custody_event_prev_hash', ['prev_hash'], unique=True)
    _protect_custody_log()



def downgrade() -> None:
    _unprotect_custody_log()
    with op.batch_alter_table('custody_event', schema=None) as batch_op:
        batch_op.drop_index('uq_custody_event_prev_hash')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
    _protect_custody_log()

    with op.batch_alter_table('print_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_print_job_printer_id'))

    op.drop_table('print_job')
    with op.batch_alter_table('label_printer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_printer_site_id'))

    op.drop_table('label_printer')


_APPEND_ONLY = "custody events are append-only"
_BATCH = 5000


def _unprotect_custody_log() -> None:
    # SQLite's batch mode rebuilds the table, which drops its triggers anyway.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE custody_event DISABLE TRIGGER USER")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER custody_event_no_{verb}")


def _protect_custody_log() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE custody_event ENABLE TRIGGER USER")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER custody_event_no_{verb.lower()} BEFORE {verb} ON custody_event
                BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END
            """)


def _chain_existing_events() -> None:
    """Hash the events already stored, in id order, chain by chain."""
    events = sa.table(
        "custody_event", sa.column("id", sa.Integer), sa.column("aliquot_id", sa.Integer),
        sa.column("sample_id", sa.Integer), sa.column("event_type", sa.String),
        sa.column("actor", sa.String), sa.column("occurred_at", biobank.db.UTCDateTime()),
        sa.column("reason", sa.String), sa.column("old_values", sa.JSON),
        sa.column("new_values", sa.JSON), sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String))
    update = (sa.update(events).where(events.c.id == sa.bindparam("event_id"))
              .values(prev_hash=sa.bindparam("prev"), hash=sa.bindparam("digest"),
                      old_values=sa.bindparam("old"), new_values=sa.bindparam("new")))
    bind = op.get_bind()
    heads: dict[str, str] = {}
    last_id = 0
    while True:
        rows = bind.execute(sa.select(events).where(events.c.id > last_id)
                            .order_by(events.c.id).limit(_BATCH)).all()
        if not rows:
            break
        changes = []
        for row in rows:
            key = chain.chain_key(row.aliquot_id, row.sample_id)
            prev = heads.get(key) or chain.genesis(key)
            old, new = chain.sorted_values(row.old_values), chain.sorted_values(row.new_values)
            digest = heads[key] = chain.event_hash(
                key, row.event_type, row.actor, chain.timestamp(row.occurred_at), row.reason,
                chain.canonical_json(old), chain.canonical_json(new), prev)
            changes.append({"event_id": row.id, "prev": prev, "digest": digest,
                            "old": old, "new": new})
        bind.execute(update, changes)
        last_id = rows[-1].id
