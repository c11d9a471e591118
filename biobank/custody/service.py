"""Appending custody events and audit records; reading a tube's history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from biobank.custody.models import AuditRecord, CustodyEvent
from biobank.db import utcnow


def jsonable(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Values as JSON can hold them: decimals and dates become strings."""
    if values is None:
        return None
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, dt.date | dt.datetime):
            value = value.isoformat()
        out[key] = value
    return out


def record_events(session: Session, events: Iterable[Mapping[str, Any]], actor: str,
                  at: dt.datetime | None = None) -> None:
    """Append many custody events in one statement.

    Each mapping holds ``event_type`` and one of ``aliquot_id`` / ``sample_id``, and
    optionally ``reason``, ``old_values`` and ``new_values``.
    """
    at = at or utcnow()
    rows = [
        {
            "aliquot_id": e.get("aliquot_id"),
            "sample_id": e.get("sample_id"),
            "event_type": e["event_type"],
            "actor": actor,
            "occurred_at": at,
            "reason": e.get("reason"),
            "old_values": jsonable(e.get("old_values")),
            "new_values": jsonable(e.get("new_values")),
        }
        for e in events
    ]
    if rows:
        session.execute(insert(CustodyEvent), rows)


def record_event(session: Session, actor: str, event_type: str, *,
                 aliquot_id: int | None = None, sample_id: int | None = None,
                 reason: str | None = None, old_values: Mapping[str, Any] | None = None,
                 new_values: Mapping[str, Any] | None = None) -> None:
    """Append one custody event."""
    record_events(session, [{
        "event_type": event_type, "aliquot_id": aliquot_id, "sample_id": sample_id,
        "reason": reason, "old_values": old_values, "new_values": new_values,
    }], actor)


def record_audit(session: Session, actor: str, entity_type: str, entity_key: str,
                 action: str, *, reason: str | None = None,
                 old_values: Mapping[str, Any] | None = None,
                 new_values: Mapping[str, Any] | None = None) -> None:
    """Append an audit record for a change that is not a custody event."""
    session.add(AuditRecord(
        entity_type=entity_type, entity_key=entity_key, action=action, actor=actor,
        reason=reason, old_values=jsonable(old_values), new_values=jsonable(new_values),
    ))


def aliquot_events(session: Session, aliquot_id: int, limit: int | None = None,
                   newest_first: bool = False) -> list[CustodyEvent]:
    """An aliquot's custody events, oldest first unless asked otherwise."""
    order = CustodyEvent.id.desc() if newest_first else CustodyEvent.id
    query = select(CustodyEvent).where(CustodyEvent.aliquot_id == aliquot_id).order_by(order)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def sample_events(session: Session, sample_id: int) -> list[CustodyEvent]:
    """A sample's own custody events (not its aliquots'), oldest first."""
    return list(session.scalars(
        select(CustodyEvent).where(CustodyEvent.sample_id == sample_id,
                                   CustodyEvent.aliquot_id.is_(None))
        .order_by(CustodyEvent.id)
    ))


def audit_trail(session: Session, entity_type: str, entity_key: str) -> list[AuditRecord]:
    """An entity's audit records, oldest first."""
    return list(session.scalars(
        select(AuditRecord).where(AuditRecord.entity_type == entity_type,
                                  AuditRecord.entity_key == entity_key)
        .order_by(AuditRecord.id)
    ))
