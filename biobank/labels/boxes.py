"""Box labels, and the labels of the tubes a box holds (from the storage domain).

A box is no custody subject (custody events belong to samples and aliquots): its printed
labels go to the audit trail of the container, ``label_printed`` / ``label_reprinted``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.custody.models import AuditRecord
from biobank.custody.service import record_audit
from biobank.errors import Invalid
from biobank.labels import printing
from biobank.labels.models import Printer, PrintJob
from biobank.labels.network import PrinterRule
from biobank.labels.service import aliquot_rows
from biobank.labels.templates import Registry
from biobank.samples.models import Aliquot
from biobank.storage.models import Container, Position
from biobank.storage.service import lineages


def box_label(session: Session, box: Container) -> dict[str, str]:
    """What a box's label shows: barcode, name, box type, site, date."""
    lineage = lineages(session, [box.id]).get(box.id)
    return {
        "barcode": box.barcode,
        "name": box.name,
        "box_type": box.box_type.code if box.box_type else "",
        "site": lineage.site if lineage and lineage.site else "",
        "date": box.created_at.date().isoformat(),
    }


def contents_labels(session: Session, box: Container) -> list[tuple[int, dict[str, str]]]:
    """Label data of the tubes in a box (not those taken out), in position order."""
    places = {
        aliquot_id: (row or 0, col or 0, aliquot_id)
        for aliquot_id, row, col in session.execute(
            select(Position.aliquot_id, Position.row_no, Position.col_no).where(
                Position.box_id == box.id, Position.out_since.is_(None)
            )
        )
    }
    if not places:
        return []
    rows = aliquot_rows(session, Aliquot.id.in_(list(places)))
    return sorted(rows, key=lambda row: places[row[0]])


def box_job(
    session: Session,
    printer: Printer,
    boxes: list[Container],
    registry: Registry,
    *,
    template: str | None = None,
    copies: int = 1,
    reason: str | None = None,
) -> printing.Job:
    """The job printing these boxes' labels, checked (a reprint needs a reason: 422) and
    rendered; nothing is written."""
    chosen = registry.get(template, "box", printer.dpi)
    codes = [box.barcode for box in boxes]
    before = set(
        session.scalars(
            select(AuditRecord.entity_key).where(
                AuditRecord.entity_type == "container",
                AuditRecord.entity_key.in_(codes),
                AuditRecord.action.in_(("label_printed", "label_reprinted")),
            )
        )
    )
    if before and not (reason and reason.strip()):
        raise Invalid(
            f"{', '.join(sorted(before))} had a label printed before: say why it is printed again",
            field="reason",
        )
    stream, _ = chosen.render("zpl", printer.dpi, [box_label(session, b) for b in boxes], copies)

    def record(session: Session, actor: str, job: PrintJob) -> None:
        for code in codes:
            record_audit(
                session,
                actor,
                "container",
                code,
                "label_reprinted" if code in before else "label_printed",
                reason=reason,
                new_values={
                    "printer": printer.name,
                    "template": chosen.name,
                    "dpi": printer.dpi,
                    "copies": copies,
                    "print_job": job.id,
                },
            )

    return printing.Job(
        printer=printer,
        template=chosen,
        kind="box",
        ids=[box.id for box in boxes],
        codes=codes,
        stream=stream,
        copies=copies,
        reprint=bool(before),
        reason=reason,
        record=record,
    )


def print_box_labels(
    session: Session,
    actor: str,
    printer: Printer,
    boxes: list[Container],
    registry: Registry,
    *,
    template: str | None = None,
    copies: int = 1,
    reason: str | None = None,
    timeout: float,
    rule: PrinterRule,
) -> PrintJob:
    """Print box labels: on record (in the printer queue, committed) before the printer gets
    them, each noted in its box's audit trail once it took them (labels/printing.py)."""
    job = box_job(
        session, printer, boxes, registry, template=template, copies=copies, reason=reason
    )
    return printing.print_job(session, actor, job, timeout=timeout, rule=rule)
