"""Labels queued for a printer that did not answer, printed once it does.

At the bench a printer that is off must not be a dead end: the technician queues the label
and goes on. The queue is printed when somebody asks (the printer queue page), and by itself
right after the next label that printer takes from the scan station. A queued label prints
through ``service.print_aliquot_labels`` like any other (custody events, reprint reasons,
the job recorded only once the printer took the bytes); the queue row then names the job.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.db import utcnow
from biobank.errors import Conflict, NotFound
from biobank.labels import service
from biobank.labels.models import Printer, QueuedLabel
from biobank.labels.network import PrinterRule
from biobank.labels.printers import PrinterError
from biobank.labels.templates import Registry
from biobank.samples.models import Aliquot

WAITING = (QueuedLabel.printed_at.is_(None), QueuedLabel.cancelled_at.is_(None))


@dataclass
class Waiting:
    """A label in the queue, as the page shows it."""

    id: int
    printer: str
    barcode: str
    reason: str | None
    queued_by: str
    queued_at: object


def enqueue(
    session: Session, actor: str, printer: Printer, codes: list[str], reason: str | None = None
) -> list[QueuedLabel]:
    """Queue these tubes' labels for ``printer``; a reprint needs its reason now, as it
    would when printed at once."""
    labels = service.aliquot_labels(session, codes)
    service.reprints(session, labels, reason)
    queued = [
        QueuedLabel(printer_id=printer.id, aliquot_id=aliquot_id, reason=reason, queued_by=actor)
        for aliquot_id, _ in labels
    ]
    try:
        with session.begin_nested():
            session.add_all(queued)
    except IntegrityError:
        raise Conflict(
            f"{', '.join(codes)}: already waiting for {printer.name}", field="code"
        ) from None
    return queued


def waiting(session: Session, printer: Printer | None = None) -> list[Waiting]:
    """The labels waiting, oldest first (for one printer, or all)."""
    query = (
        select(
            QueuedLabel.id,
            Printer.name,
            Aliquot.barcode,
            QueuedLabel.reason,
            QueuedLabel.queued_by,
            QueuedLabel.queued_at,
        )
        .join(Printer, QueuedLabel.printer_id == Printer.id)
        .join(Aliquot, QueuedLabel.aliquot_id == Aliquot.id)
        .where(*WAITING)
        .order_by(QueuedLabel.id)
    )
    if printer is not None:
        query = query.where(QueuedLabel.printer_id == printer.id)
    # A site-scoped user sees the labels of their sites' tubes only (auth.scope's tube rule).
    query = query.where(scope.aliquot_filter(scope.of(session), QueuedLabel.aliquot_id))
    return [Waiting(*row) for row in session.execute(query)]


def print_waiting(
    session: Session,
    actor: str,
    printer: Printer,
    registry: Registry,
    *,
    timeout: float,
    rule: PrinterRule,
) -> int:
    """Send every label waiting for ``printer`` (PrinterError when it still does not answer:
    nothing is then written); returns how many printed."""
    rows = session.execute(
        select(QueuedLabel.id, QueuedLabel.reason, Aliquot.barcode)
        .join(Aliquot, QueuedLabel.aliquot_id == Aliquot.id)
        .where(QueuedLabel.printer_id == printer.id, *WAITING)
        .order_by(QueuedLabel.id)
        .with_for_update(of=QueuedLabel)
    ).all()
    by_reason: dict[str | None, list[tuple[int, str]]] = defaultdict(list)
    for queue_id, reason, barcode in rows:
        by_reason[reason].append((queue_id, barcode))
    printed = 0
    for reason, group in by_reason.items():
        # One savepoint per job: a job the printer took stays recorded if a later one fails.
        try:
            with session.begin_nested():
                job = service.print_aliquot_labels(
                    session,
                    actor,
                    printer,
                    [b for _, b in group],
                    registry,
                    reason=reason,
                    timeout=timeout,
                    rule=rule,
                )
                session.execute(
                    update(QueuedLabel)
                    .where(QueuedLabel.id.in_([i for i, _ in group]), *WAITING)
                    .values(printed_at=job.printed_at, print_job_id=job.id)
                )
        except PrinterError:
            if printed:
                return printed
            raise
        printed += len(group)
    return printed


def remove(session: Session, actor: str, queue_id: int) -> Waiting:
    """Take a label out of the queue (printed some other way, or not needed)."""
    found = [w for w in waiting(session) if w.id == queue_id]
    if not found:
        raise NotFound(f"no label {queue_id} waiting in a printer queue")
    changed = session.execute(
        update(QueuedLabel)
        .where(QueuedLabel.id == queue_id, *WAITING)
        .values(cancelled_at=utcnow(), cancelled_by=actor)
    ).rowcount
    if changed != 1:
        raise Conflict(f"label {queue_id} left the queue meanwhile", field="label")
    return found[0]
