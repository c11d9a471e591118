"""Writing an import's good rows: the driver's executemany INSERTs and their custody events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from biobank.bulk import insert_rows
from biobank.custody.models import CustodyEvent
from biobank.custody.service import append_events
from biobank.imports.rows import Row
from biobank.reports import tally
from biobank.samples import barcodes
from biobank.samples.models import Aliquot, Sample
from biobank.samples.service import Numbering

# The least volume_ml a sample can hold (volume_ml > 0, three decimals).
MIN_SAMPLE_VOLUME = Decimal("0.001")


@dataclass(slots=True)
class ImportedSample:
    """A sample this import created, as far as its later rows need it."""

    id: int
    line: int
    received_at: dt.datetime
    container_code: str
    delay: Decimal | None
    temperature: str | None
    volume: Decimal


@contextmanager
def chain_index_set_aside(session: Session, rows: int) -> Iterator[None]:
    """On SQLite, while an import of ``rows`` rows runs, drop the unique index on custody
    events' ``prev_hash`` and build it again afterwards, in the import's own transaction,
    when the rows outnumber the events stored.

    Every tube's first event links to its chain's genesis, a random 64-character key:
    inserted one by one into an index larger than SQLite's page cache, each costs ~10 µs (a
    third of the CPU time of a 1,000,000-row import), where building the index once, sorted,
    costs ~0.6 µs per event stored; hence the condition. Nobody else sees the index
    missing: SQLite's readers read the last committed state and only one transaction
    writes. Building it checks uniqueness over every event again (a duplicate fails the
    import), and a rollback undoes the drop with the rest. PostgreSQL is left alone: a
    dropped index would lock every reader of the custody log out until the commit.

    The build sorts every key in runs kept in temporary files, which this connection keeps
    in memory (temp_store = MEMORY): ~100 MB at 2,000,000 events. So they go to files for
    the build; SQLite allows that only while the connection has no temporary database
    open (no TEMP table), which is then a condition too.
    """
    connection = session.connection()
    index = _PREV_HASH_INDEX
    if (
        connection.dialect.name != "sqlite"
        or _temporary_database_open(connection)
        or (
            not connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (index.name,)
            ).first()
        )
        or rows < (connection.execute(select(func.max(CustodyEvent.id))).scalar() or 0)
    ):
        yield
        return
    index.drop(connection)
    try:
        yield
    finally:
        if _temporary_database_open(connection):  # the import opened none: not expected
            index.create(connection)
        else:
            store = connection.exec_driver_sql("PRAGMA temp_store").scalar()
            connection.exec_driver_sql("PRAGMA temp_store = FILE")
            try:
                index.create(connection)
            finally:
                connection.exec_driver_sql(f"PRAGMA temp_store = {int(store or 0)}")


def _temporary_database_open(connection: Connection) -> bool:
    return any(name == "temp" for _, name, _ in connection.exec_driver_sql("PRAGMA database_list"))


_PREV_HASH_INDEX = next(
    index for index in CustodyEvent.__table__.indexes if index.name == "uq_custody_event_prev_hash"
)


class Writer:
    """Inserts samples and aliquots chunk by chunk, with their custody events."""

    def __init__(
        self,
        session: Session,
        actor: str,
        numbering: Numbering,
        reason: str,
        now: dt.datetime,
        tallies: tally.HeldBack,
    ) -> None:
        self.session = session
        self.tallies = tallies  # the inventory tallies: the insert trigger is held back
        self.actor = actor
        self.numbering = numbering
        self.reason = reason
        self.now = now
        self.sqlite = session.get_bind().dialect.name == "sqlite"

    def _insert(
        self, model: type[Sample | Aliquot], columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> list[int]:
        """Insert rows (tuples in ``columns`` order, the barcode first); their ids, in order.

        The driver's executemany (PostgreSQL's COPY for many rows): per row, SQLAlchemy's
        parameter processing costs more than the database's insert (and RETURNING would make
        SQLAlchemy batch the rows itself, at that same cost). SQLite gives each new row the
        largest id plus one (its rule for an INTEGER PRIMARY KEY without AUTOINCREMENT) and
        writes one transaction at a time, so when the largest id grew by exactly the number
        of rows, the rows hold the ids in between, in order. Elsewhere the new ids are
        larger than any before them (a sequence only grows) and are read back from the end
        of the table, by barcode; a code not found there is looked up by barcode.
        """
        table = model.__table__
        connection = self.session.connection()
        last_id = select(func.max(table.c.id))
        before = connection.execute(last_id).scalar() or 0
        insert_rows(connection, table.name, columns, rows)
        if self.sqlite and connection.execute(last_id).scalar() == before + len(rows):
            return list(range(before + 1, before + 1 + len(rows)))
        wanted = {row[0] for row in rows}
        ids = {
            code: id_
            for code, id_ in connection.execute(
                select(table.c.barcode, table.c.id).where(table.c.id > before)
            )
            if code in wanted
        }
        if len(ids) < len(wanted):
            ids.update(
                connection.execute(
                    select(table.c.barcode, table.c.id).where(
                        table.c.barcode.in_(wanted - ids.keys())
                    )
                ).all()
            )
        return [ids[row[0]] for row in rows]

    def number(self, value: Decimal | None) -> Decimal | float | None:
        """A decimal as the column takes it: SQLite has no decimal type."""
        return float(value) if self.sqlite and value is not None else value

    def time(self, moment: dt.datetime) -> dt.datetime | str:
        """A time as the column keeps it: naive UTC; in SQLite, as text."""
        naive = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return naive.isoformat(sep=" ", timespec="microseconds") if self.sqlite else naive

    def samples(self, new: list[tuple[Row, ImportedSample]]) -> None:
        """Insert new samples (nothing left to split) and their ``received`` events."""
        if not new:
            return
        numbering = self.numbering
        codes = barcodes.issue(self.session, numbering.sample_prefix, len(new), numbering.digits)
        notes = (
            f"{self.reason.capitalize()}. volume_ml is the sum of the imported aliquots' "
            "volumes (0.001 mL when they only count cells), not the volume collected."
        )
        least, none, created = (
            self.number(MIN_SAMPLE_VOLUME),
            self.number(Decimal(0)),
            self.time(self.now),
        )
        number, time = self.number, self.time
        ids = self._insert(
            Sample,
            _SAMPLE_COLUMNS,
            [
                (
                    code,
                    row.patient_id,
                    row.timepoint_id,
                    row.unscheduled_reason,
                    row.material_id,
                    time(row.collected_at),
                    time(row.received_at),
                    least,
                    none,
                    row.container_code,
                    number(row.precentrifugation_delay_hours),
                    row.precentrifugation_temperature,
                    row.accession_number,
                    notes,
                    created,
                )
                for code, (row, _) in zip(codes, new, strict=True)
            ],
        )
        reason = self.reason
        events = []
        for id_, code, (row, sample) in zip(ids, codes, new, strict=True):
            sample.id = id_
            events.append((None, id_, "received", reason, "null", received_values(code, row)))
        append_events(self.session, events, self.actor, self.now, new_chains=True)

    def aliquots(self, good: list[tuple[Row, ImportedSample]]) -> list[tuple[int, int]]:
        """Insert aliquots and their ``imported`` events; (id, line) pairs by ascending id."""
        if not good:
            return []
        numbering = self.numbering
        issued = iter(
            barcodes.issue(
                self.session,
                numbering.aliquot_prefix,
                sum(1 for row, _ in good if row.barcode is None),
                numbering.digits,
            )
        )
        codes = [row.barcode or next(issued) for row, _ in good]
        created = self.time(self.now)
        number = self.number
        ids = self._insert(
            Aliquot,
            _ALIQUOT_COLUMNS,
            [
                (
                    code,
                    "issued" if row.barcode is None else "external",
                    sample.id,
                    row.kind.id,
                    (volume := number(row.volume_ml)),
                    volume,
                    row.cell_count,
                    row.sprec_code,
                    row.freeze_thaw_count,
                    row.status,
                    created,
                )
                for code, (row, sample) in zip(codes, good, strict=True)
            ],
        )
        self.tallies.made(ids)
        reason = self.reason
        append_events(
            self.session,
            [
                (id_, None, "imported", reason, "null", imported_values(code, row))
                for id_, code, (row, _) in zip(ids, codes, good, strict=True)
            ],
            self.actor,
            self.now,
            new_chains=True,
        )
        # Sequence values only grow, so sorted chunks make a sorted whole.
        return sorted(zip(ids, [row.line for row, _ in good], strict=True))

    def sample_volumes(self, samples: list[ImportedSample]) -> None:
        """Set the samples' volumes: the sum of their aliquots' (at least the least)."""
        mark = "?" if self.sqlite else "%s"
        number = self.number
        self.session.connection().exec_driver_sql(
            f"UPDATE {Sample.__tablename__} SET volume_ml = {mark} WHERE id = {mark}",
            [(number(max(s.volume, MIN_SAMPLE_VOLUME)), s.id) for s in samples],
        )


# The custody values of the events an import records, as chain.canonical_json writes them
# (keys sorted, ", " and ": ", strings ASCII-escaped by the same encoder, decimals and
# dates as strings), built directly: encoding a dict per row costs more than the insert.
# tests/test_import_events.py holds them to canonical_json.
_string = encode_basestring_ascii


def _or_null(value: str | None) -> str:
    return "null" if value is None else _string(value)


def imported_values(code: str, row: Row) -> str:
    """The canonical JSON of an ``imported`` event's new values."""
    cells, volume = row.cell_count, row.volume_ml
    return (
        f'{{"aliquot_type": {_string(row.kind.code)}, "barcode": {_string(code)}, '
        f'"barcode_source": "{"issued" if row.barcode is None else "external"}", '
        f'"cell_count": {"null" if cells is None else int(cells)}, '
        f'"freeze_thaw_count": {int(row.freeze_thaw_count)}, "line": {int(row.line)}, '
        f'"sprec_code": {_or_null(row.sprec_code)}, "status": {_string(row.status)}, '
        f'"volume_ml": {"null" if volume is None else _string(str(volume))}}}'
    )


