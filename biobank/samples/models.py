"""Primary samples and the aliquots split from them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import Base, Code, Str64, Str200, Volume, utcnow
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material, Timepoint
from biobank.samples.states import STATUSES

_status_list = ", ".join(f"'{s}'" for s in STATUSES)


class BarcodeCounter(Base):
    """The next number of a barcode series; one row per prefix, locked on use."""

    __tablename__ = "barcode_counter"

    prefix: Mapped[Code] = mapped_column(primary_key=True)
    next_value: Mapped[int]


class Sample(Base):
    """A primary collection from a patient at an MRD timepoint (or unscheduled)."""

    __tablename__ = "sample"
    __table_args__ = (
        CheckConstraint(
            "timepoint_id IS NOT NULL OR unscheduled_reason IS NOT NULL", name="timepoint_or_reason"
        ),
        CheckConstraint("received_at >= collected_at", name="received_after_collected"),
        # An anonymised sample (no patient) keeps no patient dates and no hospital number.
        CheckConstraint(
            "(patient_id IS NOT NULL AND collected_at IS NOT NULL "
            "AND received_at IS NOT NULL) OR (patient_id IS NULL AND "
            "collected_at IS NULL AND received_at IS NULL "
            "AND accession_number IS NULL AND notes IS NULL)",
            name="anonymised_undated",
        ),
        CheckConstraint("volume_ml > 0", name="volume_positive"),
        CheckConstraint(
            "volume_remaining_ml >= 0 AND volume_remaining_ml <= volume_ml",
            name="remaining_within_volume",
        ),
        CheckConstraint(
            "precentrifugation_temperature IN ('RT', '2-10C', '35-38C')", name="precentrif_temp"
        ),
        Index("ix_sample_patient_timepoint", "patient_id", "timepoint_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    barcode: Mapped[Str64] = mapped_column(unique=True)
    # None once anonymised (biobank.consent.anonymise): the link to the patient is cut.
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    timepoint_id: Mapped[int | None] = mapped_column(ForeignKey("timepoint.id"), index=True)
    unscheduled_reason: Mapped[Str200 | None]
    material_id: Mapped[int] = mapped_column(ForeignKey("material.id"))
    collected_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime | None]
    volume_ml: Mapped[Volume]
    volume_remaining_ml: Mapped[Volume]
    container_code: Mapped[str] = mapped_column(String(3))
    precentrifugation_delay_hours: Mapped[Decimal | None]
    precentrifugation_temperature: Mapped[str | None] = mapped_column(String(8))
    accession_number: Mapped[Str64 | None]
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient | None] = relationship(lazy="joined")
    timepoint: Mapped[Timepoint | None] = relationship(lazy="joined")
    material: Mapped[Material] = relationship(lazy="joined", innerjoin=True)


class Aliquot(Base):
    """A tube: a portion of a sample (or of another aliquot) with its own barcode."""

    __tablename__ = "aliquot"
    __table_args__ = (
        CheckConstraint(f"status IN ({_status_list})", name="status"),
        CheckConstraint("barcode_source IN ('issued', 'external')", name="barcode_source"),
        CheckConstraint("volume_ml IS NOT NULL OR cell_count IS NOT NULL", name="amount"),
        CheckConstraint("volume_ml IS NULL OR volume_ml > 0", name="volume_positive"),
        CheckConstraint(
            "volume_remaining_ml IS NULL OR "
            "(volume_remaining_ml >= 0 AND volume_remaining_ml <= volume_ml)",
            name="remaining_within_volume",
        ),
        CheckConstraint("cell_count IS NULL OR cell_count > 0", name="cells_positive"),
        CheckConstraint("freeze_thaw_count >= 0", name="freeze_thaw"),
        Index("ix_aliquot_sample_status", "sample_id", "status"),
        Index("ix_aliquot_type_status", "aliquot_type_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    barcode: Mapped[Str64] = mapped_column(unique=True)
    barcode_source: Mapped[Code] = mapped_column(default="issued")
    sample_id: Mapped[int] = mapped_column(ForeignKey("sample.id"))
    parent_aliquot_id: Mapped[int | None] = mapped_column(ForeignKey("aliquot.id"), index=True)
    aliquot_type_id: Mapped[int] = mapped_column(ForeignKey("aliquot_type.id"))
    volume_ml: Mapped[Volume | None]
    volume_remaining_ml: Mapped[Volume | None]
    # What the parent was debited, when it differs from the tube's own volume
    # (1 mL of cells in freezing medium made from 2 mL of marrow).
    source_volume_ml: Mapped[Volume | None]
    cell_count: Mapped[int | None]
    sprec_code: Mapped[Str64 | None]
    freeze_thaw_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[Code] = mapped_column(default="available")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    sample: Mapped[Sample] = relationship(lazy="joined", innerjoin=True)
    aliquot_type: Mapped[AliquotType] = relationship(lazy="joined", innerjoin=True)
    parent: Mapped[Aliquot | None] = relationship(remote_side=[id])
