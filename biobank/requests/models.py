"""Sample requests from sub-study researchers: the request, the tubes allocated to it,
and the shipment that took them away."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, Connection, ForeignKey, Index, Text, event, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.consent.models import Substudy
from biobank.db import Base, Code, Str64, Str200, utcnow
from biobank.requests import tally
from biobank.samples.models import Aliquot

# A request's lifecycle; biobank.requests.lifecycle.TRANSITIONS says which step follows which.
STATES = (
    "draft",
    "submitted",
    "approved",
    "rejected",
    "allocated",
    "picking",
    "shipped",
    "received",
    "closed",
    "cancelled",
)
# What became of one allocated tube.
TUBE_STATES = (
    "allocated",
    "picked",
    "dropped",
    "shipped",
    "received",
    "consumed",
    "returned",
    "destroyed",
)
# Tubes that hold a reservation: an aliquot is in at most one such row, in any request.
HELD = ("allocated", "picked")
CONDITIONS = ("dry_ice", "ln2_dry_shipper", "ambient")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_HELD_SQL = _in("state", HELD)


class SampleRequest(Base):
    """A researcher's request for material for one sub-study."""

    __tablename__ = "sample_request"
    __table_args__ = (
        CheckConstraint(_in("state", STATES), name="state"),
        CheckConstraint(
            "state <> 'rejected' OR decision_reason IS NOT NULL", name="rejection_reason"
        ),
        CheckConstraint("state <> 'cancelled' OR cancel_reason IS NOT NULL", name="cancel_reason"),
        Index("ix_sample_request_substudy_state", "substudy_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Issued from a barcode series (RQ…), so a printed request sheet can be scanned.
    number: Mapped[Str64] = mapped_column(unique=True)
    substudy_id: Mapped[int] = mapped_column(ForeignKey("substudy.id"))
    state: Mapped[Code] = mapped_column(default="draft")
    title: Mapped[Str200]
    purpose: Mapped[str] = mapped_column(Text)
    # What the researcher asked for, and what the manager approved (may be less).
    criteria: Mapped[dict[str, Any]]
    approved_criteria: Mapped[dict[str, Any] | None]
    created_by: Mapped[Str64]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[dt.datetime | None]
    decided_by: Mapped[Str64 | None]
    decided_at: Mapped[dt.datetime | None]
    decision_reason: Mapped[Str200 | None]
    allocated_by: Mapped[Str64 | None]
    allocated_at: Mapped[dt.datetime | None]
    # What the allocation found, against what was asked (patients, aliquots).
    allocation_summary: Mapped[dict[str, Any] | None]
    cancelled_by: Mapped[Str64 | None]
    cancelled_at: Mapped[dt.datetime | None]
    cancel_reason: Mapped[Str200 | None]
    closed_by: Mapped[Str64 | None]
    closed_at: Mapped[dt.datetime | None]

    substudy: Mapped[Substudy] = relationship(lazy="joined", innerjoin=True)
    shipment: Mapped[Shipment | None] = relationship(
        lazy="selectin", uselist=False, back_populates="request"
    )

    @property
    def substudy_code(self) -> str:
        """The sub-study's code."""
        return self.substudy.code

    @property
    def effective_criteria(self) -> dict[str, Any]:
        """What allocation works from: the approved criteria, else the requested ones."""
        return self.approved_criteria or self.criteria


class RequestAliquot(Base):
    """One tube allocated to a request, and what became of it."""

    __tablename__ = "request_aliquot"
    __table_args__ = (
        CheckConstraint(_in("state", TUBE_STATES), name="state"),
        CheckConstraint("state <> 'dropped' OR reason IS NOT NULL", name="dropped_reason"),
        Index("uq_request_aliquot_request_aliquot", "request_id", "aliquot_id", unique=True),
        # However requests race, one tube is held for at most one of them.
        Index(
            "uq_request_aliquot_held",
            "aliquot_id",
            unique=True,
            sqlite_where=text(_HELD_SQL),
            postgresql_where=text(_HELD_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("sample_request.id"))
    aliquot_id: Mapped[int] = mapped_column(ForeignKey("aliquot.id"))
    state: Mapped[Code] = mapped_column(default="allocated")
    reason: Mapped[Str200 | None]
    allocated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    picked_at: Mapped[dt.datetime | None]
    picked_by: Mapped[Str64 | None]
    discrepancy: Mapped[Str200 | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    aliquot: Mapped[Aliquot] = relationship(lazy="raise")


class Shipment(Base):
    """How a request's tubes left: courier, tracking, conditions, recipient; and receipt."""

    __tablename__ = "request_shipment"
    __table_args__ = (CheckConstraint(_in("condition", CONDITIONS), name="condition"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("sample_request.id"), unique=True)
    courier: Mapped[Str64]
    tracking_number: Mapped[Str64]
    condition: Mapped[Code]
    recipient_name: Mapped[Str200]
    recipient_institution: Mapped[Str200]
    recipient_address: Mapped[str] = mapped_column(Text)
    shipped_by: Mapped[Str64]
    shipped_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    received_by: Mapped[Str64 | None]
    received_at: Mapped[dt.datetime | None]
    receipt_note: Mapped[Str200 | None]

    request: Mapped[SampleRequest] = relationship(back_populates="shipment")

    @property
    def recipient(self) -> str:
        """Who received the tubes, in one line (recall notices name them so)."""
        return f"{self.recipient_name}, {self.recipient_institution}"


# Counting available tubes reads the aliquot table by status, then by sample: this index
# answers that without touching the table (availability over a million aliquots).
Index(
    "ix_aliquot_available_sample",
    Aliquot.status,
    Aliquot.sample_id,
    Aliquot.aliquot_type_id,
    Aliquot.freeze_thaw_count,
    Aliquot.volume_remaining_ml,
)


class AvailabilityTally(Base):
    """Available tubes of one patient at one timepoint, material and aliquot type: kept by
    triggers on aliquot and sample (``biobank.requests.tally``), read by availability in key
    order. Derived data: no foreign keys; a count of 0 stays."""

    __tablename__ = tally.TABLE
    __table_args__ = (CheckConstraint("tubes >= 0", name="tubes"), {"sqlite_with_rowid": False})

    # The sample's timepoint; 0 for none (a key has no NULLs).
    timepoint_key: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    material_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    aliquot_type_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # Indexed for PostgreSQL, which finds the consented patients' rows through it (SQLite
    # reads the tally in key order instead: availability.counted_from_tally).
    patient_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False, index=True)
    tubes: Mapped[int]


@event.listens_for(Base.metadata, "after_create")
def _create_tally_triggers(
    _metadata: Any, connection: Connection, tables: Any = (), **_kw: Any
) -> None:
    """create_all (scratch databases) makes the tally's triggers too, once aliquot and sample
    exist; the migrations make their own."""
    if AvailabilityTally.__table__ in tables:
        for statement in tally.create_statements(connection.dialect.name):
            connection.exec_driver_sql(statement)
