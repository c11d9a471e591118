"""Writing an import's good rows: Core executemany INSERTs and their custody events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
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

    def _insert(self, model: type[Sample] | type[Aliquot], rows: list[dict[str, Any]]
                ) -> dict[str, int]:
        """Insert rows in batches (Core executemany); their ids by barcode.

        Ids are matched by barcode rather than by position: asking for RETURNING in
        parameter order makes SQLAlchemy send SQLite one row per statement.
        """
        table = model.__table__
        result = self.session.execute(insert(table).returning(table.c.barcode, table.c.id), rows)
        return {barcode: id_ for barcode, id_ in result}

    def samples(self, new: list[tuple[Row, ImportedSample]]) -> None:
        """Insert new samples (nothing left to split) and their ``received`` events."""
        if not new:
            return
        numbering = self.numbering
        codes = barcodes.issue(self.session, numbering.sample_prefix, len(new), numbering.digits)
        notes = (f"{self.reason.capitalize()}. volume_ml is the sum of the imported aliquots' "
                 "volumes (0.001 mL when they only count cells), not the volume collected.")
        rows = [{
            "barcode": code, "patient_id": row.patient_id, "timepoint_id": row.timepoint_id,
            "unscheduled_reason": row.unscheduled_reason, "material_id": row.material_id,
            "collected_at": row.collected_at, "received_at": row.received_at,
            "volume_ml": MIN_SAMPLE_VOLUME, "volume_remaining_ml": Decimal(0),
            "container_code": row.container_code,
            "precentrifugation_delay_hours": row.precentrifugation_delay_hours,
            "precentrifugation_temperature": row.precentrifugation_temperature,
            "accession_number": row.accession_number, "notes": notes, "created_at": self.now,
        } for code, (row, _) in zip(codes, new, strict=True)]
        ids = self._insert(Sample, rows)
        for code, (_, sample) in zip(codes, new, strict=True):
            sample.id = ids[code]
        record_events(self.session, ({
            "event_type": "received", "sample_id": sample.id, "reason": self.reason,
            "new_values": {
                "barcode": values["barcode"], "study_id": row.study_id,
                "timepoint": row.timepoint, "unscheduled_reason": row.unscheduled_reason,
                "material": row.material, "collected_at": row.collected_at,
                "received_at": row.received_at, "accession_number": row.accession_number,
                "line": row.line,
            },
        } for values, (row, sample) in zip(rows, new, strict=True)), self.actor, self.now,
            new_chains=True)

    def aliquots(self, good: list[tuple[Row, ImportedSample]]) -> list[tuple[int, int]]:
        """Insert aliquots and their ``imported`` events; (id, line) pairs by ascending id."""
        if not good:
            return []
        numbering = self.numbering
        issued = iter(barcodes.issue(self.session, numbering.aliquot_prefix,
                                     sum(1 for row, _ in good if row.barcode is None),
                                     numbering.digits))
        rows = [{
            "barcode": row.barcode or next(issued),
            "barcode_source": "external" if row.barcode else "issued",
            "sample_id": sample.id, "aliquot_type_id": row.kind.id,
            "volume_ml": row.volume_ml, "volume_remaining_ml": row.volume_ml,
            "cell_count": row.cell_count,
            "sprec_code": row.sprec_code, "freeze_thaw_count": row.freeze_thaw_count,
            "status": row.status, "created_at": self.now,
        } for row, sample in good]
        ids = self._insert(Aliquot, rows)
        record_events(self.session, ({
            "event_type": "imported", "aliquot_id": ids[values["barcode"]], "reason": self.reason,
            "new_values": {
                "barcode": values["barcode"], "barcode_source": values["barcode_source"],
                "aliquot_type": row.kind.code, "volume_ml": row.volume_ml,
                "cell_count": row.cell_count, "sprec_code": row.sprec_code,
                "freeze_thaw_count": row.freeze_thaw_count, "status": row.status,
                "line": row.line,
            },
        } for values, (row, _) in zip(rows, good, strict=True)), self.actor, self.now,
            new_chains=True)
        # Sequence values only grow, so sorted chunks make a sorted whole.
        return sorted((ids[values["barcode"]], row.line)
                      for values, (row, _) in zip(rows, good, strict=True))
