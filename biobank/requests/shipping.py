"""Shipping, receipt, and what the recipient did with each tube (consumed or returned).

At shipping the consent gate runs again: a tube whose consent ended since allocation drops
out with the gate's reasons, the rest are released with their justification (the consent
entries that allowed each), marked shipped and taken off their storage positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth.models import User
from biobank.auth.service import Asker
from biobank.consent import gate
from biobank.custody.service import record_events
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid
from biobank.requests import lifecycle
from biobank.requests.models import RequestAliquot, SampleRequest, Shipment
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.storage import operations
from biobank.storage.models import Container


@dataclass
class Shipped:
    """A shipped request, and the tubes the gate took out at the last moment."""

    request: SampleRequest
    shipped: int
    dropped: dict[str, list[str]] = field(default_factory=dict)


def _rows(session: Session, request: SampleRequest, *states: str) -> list[Any]:
    return list(
        session.execute(
            select(
                RequestAliquot.id, RequestAliquot.aliquot_id, RequestAliquot.state, Aliquot.barcode
            )
            .join(Aliquot, Aliquot.id == RequestAliquot.aliquot_id)
            .where(RequestAliquot.request_id == request.id, RequestAliquot.state.in_(states))
            .order_by(Aliquot.barcode)
        )
    )


def _set_state(session: Session, row_ids: list[int], state: str, **values: Any) -> None:
    session.execute(
        update(RequestAliquot)
        .where(RequestAliquot.id.in_(row_ids))
        .values(state=state, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )


def ship(session: Session, asker: Asker, number: str, values: dict[str, Any]) -> Shipped:
    """Ship every picked tube; an unpicked one (neither picked nor dropped) refuses it all."""
    request = lifecycle.get_request(session, asker, number, act="ship")
    values = dict(values)
    day = values.pop("shipped_on", None)
    if day is not None and day > clock.today():
        raise Invalid(f"{day} is in the future: give the day the parcel left", field="shipped_on")
    lifecycle.move(session, asker.username, request, "shipped")
    unpicked = _rows(session, request, "allocated")
    if unpicked:
        codes = ", ".join(r.barcode for r in unpicked)
        raise Conflict(
            f"{len(unpicked)} tube(s) of request {number} are not picked: {codes}; "
            "pick them, or drop them with a reason",
            field="state",
        )
    picked = _rows(session, request, "picked")
    decisions = gate.may_use(session, [r.aliquot_id for r in picked], request.substudy_code)
    refused = {
        r.barcode: list(decisions[r.aliquot_id].reasons)
        for r in picked
        if not decisions[r.aliquot_id].allowed
    }
    if refused:
        lifecycle.release_held(
            session,
            asker.username,
            request,
            "consent gate at shipping: "
            + "; ".join(f"{code}: {', '.join(why)}" for code, why in refused.items()),
            [r.aliquot_id for r in picked if r.barcode in refused],
        )
        picked = [r for r in picked if r.barcode not in refused]
    if not picked:
        raise Conflict(
            f"nothing left to ship in request {number}: "
            + (
                "; ".join(f"{code}: {', '.join(why)}" for code, why in refused.items())
                or "every tube was dropped"
            ),
            field="state",
        )
    ids = [r.aliquot_id for r in picked]
    now = utcnow()
    gate.justify_release(
        session, asker.username, ids, request.substudy_code, "request", request.number, now
    )
    details = {
        "request": number,
        "recipient": f"{values['recipient_name']}, {values['recipient_institution']}",
        "courier": values["courier"],
        "tracking_number": values["tracking_number"],
    }
    moved = samples.change_statuses(
        session,
        asker.username,
        ids,
        "reserved",
        "shipped",
        f"shipped for request {number}",
        details,
        now,
    )
    if len(moved) != len(ids):
        raise Conflict(
            f"a tube of request {number} changed status meanwhile; scan again", field="state"
        )
    operations.vacate(session, asker.username, ids, f"shipped for request {number}")
    _set_state(session, [r.id for r in picked], "shipped")
    # The day it left, as the form says it (today: the moment it is recorded).
    left = now if day is None or day == clock.day_of(now) else clock.start_of(day)
    session.add(
        Shipment(request_id=request.id, shipped_by=asker.username, shipped_at=left, **values)
    )
    session.flush()
    session.refresh(request)
    return Shipped(request, len(ids), refused)


def receive(session: Session, asker: Asker, number: str, values: dict[str, Any]) -> SampleRequest:
    """The recipient has the tubes: one ``received`` event each, discrepancies per tube."""
    request = lifecycle.get_request(session, asker, number, act="receive")
    if request.state in ("received", "closed") and request.shipment is not None:
        raise Conflict(
            f"request {number} was received already, on "
            f"{request.shipment.received_at:%Y-%m-%d} by "
            f"{request.shipment.received_by}",
            field="state",
        )
    lifecycle.move(session, asker.username, request, "received")
    shipped = {r.barcode: r for r in _rows(session, request, "shipped")}
    notes: dict[str, str] = {}
    for index, item in enumerate(values.get("discrepancies") or []):
        code = item["barcode"].strip().upper()
        if code not in shipped:
            raise Invalid(
                f"{code} was not shipped in request {number}",
                field=f"discrepancies.{index}.barcode",
            )
        notes[code] = item["note"]
    now = utcnow()
    _set_state(session, [r.id for r in shipped.values()], "received")
    for code, note in notes.items():
        _set_state(session, [shipped[code].id], "received", discrepancy=note)
    shipment = request.shipment
    assert shipment is not None
    shipment.received_by, shipment.received_at = asker.username, now
    shipment.receipt_note = values.get("note")
    record_events(
        session,
        [
            {
                "event_type": "received",
                "aliquot_id": row.aliquot_id,
                "reason": notes.get(code),
                "new_values": {
                    "request": number,
                    "recipient": shipment.recipient,
                    "discrepancy": notes.get(code),
                },
            }
            for code, row in shipped.items()
        ],
        asker.username,
        now,
    )
    session.flush()
    return request


def _received(session: Session, request: SampleRequest, code: str) -> Any:
    rows = [
        r
        for r in _rows(session, request, "shipped", "received", "consumed", "returned", "destroyed")
        if r.barcode == code
    ]
    if not rows:
        raise Invalid(f"{code} was not shipped in request {request.number}", field="barcode")
    row = rows[0]
    if row.state != "received":
        raise Conflict(
            f"{code} is {row.state}"
            + (": record the receipt first" if row.state == "shipped" else " already"),
            field="barcode",
        )
    return row


def consumed(
    session: Session, asker: Asker, number: str, codes: list[str], note: str | None = None
) -> SampleRequest:
    """The recipient used tubes up."""
    request = lifecycle.get_request(session, asker, number, act="record tubes consumed in")
    rows = [_received(session, request, code.strip().upper()) for code in codes]
    if len({r.id for r in rows}) != len(rows):
        raise Invalid("a barcode is given twice", field="barcodes")
    ids = [r.aliquot_id for r in rows]
    moved = samples.change_statuses(
        session,
        asker.username,
        ids,
        "shipped",
        "consumed",
        note or f"used by the recipient of request {number}",
        {"request": number},
    )
    if len(moved) != len(ids):
        raise Conflict("a tube changed status meanwhile; try again", field="barcodes")
    _set_state(session, [r.id for r in rows], "consumed", reason=note)
    return request


def returned(
    session: Session,
    asker: Asker,
    number: str,
    code: str,
    box: Container,
    position: str | None,
    reason: str | None = None,
) -> SampleRequest:
    """A tube came back: available again, and stored in the box (and position) given."""
    request = lifecycle.get_request(session, asker, number, act="return tubes of")
    row = _received(session, request, code.strip().upper())
    why = reason or f"returned by the recipient of request {number}"
    moved = samples.change_statuses(
        session, asker.username, [row.aliquot_id], "shipped", "available", why, {"request": number}
    )
    if not moved:
        raise Conflict(f"{code} changed status meanwhile; scan it again", field="barcode")
    aliquot = session.get(Aliquot, row.aliquot_id)
    assert aliquot is not None
    operations.place(session, asker.username, aliquot, box, position, why)
    _set_state(session, [row.id], "returned", reason=reason)
    return request


def ship_defaults(session: Session, request: SampleRequest) -> dict[str, Any]:
    """What the ship form starts with: the requester as recipient, with the institution and
    address their last shipment went to; today as the shipping day."""
    requester = session.scalar(select(User).where(User.username == request.created_by))
    last = session.scalar(
        select(Shipment)
        .join(SampleRequest, SampleRequest.id == Shipment.request_id)
        .where(SampleRequest.created_by == request.created_by)
        .order_by(Shipment.shipped_at.desc())
        .limit(1)
    )
    return {
        "recipient_name": (
            requester.full_name
            if requester and requester.full_name
            else (last.recipient_name if last else request.created_by)
        ),
        "recipient_institution": last.recipient_institution if last else "",
        "recipient_address": last.recipient_address if last else "",
        "shipped_on": clock.today().isoformat(),
    }
