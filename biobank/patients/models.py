"""Patients (pseudonymous), their risk-group history and MRD results."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import Base, Code, Str64, Str200, utcnow
from biobank.reference.models import Site, Timepoint

SEXES = ("F", "M", "U")
DIAGNOSES = ("B-ALL", "B-MPAL")
PREDNISONE_RESPONSES = ("good", "poor", "unknown")
RISK_GROUPS = ("MR", "HR")


class Patient(Base):
    """An enrolled infant, known only by the study pseudonym."""

    __tablename__ = "patient"
    __table_args__ = (
        CheckConstraint("age_at_diagnosis_days BETWEEN 0 AND 365", name="age_limit"),
        CheckConstraint("sex IN ('F', 'M', 'U')", name="sex"),
        CheckConstraint("diagnosis IN ('B-ALL', 'B-MPAL')", name="diagnosis"),
        CheckConstraint("risk_group IN ('MR', 'HR')", name="risk_group"),
        CheckConstraint("prednisone_response IN ('good', 'poor', 'unknown')", name="pred"),
        CheckConstraint("wbc_at_diagnosis IS NULL OR wbc_at_diagnosis >= 0", name="wbc"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[Str64] = mapped_column(unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    sex: Mapped[Code]
    diagnosis: Mapped[Code]
    fusion_partner: Mapped[Str64]
    diagnosis_date: Mapped[dt.date]
    age_at_diagnosis_days: Mapped[int]
    wbc_at_diagnosis: Mapped[Decimal | None]  # ×10⁹/L
    day8_blasts_per_ul: Mapped[int | None]
    # The day of the day-8 blood count (None: the schedule's day 8 is assumed).
    day8_date: Mapped[dt.date | None]
    prednisone_response: Mapped[Code] = mapped_column(default="unknown")
    risk_group: Mapped[Code]
    # MR while a fact that could make HR is unknown (patients.risk.Stratum).
    risk_provisional: Mapped[bool] = mapped_column(default=False)
    # Set when the rule now gives MR but the patient stays HR (escalation is one-way).
    risk_warning: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)
    risk_history: Mapped[list[RiskGroupChange]] = relationship(
        back_populates="patient", order_by="RiskGroupChange.id"
    )
    mrd_results: Mapped[list[MrdResult]] = relationship(
        back_populates="patient", order_by="MrdResult.id"
    )


class RiskGroupChange(Base):
    """One entry of a patient's risk-group history (append-only)."""

    __tablename__ = "risk_group_change"
    __table_args__ = (CheckConstraint("risk_group IN ('MR', 'HR')", name="risk_group"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    previous: Mapped[Code | None]
    risk_group: Mapped[Code]
    # The day of the clinical event that decided it (diagnosis, day 8, MRD measured_on);
    # recorded_at beside it is when it was entered.
    effective_date: Mapped[dt.date]
    reason: Mapped[Str200]
    provisional: Mapped[bool] = mapped_column(default=False)
    # A manager's de-escalation against the one-way rule, and the warning it overrode.
    override: Mapped[bool] = mapped_column(default=False)
    warning: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[Str64]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="risk_history")


class MrdResult(Base):
    """A minimal residual disease measurement at a timepoint."""

    __tablename__ = "mrd_result"
    __table_args__ = (
        UniqueConstraint("patient_id", "timepoint_id", "method"),
        CheckConstraint("value_percent >= 0 AND value_percent <= 100", name="percent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    timepoint_id: Mapped[int] = mapped_column(ForeignKey("timepoint.id"))
    value_percent: Mapped[Decimal]
    method: Mapped[Code]
    measured_on: Mapped[dt.date | None]
    actor: Mapped[Str64]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="mrd_results")
    timepoint: Mapped[Timepoint] = relationship(lazy="joined", innerjoin=True)
