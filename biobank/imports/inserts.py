"""Writing an import's good rows: the driver's executemany INSERTs and their custody events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from biobank.custody.service import record_events
from biobank.imports.rows import Row
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


class Writer:
    """Inserts samples and aliquots chunk by chunk, with their custody events."""

    def __init__(self, session: Session, actor: str, numbering: Numbering, reason: str,
                 now: dt.datetime) -> None:
        self.session = session
        self.actor = actor
        self.numbering = numbering
        self.reason = reason
        self.now = now
        self.sqlite = session.get_bind().dialect.name == "sqlite"

    def _insert(self, model: type[Sample | Aliquot], columns: tuple[str, ...],
                rows: list[tuple[Any, ...]]) -> dict[str, int]:
        """Insert rows (tuples in ``columns`` order, the barcode first); their ids by barcode.

        The driver's executemany: per row, SQLAlchemy's parameter processing costs more than
        the database's insert (and RETURNING would make SQLAlchemy batch the rows itself, at
        that same cost). New ids are larger than any id before them (SQLite takes the
        largest plus one, PostgreSQL's sequence only grows), so the ids are read back from
        the end of the table, in key order; a code not found there is looked up by barcode.
        """
        table = model.__table__
        connection = self.session.connection()
        before = connection.execute(select(func.max(table.c.id))).scalar() or 0
        mark = "?" if self.sqlite else "%s"
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) "
                                   f"VALUES ({', '.join([mark] * len(columns))})", rows)
        wanted = {row[0] for row in rows}
        ids = {code: id_ for code, id_ in connection.execute(
            select(table.c.barcode, table.c.id).where(table.c.id > before)) if code in wanted}
        if len(ids) < len(wanted):
            ids.update(connection.execute(select(table.c.barcode, table.c.id).where(
                table.c.barcode.in_(wanted - ids.keys()))).all())
        return ids

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
        notes = (f"{self.reason.capitalize()}. volume_ml is the sum of the imported aliquots' "
                 "volumes (0.001 mL when they only count cells), not the volume collected.")
        least, none, created = self.number(MIN_SAMPLE_VOLUME), self.number(Decimal(0)), \
            self.time(self.now)
        rows = [(code, row.patient_id, row.timepoint_id, row.unscheduled_reason, row.material_id,
                 self.time(row.collected_at), self.time(row.received_at), least, none,
                 row.container_code, self.number(row.precentrifugation_delay_hours),
                 row.precentrifugation_temperature, row.accession_number, notes, created)
                for code, (row, _) in zip(codes, new, strict=True)]
        ids = self._insert(Sample, _SAMPLE_COLUMNS, rows)
        for code, (_, sample) in zip(codes, new, strict=True):
            sample.id = ids[code]
        record_events(self.session, ({
            "event_type": "received", "sample_id": sample.id, "reason": self.reason,
            "new_values": {
                "barcode": code, "study_id": row.study_id,
                "timepoint": row.timepoint, "unscheduled_reason": row.unscheduled_reason,
                "material": row.material, "collected_at": row.collected_at,
                "received_at": row.received_at, "accession_number": row.accession_number,
                "line": row.line,
            },
        } for code, (row, sample) in zip(codes, new, strict=True)), self.actor, self.now,
            new_chains=True)

    def aliquots(self, good: list[tuple[Row, ImportedSample]]) -> list[tuple[int, int]]:
        """Insert aliquots and their ``imported`` events; (id, line) pairs by ascending id."""
        if not good:
            return []
        numbering = self.numbering
        issued = iter(barcodes.issue(self.session, numbering.aliquot_prefix,
                                     sum(1 for row, _ in good if row.barcode is None),
                                     numbering.digits))
        codes = [row.barcode or next(issued) for row, _ in good]
        created = self.time(self.now)
        ids = self._insert(Aliquot, _ALIQUOT_COLUMNS, [
            (code, "external" if row.barcode else "issued", sample.id, row.kind.id,
             self.number(row.volume_ml), self.number(row.volume_ml), row.cell_count,
             row.sprec_code, row.freeze_thaw_count, row.status, created)
            for code, (row, sample) in zip(codes, good, strict=True)])
        record_events(self.session, ({
            "event_type": "imported", "aliquot_id": ids[code], "reason": self.reason,
            "new_values": {
                "barcode": code, "barcode_source": "external" if row.barcode else "issued",
                "aliquot_type": row.kind.code, "volume_ml": row.volume_ml,
                "cell_count": row.cell_count, "sprec_code": row.sprec_code,
                "freeze_thaw_count": row.freeze_thaw_count, "status": row.status,
                "line": row.line,
            },
        } for code, (row, _) in zip(codes, good, strict=True)), self.actor, self.now,
            new_chains=True)
        # Sequence values only grow, so sorted chunks make a sorted whole.
        return sorted((ids[code], row.line) for code, (row, _) in zip(codes, good, strict=True))


# The columns an import fills, in the order of the rows Writer builds.
_SAMPLE_COLUMNS = ("barcode", "patient_id", "timepoint_id", "unscheduled_reason", "material_id",
                   "collected_at", "received_at", "volume_ml", "volume_remaining_ml",
                   "container_code", "precentrifugation_delay_hours",
                   "precentrifugation_temperature", "accession_number", "notes", "created_at")
_ALIQUOT_COLUMNS = ("barcode", "barcode_source", "sample_id", "aliquot_type_id", "volume_ml",
                    "volume_remaining_ml", "cell_count", "sprec_code", "freeze_thaw_count",
                    "status", "created_at")
