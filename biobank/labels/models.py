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
    """Labels a printer accepted: written only after the bytes went through."""

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


class QueuedLabel(Base):
    """A tube's label waiting for its printer to answer again (the bench queued it when the
    printer did not take it). Printed: ``print_job_id`` names the job that took it; removed
    from the queue: ``cancelled_at``. One label per tube and printer waits at a time."""

    __tablename__ = "label_queue"
    __table_args__ = (
        CheckConstraint("printed_at IS NULL OR cancelled_at IS NULL", name="one_ending"),
        Index(
            "uq_label_queue_waiting",
            "printer_id",
            "aliquot_id",
            unique=True,
            sqlite_where=text("printed_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=text("printed_at IS NULL AND cancelled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    printer_id: Mapped[int] = mapped_column(ForeignKey("label_printer.id"))
    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"))
    # A reprint's reason, given when it was queued (the rule of print_aliquot_labels).
    reason: Mapped[Str200 | None]
    queued_by: Mapped[Str64]
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    printed_at: Mapped[dt.datetime | None]
    print_job_id: Mapped[int | None] = mapped_column(ForeignKey("print_job.id"))
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[Str64 | None]

    printer: Mapped[Printer] = relationship(lazy="joined")
