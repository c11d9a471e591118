"""SPREC v3.0: the fluid tables as reference data (sprec_code), pre-centrifugation at
35–38 °C, how many times each aliquot type is centrifuged (aliquot_type.spins), and every
code already given mapped to v3.0.

The mapping (written out here as it is at this revision, not imported):
- pre-centrifugation from the sample's delay and temperature by the v3.0 bands, whose
  shared boundary belongs to the band that names it as its upper end (48 h at RT: K, was M);
- elements 4–6 by definition where the type decides them (not centrifuged: N-N-N; single
  spun: second centrifugation N), X otherwise, as before;
- long-term storage kept; DNA and RNA, which had none, get their source's code (the parent
  tube's, or the primary sample's: not centrifuged, storage X).
The downgrade maps back to what the code before gave: pre-centrifugation by the old bands
(48 h → M, N), X for elements 4–6, storage kept where the old list had it (C, D, N, X),
no code for DNA and RNA; samples recorded at 35–38 °C lose that temperature and their delay
(the old constraint has no place for them).

Revision ID: a16c1a1e0003
Revises: a16c1a1e0002
Create Date: 2026-12-01 09:20:00
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = 'a16c1a1e0003'
down_revision = 'a16c1a1e0002'
branch_labels = None
depends_on = None

TABLES = Path(__file__).resolve().parents[2] / "biobank" / "reference" / "sprec_v3.json"
SPINS = {"WB": 0, "WBM": 0, "PLASMA": 1, "PLASMA2": 2, "BUFFY": 1, "CSF-SUP": 1,
         "CSF-CELLS": 1}
# v3.0 pre-centrifugation: (upper bound, bound included, RT code, 2–10 °C code).
V3_BANDS = ((2, False, "A", "B"), (4, True, "C", "D"), (8, True, "E", "F"),
            (12, True, "G", "H"), (24, True, "I", "J"), (48, True, "K", "L"))
# What the code before this revision gave: (upper bound, excluded) only.
OLD_BANDS = ((2, "A", "B"), (4, "C", "D"), (8, "E", "F"), (12, "G", "H"), (24, "I", "J"),
             (48, "K", "L"))
OLD_STORAGE = {"C", "D", "N", "X"}
CHUNK = 500


def _v3_precentrifugation(hours, temperature):  # type: ignore[no-untyped-def]
    if hours is None or temperature is None:
        return "X"
    hours = Decimal(hours)
    if temperature == "35-38C":
        return "O" if hours < 2 else "Z"
    cold = temperature == "2-10C"
    for limit, inclusive, room, chilled in V3_BANDS:
        if hours < limit or (inclusive and hours == limit):
            return chilled if cold else room
    return "N" if cold else "M"


def _old_precentrifugation(hours, temperature):  # type: ignore[no-untyped-def]
    if hours is None or temperature is None:
        return "X"
    cold = temperature == "2-10C"
    for limit, room, chilled in OLD_BANDS:
        if Decimal(hours) < limit:
            return chilled if cold else room
    return "N" if cold else "M"


def _tubes(bind):  # type: ignore[no-untyped-def]
    """Every aliquot with what its code is made of, parents before children."""
    return bind.execute(sa.text(
        "SELECT a.id, a.parent_aliquot_id, a.sprec_code, t.sprec_type, t.code, "
        "s.container_code, s.precentrifugation_delay_hours, s.precentrifugation_temperature, "
        "m.sprec_type FROM aliquot a JOIN aliquot_type t ON t.id = a.aliquot_type_id "
        "JOIN sample s ON s.id = a.sample_id JOIN material m ON m.id = s.material_id "
        "ORDER BY a.id")).all()


def _write(bind, codes):  # type: ignore[no-untyped-def]
    """Set the codes, one UPDATE per distinct code and chunk of ids."""
    by_code = defaultdict(list)
    for aliquot_id, code in codes.items():
        by_code[code].append(aliquot_id)
    for code, ids in by_code.items():
        for start in range(0, len(ids), CHUNK):
            bind.execute(sa.text("UPDATE aliquot SET sprec_code = :code WHERE id IN ("
                                 + ", ".join(str(i) for i in ids[start:start + CHUNK]) + ")"),
                         {"code": code})


class _TriggersAside:
    """SQLite: batch mode rebuilds a table by copy and rename, which its triggers (the
    availability tally's, on aliquot and sample) do not survive: set them aside meanwhile."""

    def __init__(self, bind):  # type: ignore[no-untyped-def]
        self.bind = bind
        self.saved = []

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.bind.dialect.name == "sqlite":
            self.saved = self.bind.execute(sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
            for name, _ in self.saved:
                self.bind.execute(sa.text(f'DROP TRIGGER "{name}"'))
        return self

    def __exit__(self, *exc):  # type: ignore[no-untyped-def]
        for _, sql in self.saved:
            self.bind.execute(sa.text(sql))
        return False


def upgrade() -> None:
    data = json.loads(TABLES.read_text(encoding="utf-8"))["elements"]
    table = op.create_table(
        'sprec_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('element', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=3), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sprec_code')),
        sa.UniqueConstraint('element', 'code', name=op.f('uq_sprec_code_element_code')),
    )
    op.bulk_insert(table, [{"element": element, "code": row["code"], "name": row["name"]}
                           for element, rows in data.items() for row in rows])
    bind = op.get_bind()
    with _TriggersAside(bind):
        with op.batch_alter_table('aliquot_type', schema=None) as batch_op:
            batch_op.add_column(sa.Column('spins', sa.Integer(), nullable=True))
            batch_op.create_check_constraint(op.f('ck_aliquot_type_spins'),
                                             'spins BETWEEN 0 AND 2')
        with op.batch_alter_table('sample', schema=None) as batch_op:
            batch_op.drop_constraint(op.f('ck_sample_precentrif_temp'), type_='check')
            batch_op.create_check_constraint(
                op.f('ck_sample_precentrif_temp'),
                "precentrifugation_temperature IN ('RT', '2-10C', '35-38C')")
    for code, spins in SPINS.items():
        bind.execute(sa.text("UPDATE aliquot_type SET spins = :s WHERE code = :c"),
                     {"s": spins, "c": code})

    codes: dict[int, str] = {}
    for (aliquot_id, parent, old, kind, type_code, container, hours, temperature,
         material_type) in _tubes(bind):
        pre = _v3_precentrifugation(hours, temperature)
        if kind is None:  # DNA, RNA: the source's code
            codes[aliquot_id] = (codes.get(parent) if parent in codes else
                                 f"{material_type}-{container}-{pre}-N-N-N-X")
            continue
        storage = old.rsplit("-", 1)[-1] if old else "X"
        spins = SPINS.get(type_code)
        middle = {0: "N-N-N", 1: "X-N-X"}.get(spins, "X-X-X")  # type: ignore[arg-type]
        codes[aliquot_id] = f"{kind}-{container}-{pre}-{middle}-{storage}"
    _write(bind, codes)


