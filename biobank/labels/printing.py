"""Printing a job: its labels on record before the bytes leave, marked printed once the
printer took them. The two-step exception to "one request, one transaction".

A label sent to a printer cannot be taken back: were it recorded only in the request's
transaction, after the send, a commit that then failed (SQLite busy, a serialization failure,
a constraint, the database gone) would leave a label on a tube and nothing saying so. So a
print takes two transactions:

1. **On record.** The job's labels go into the printer queue (``label_queue``: a tube's
   label, or a box's) and are committed before a byte is sent. A label already waiting for
   that printer is taken as it is (it is the one printed).
2. **Sent and confirmed.** The print job is written (on SQLite that takes the database's write
   lock, so no other writer can fail the rest: others wait, at most the printer's timeout),
   the queue rows are locked and read again (another print of the same labels waits for
   this one, then finds them printed), the ZPL is sent, and the custody events (a box's:
   audit records) and the rows' ``printed_at`` are written. The request's commit keeps them.

Whatever fails after step 1 (the printer, step 2's writes, its commit, the database), every
label the printer may have received is on record: printed, or waiting in the queue, whose page
lists it to print again or take out. A label on record but not sent waits there the same way.
A printer that took nothing (no connection was made: refused, unreachable, timed out) leaves
no trace: the rows step 1 added are deleted again, and the answer is the printer's (502/504)
as before. One that failed part-way may have printed: its labels stay waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from biobank.errors import Conflict, DomainError
from biobank.labels import printers
from biobank.labels.models import WAITING, Printer, PrintJob, QueuedLabel
from biobank.labels.network import PrinterRule
from biobank.labels.printers import PrinterError
from biobank.labels.templates import LabelTemplate


@dataclass
class Job:
    """A print job checked and rendered, nothing written yet: what it sends, and how its
    labels are recorded once the printer took them."""

    printer: Printer
    template: LabelTemplate
    kind: str  # "aliquot" (tubes) or "box"
    ids: list[int]  # the tubes' (or boxes') ids, one per label, in label order
    codes: list[str]  # their barcodes, for messages
    stream: bytes  # the ZPL
    copies: int
    reprint: bool
    reason: str | None
    # Writes the labels' custody events (a box's: audit records) naming the job.
    record: Callable[[Session, str, PrintJob], None]
    # Set once the printer took its bytes (``send``).
    sent: bool = False

    @property
    def column(self) -> str:
        """The queue column naming a label's tube or box."""
        return "aliquot_id" if self.kind == "aliquot" else "container_id"


def print_job(
    session: Session, actor: str, job: Job, *, timeout: float, rule: PrinterRule
) -> PrintJob:
    """Print ``job`` in the two steps (the module's docstring): its labels committed to the
    queue, then sent and confirmed in the session's next transaction, which the caller
    commits. A printer that took nothing: PrinterError, and no trace of the job."""
    rows, added = hold(session, actor, job)
    session.commit()  # step 1: on record before a byte is sent
    try:
        with session.begin_nested():
            return send(session, actor, job, rows, timeout=timeout, rule=rule)
    except DomainError as exc:
        # Refused, step 2 undone by its savepoint. Before the printer took the bytes (the
        # rows left the queue meanwhile, the printer rule, a printer that took nothing) the
        # labels step 1 added go again; after, or part-way, they stay waiting.
        broke_off = isinstance(exc, PrinterError) and exc.may_have_printed
        if broke_off:
            exc.message += "; the labels wait in the printer queue"
        elif not job.sent:
            _forget(session, added)
        raise


def _forget(session: Session, added: list[int]) -> None:
    """Nothing reached the printer: the labels step 1 added leave the queue again, as if
    they had never been recorded (those someone else printed or took out meanwhile stay)."""
    if added:
        session.execute(delete(QueuedLabel).where(QueuedLabel.id.in_(added), *WAITING))
        session.commit()


def hold(session: Session, actor: str, job: Job) -> tuple[list[int], list[int]]:
    """Put the job's labels in the printer queue (a label already waiting for the printer is
    taken as it is); returns the queue rows' ids in label order, and those added."""
    column = getattr(QueuedLabel, job.column)
    waiting: dict[int, int] = dict(
        session.execute(
            select(column, QueuedLabel.id).where(
                QueuedLabel.printer_id == job.printer.id, column.in_(job.ids), *WAITING
            )
        ).all()
    )
    new = {
        subject: QueuedLabel(
            printer_id=job.printer.id, reason=job.reason, queued_by=actor, **{job.column: subject}
        )
        for subject in job.ids
        if subject not in waiting
    }
    if new:
        try:
            with session.begin_nested():
                session.add_all(new.values())
        except IntegrityError:
            raise Conflict(
                f"{', '.join(job.codes)}: another print to {job.printer.name} holds this label "
                "right now; look at the printer queue",
                field="barcodes",
            ) from None
    rows = [waiting[subject] if subject in waiting else new[subject].id for subject in job.ids]
    return rows, [row.id for row in new.values()]


def send(
    session: Session, actor: str, job: Job, rows: list[int], *, timeout: float, rule: PrinterRule
) -> PrintJob:
    """Step 2 for labels on record (queue rows ``rows``, committed): write the job, lock the
    rows (409 if they left the queue meanwhile), send, record the labels and mark the rows
    printed. A PrinterError leaves the caller to undo what this wrote (a savepoint)."""
    record = PrintJob(
        printer=job.printer,
        template=job.template.name,
        dpi=job.printer.dpi,
        copies=job.copies,
        labels=len(job.ids),
        bytes_sent=len(job.stream),
        reprint=job.reprint,
        reason=job.reason,
        actor=actor,
        kind=job.template.kind,
    )
    session.add(record)
    session.flush()  # first, so that on SQLite the write lock is held before the send
    locked = session.scalars(
        select(QueuedLabel.id)
        .where(QueuedLabel.id.in_(rows), *WAITING)
        .order_by(QueuedLabel.id)
        .with_for_update()
    ).all()
    if len(locked) != len(set(rows)):
        raise Conflict(
            f"{', '.join(job.codes)}: printed or taken out of {job.printer.name}'s queue "
            "meanwhile; look at the printer queue",
            field="barcodes",
        )
    printers.send(job.printer.name, job.printer.host, job.printer.port, job.stream, timeout, rule)
    job.sent = True
    job.record(session, actor, record)
    session.execute(
        update(QueuedLabel)
        .where(QueuedLabel.id.in_(rows))
        .values(printed_at=record.printed_at, print_job_id=record.id)
    )
    return record
