"""The chain-of-custody log: append-only events on samples and aliquots."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from biobank.db import Base, Code, Str64, Str200, utcnow


class CustodyEvent(Base):
    """Something that happened to a tube: who, when, why, and the values before and after."""

    __tablename__ = "custody_event"
    __table_args__ = (
        CheckConstraint("aliquot_id IS NOT NULL OR sample_id IS NOT NULL", name="subject"),
        Index("ix_custody_event_aliquot", "aliquot_id", "id"),
        Index("ix_custody_event_sample", "sample_id", "id"),
        # Two events linking to the same predecessor would fork a chain: impossible.
        Index("uq_custody_event_prev_hash", "prev_hash", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    aliquot_id: Mapped[int | None] = mapped_column(ForeignKey("aliquot.id"))
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("sample.id"))
    event_type: Mapped[Code]
    actor: Mapped[Str64]
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[Str200 | None]
    old_values: Mapped[dict[str, Any] | None]
    new_values: Mapped[dict[str, Any] | None]
    # The hash chain (biobank.custody.chain): the previous event's hash, and this one's.
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditRecord(Base):
    """A change to a patient or to reference data: who, when, why, old and new values."""

    __tablename__ = "audit_record"
    __table_args__ = (Index("ix_audit_record_entity", "entity_type", "entity_key", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_type: Mapped[Code]
    entity_key: Mapped[Str64]
    action: Mapped[Code]
    actor: Mapped[Str64]
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[Str200 | None]
    old_values: Mapped[dict[str, Any] | None]
    new_values: Mapped[dict[str, Any] | None]
