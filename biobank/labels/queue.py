"""The printer queue: labels on record for a printer and not printed yet.

At the bench a printer that is off must not be a dead end: the technician queues the label
and goes on. Every print also writes its labels here, committed, before their bytes go out
(labels/printing.py), so a label whose print failed after that (the printer broke off, the
database refused or lost what followed) waits here too: a tube's or a box's. The queue is
printed when somebody asks (the printer queue page), and by itself right after the next label
that printer takes from the scan station. A queued label prints through the same second step
as any other (custody events or a box's audit records, reprint reasons, the job written in the
transaction that sends it); the queue row then names the job.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.db import utcnow
from biobank.errors import Conflict, NotFound
from biobank.labels import boxes, printing, service
from biobank.labels.models import WAITING, Printer, QueuedLabel
from biobank.labels.network import PrinterRule
from biobank.labels.printers import PrinterError
from biobank.labels.templates import Registry
from biobank.samples.models import Aliquot
from biobank.storage.models import Container


@dataclass
class Waiting:
    """A label in the queue, as the page shows it."""

    id: int
    printer: str
    barcode: str
    reason: str | None
    queued_by: str
    queued_at: object
    kind: str = "aliquot"  # a tube's label, or a "box"'s


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
            func.coalesce(Aliquot.barcode, Container.barcode),
            QueuedLabel.reason,
            QueuedLabel.queued_by,
            QueuedLabel.queued_at,
            case((QueuedLabel.container_id.is_(None), "aliquot"), else_="box"),
        )
        .join(Printer, QueuedLabel.printer_id == Printer.id)
        .outerjoin(Aliquot, QueuedLabel.aliquot_id == Aliquot.id)
        .outerjoin(Container, QueuedLabel.container_id == Container.id)
        .where(*WAITING)
        .order_by(QueuedLabel.id)
    )
    if printer is not None:
        query = query.where(QueuedLabel.printer_id == printer.id)
    # A site-scoped user sees the labels of their sites' tubes (auth.scope's tube rule) and
    # boxes only.
    asker = scope.of(session)
    query = query.where(
        or_(
            scope.aliquot_filter(asker, QueuedLabel.aliquot_id),
            scope.container_filter(asker, QueuedLabel.container_id),
        )
    )
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
    """Send every label waiting for ``printer``, one job per kind and reason (PrinterError
    when it still does not answer: nothing is then written); returns how many printed."""
    rows = session.execute(
        select(QueuedLabel.id, QueuedLabel.reason, QueuedLabel.aliquot_id, QueuedLabel.container_id)
        .where(QueuedLabel.printer_id == printer.id, *WAITING)
        .order_by(QueuedLabel.id)
        .with_for_update()
    ).all()
    groups: dict[tuple[str, str | None], list[tuple[int, int]]] = defaultdict(list)
    for queue_id, reason, aliquot_id, container_id in rows:
        if aliquot_id is not None:
            groups["aliquot", reason].append((queue_id, aliquot_id))
        elif container_id is not None:  # one of the two (the table's check constraint)
            groups["box", reason].append((queue_id, container_id))
    # Every job checked before the first is sent: a refusal sends nothing.
    jobs = [
        (_job(session, printer, registry, kind, [subject for _, subject in group], reason), group)
        for (kind, reason), group in groups.items()
    ]
    printed = 0
    for job, group in jobs:
        # One savepoint per job: a job the printer took stays recorded if a later one fails.
        try:
            with session.begin_nested():
                printing.send(
                    session, actor, job, [i for i, _ in group], timeout=timeout, rule=rule
                )
        except PrinterError:
            if printed:
                return printed
            raise
        printed += len(group)
    return printed


def _job(
    session: Session,
    printer: Printer,
    registry: Registry,
    kind: str,
    ids: list[int],
    reason: str | None,
) -> printing.Job:
    """The job printing waiting labels, checked as a new print's would be (a reprint with
    its reason, tubes and boxes the asker may see)."""
    if kind == "box":
        found = {
            box.id: box
            for box in session.scalars(
                select(Container).where(
                    Container.id.in_(ids), scope.container_filter(scope.of(session), Container.id)
                )
            )
        }
        if len(found) != len(ids):
            raise NotFound("a box label waiting for this printer is of a box not at your sites")
        return boxes.box_job(session, printer, [found[i] for i in ids], registry, reason=reason)
    codes = dict(
        session.execute(select(Aliquot.id, Aliquot.barcode).where(Aliquot.id.in_(ids))).all()
    )
    return service.aliquot_job(session, printer, [codes[i] for i in ids], registry, reason=reason)


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