def downgrade() -> None:
    bind = op.get_bind()
    codes: dict[int, str | None] = {}
    for (aliquot_id, _parent, current, kind, _type_code, container, hours, temperature,
         _material) in _tubes(bind):
        if kind is None:
            codes[aliquot_id] = None
            continue
        storage = current.rsplit("-", 1)[-1] if current else "X"
        storage = storage if storage in OLD_STORAGE else "X"
        codes[aliquot_id] = (f"{kind}-{container}-{_old_precentrifugation(hours, temperature)}"
                             f"-X-X-X-{storage}")
    bind.execute(sa.text("UPDATE aliquot SET sprec_code = NULL WHERE aliquot_type_id IN "
                         "(SELECT id FROM aliquot_type WHERE sprec_type IS NULL)"))
    _write(bind, {k: v for k, v in codes.items() if v is not None})
    bind.execute(sa.text("UPDATE sample SET precentrifugation_temperature = NULL, "
                         "precentrifugation_delay_hours = NULL "
                         "WHERE precentrifugation_temperature = '35-38C'"))
    with _TriggersAside(bind):
        with op.batch_alter_table('sample', schema=None) as batch_op:
            batch_op.drop_constraint(op.f('ck_sample_precentrif_temp'), type_='check')
            batch_op.create_check_constraint(
                op.f('ck_sample_precentrif_temp'),
                "precentrifugation_temperature IN ('RT', '2-10C')")
        with op.batch_alter_table('aliquot_type', schema=None) as batch_op:
            batch_op.drop_constraint(op.f('ck_aliquot_type_spins'), type_='check')
            batch_op.drop_column('spins')
    op.drop_table('sprec_code')
