"""Temperature excursions: which tubes sat in a freezer while it was too warm.

The answer comes from the custody log, not from where tubes are now: every event that
changes a tube's place records ``freezer_id`` (None when the tube is out of any freezer),
and a tube leaving the biobank (shipped, consumed, destroyed) is out of every freezer.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.custody.models import CustodyEvent
from biobank.custody.service import record_audit, record_events
from biobank.db import utcnow
from biobank.errors import Invalid, NotFound
from biobank.inputs import ascii_id
from biobank.samples.models import Aliquot
from biobank.storage.models import Condition, Container, Excursion

PLACE_EVENTS = ("stored", "moved", "put_back", "taken_out", "thawed", "refrozen", "unstored")
DEPARTURES = ("shipped", "consumed", "destroyed")
# Clocks differ a little; an excursion cannot be recorded as ending in the future.
CLOCK_SKEW = dt.timedelta(minutes=5)


def _freezer_in(event: Any) -> int | None:
    if event.event_type in DEPARTURES:
        return None
    return event.freezer_id


def inside(session: Session, freezer_id: int, start: dt.datetime, end: dt.datetime) -> list[int]:
    """Ids of the tubes that were in the freezer at any moment from start to end."""
    freezer = CustodyEvent.new_values["freezer_id"].as_integer()
    ever_there = select(CustodyEvent.aliquot_id).where(
        CustodyEvent.event_type.in_(PLACE_EVENTS),
        freezer == freezer_id,
        CustodyEvent.occurred_at <= end,
    )
    events = session.execute(
        select(
            CustodyEvent.aliquot_id,
            CustodyEvent.event_type,
            CustodyEvent.occurred_at,
            freezer.label("freezer_id"),
        )
        .where(
            CustodyEvent.aliquot_id.in_(ever_there),
            CustodyEvent.event_type.in_(PLACE_EVENTS + DEPARTURES),
            CustodyEvent.occurred_at <= end,
        )
        .order_by(CustodyEvent.aliquot_id, CustodyEvent.occurred_at, CustodyEvent.id)
    ).all()
    at_start: dict[int, int | None] = {}
    affected: set[int] = set()
    for event in events:
        where = _freezer_in(event)
        if event.occurred_at <= start:
            at_start[event.aliquot_id] = where
        elif where == freezer_id:
            affected.add(event.aliquot_id)
    affected |= {tube for tube, where in at_start.items() if where == freezer_id}
    return sorted(affected)


def record(
    session: Session, actor: str, freezer: Container, values: dict[str, Any]
) -> dict[str, Any]:
    """Record an excursion and flag every tube that sat through it with a condition note."""
    if freezer.kind != "freezer":
        raise Invalid(f"{freezer.barcode} is a {freezer.kind}, not a freezer", field="barcode")
    start, end = values["started_at"], values["ended_at"]
    if end <= start:
        raise Invalid("ended_at must be after started_at", field="ended_at")
    if end > utcnow() + CLOCK_SKEW:
        raise Invalid(
            "ended_at is in the future: record an excursion once it is over", field="ended_at"
        )
    peak: Decimal = values["peak_celsius"]
    excursion = Excursion(
        freezer_id=freezer.id,
        started_at=start,
        ended_at=end,
        peak_celsius=peak,
        note=values.get("note"),
        recorded_by=actor,
        recorded_at=utcnow(),
    )
    session.add(excursion)
    session.flush()
    tubes = inside(session, freezer.id, start, end)
    note = (
        f"temperature excursion in {freezer.name}: {start:%Y-%m-%d %H:%M}–"
        f"{end:%Y-%m-%d %H:%M} UTC, peak {peak} °C"
    )
    now = utcnow()
    if tubes:
        session.execute(
            insert(Condition),
            [
                {
                    "aliquot_id": t,
                    "excursion_id": excursion.id,
                    "note": note[:200],
                    "recorded_by": actor,
                    "recorded_at": now,
                }
                for t in tubes
            ],
        )
        record_events(
            session,
            [
                {
                    "event_type": "condition_noted",
                    "aliquot_id": t,
                    "reason": values.get("note"),
                    "new_values": {
                        "excursion_id": excursion.id,
                        "note": note,
                        "freezer": freezer.barcode,
                    },
                }
                for t in tubes
            ],
            actor,
            now,
        )
    record_audit(
        session,
        actor,
        "container",
        freezer.barcode,
        "excursion",
        new_values={
            "excursion_id": excursion.id,
            "started_at": start,
            "ended_at": end,
            "peak_celsius": peak,
            "tubes": len(tubes),
        },
    )
    return describe(session, excursion)


def describe(session: Session, excursion: Excursion) -> dict[str, Any]:
    """An excursion with the tubes flagged for it."""
    tubes = session.execute(
        select(Aliquot.barcode, Aliquot.status)
        .join(Condition, Condition.aliquot_id == Aliquot.id)
        .where(Condition.excursion_id == excursion.id)
        .order_by(Aliquot.barcode)
    ).all()
    return {
        "id": excursion.id,
        "freezer": excursion.freezer.barcode,
        "freezer_name": excursion.freezer.name,
        "started_at": excursion.started_at,
        "ended_at": excursion.ended_at,
        "peak_celsius": excursion.peak_celsius,
        "note": excursion.note,
        "recorded_by": excursion.recorded_by,
        "aliquots": [{"barcode": b, "status": s} for b, s in tubes],
    }


def get(session: Session, excursion_id: int | str) -> Excursion:
    """An excursion by id, or 404."""
    number = ascii_id(str(excursion_id))
    if number is None:
        raise NotFound(f"no excursion {excursion_id}")
    excursion = session.scalar(
        select(Excursion).where(
            Excursion.id == number, scope.container_filter(scope.of(session), Excursion.freezer_id)
        )
    )
    if excursion is None:
        raise NotFound(f"no excursion {excursion_id}")
    return excursion


def for_freezer(session: Session, freezer: Container) -> list[Excursion]:
    """A freezer's excursions, newest first."""
    return list(
        session.scalars(
            select(Excursion)
            .where(Excursion.freezer_id == freezer.id)
            .order_by(Excursion.started_at.desc())
        )
    )