def received_values(code: str, row: Row) -> str:
    """The canonical JSON of a ``received`` event's new values."""
    return (
        f'{{"accession_number": {_or_null(row.accession_number)}, '
        f'"barcode": {_string(code)}, '
        f'"collected_at": {_string(row.collected_at.isoformat())}, '
        f'"line": {int(row.line)}, "material": {_string(row.material)}, '
        f'"received_at": {_string(row.received_at.isoformat())}, '
        f'"study_id": {_string(row.study_id)}, "timepoint": {_or_null(row.timepoint)}, '
        f'"unscheduled_reason": {_or_null(row.unscheduled_reason)}}}'
    )


# The columns an import fills, in the order of the rows Writer builds.
_SAMPLE_COLUMNS = (
    "barcode",
    "patient_id",
    "timepoint_id",
    "unscheduled_reason",
    "material_id",
    "collected_at",
    "received_at",
    "volume_ml",
    "volume_remaining_ml",
    "container_code",
    "precentrifugation_delay_hours",
    "precentrifugation_temperature",
    "accession_number",
    "notes",
    "created_at",
)
_ALIQUOT_COLUMNS = (
    "barcode",
    "barcode_source",
    "sample_id",
    "aliquot_type_id",
    "volume_ml",
    "volume_remaining_ml",
    "cell_count",
    "sprec_code",
    "freeze_thaw_count",
    "status",
    "created_at",
)
