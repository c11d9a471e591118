"""Label printers and the print jobs they accepted."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import Base, Code, Str64, Str200, utcnow
from biobank.reference.models import Site


class Printer(Base):
    """A network label printer that takes raw ZPL on a TCP port (Zebra: 9100)."""

    __tablename__ = "label_printer"
    __table_args__ = (
        CheckConstraint("port BETWEEN 1 AND 65535", name="port"),
        CheckConstraint("dpi IN (203, 300)", name="dpi"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[Str64] = mapped_column(unique=True)
    host: Mapped[Str200]
    port: Mapped[int] = mapped_column(default=9100)
    dpi: Mapped[int] = mapped_column(default=203)
    template: Mapped[Str64]  # the aliquot label it prints unless a job names another
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"), index=True)
    created_by: Mapped[Str64]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    site: Mapped[Site | None] = relationship(lazy="joined")


class PrintJob(Base):
    """Labels a printer accepted: written in the transaction that sends them, before the
    bytes go (labels/printing.py), and kept only once the printer took them."""

    __tablename__ = "print_job"
    __table_args__ = (
        CheckConstraint("copies >= 1", name="copies"),
        CheckConstraint("labels >= 1", name="labels"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    printer_id: Mapped[int] = mapped_column(ForeignKey("label_printer.id"), index=True)
    template: Mapped[Str64]
    dpi: Mapped[int]
    copies: Mapped[int]
    labels: Mapped[int]
    bytes_sent: Mapped[int]
    reprint: Mapped[bool]
    reason: Mapped[Str200 | None]
    actor: Mapped[Str64]
    kind: Mapped[Code] = mapped_column(default="aliquot")
    printed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    printer: Mapped[Printer] = relationship(lazy="joined", innerjoin=True)


WAITING_SQL = "printed_at IS NULL AND cancelled_at IS NULL"


class QueuedLabel(Base):
    """A label on record for its printer before it is printed: a tube's (``aliquot_id``) or
    a box's (``container_id``). Every print writes its labels here and commits them before
    the bytes go (labels/printing.py); a label waits here when its printer did not answer
    (the bench queued it) or when what followed the send failed. Printed: ``print_job_id``
    names the job that took it; removed from the queue: ``cancelled_at``. One label per
    tube (or box) and printer waits at a time."""

    __tablename__ = "label_queue"
    __table_args__ = (
        CheckConstraint("printed_at IS NULL OR cancelled_at IS NULL", name="one_ending"),
        CheckConstraint("(aliquot_id IS NULL) <> (container_id IS NULL)", name="one_label"),
        Index(
            "uq_label_queue_waiting",
            "printer_id",
            "aliquot_id",
            unique=True,
            sqlite_where=text(WAITING_SQL),
            postgresql_where=text(WAITING_SQL),
        ),
        Index(
            "uq_label_queue_waiting_box",
            "printer_id",
            "container_id",
            unique=True,
            sqlite_where=text(WAITING_SQL),
            postgresql_where=text(WAITING_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    printer_id: Mapped[int] = mapped_column(ForeignKey("label_printer.id"))
    aliquot_id: Mapped[int | None] = mapped_column(ForeignKey("aliquot.id"))
    container_id: Mapped[int | None] = mapped_column(ForeignKey("storage_container.id"))
    # A reprint's reason, given when it was queued (the rule of print_aliquot_labels).
    reason: Mapped[Str200 | None]
    queued_by: Mapped[Str64]
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    printed_at: Mapped[dt.datetime | None]
    print_job_id: Mapped[int | None] = mapped_column(ForeignKey("print_job.id"))
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[Str64 | None]

    printer: Mapped[Printer] = relationship(lazy="joined")


# A label still waiting: neither printed nor taken out of the queue.
WAITING = (QueuedLabel.printed_at.is_(None), QueuedLabel.cancelled_at.is_(None))
