"""Demo requests: one in each state, from the demo researcher (sub-study DEMO), decided by the
demo manager, picked by the demo technician. Runs after the consent and storage demos.

Idempotent: each demo request is recognised by its title; those already there are left alone.
Everything goes through the services, so the tubes carry the usual custody events.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.auth.models import User
from biobank.auth.service import Asker
from biobank.consent.models import Substudy
from biobank.requests import allocation, lifecycle, picking, readmodels, shipping
from biobank.requests.models import SampleRequest

SUBSTUDY = "DEMO"
RESEARCHER, MANAGER, TECHNICIAN = "demo-researcher", "demo-manager", "demo-technician"
# The state each demo request is left in, in the order they are made (later states need
# tubes: they are allocated first, so earlier requests never hold what later ones need).
STATES = (
    "closed",
    "received",
    "shipped",
    "picking",
    "allocated",
    "approved",
    "submitted",
    "draft",
    "rejected",
    "cancelled",
)
TITLES = {state: f"Demo request ({state})" for state in STATES}
# Small asks: one plasma or pellet tube from two patients each, at diagnosis.
CRITERIA = {
    "materials": ["BM", "PB"],
    "aliquot_types": ["PLASMA", "PELLET"],
    "timepoints": ["DX"],
    "aliquots_per_patient_timepoint": 1,
    "patients": 2,
}
SHIPMENT = {
    "courier": "World Courier",
    "tracking_number": "WC-DEMO-0001",
    "condition": "dry_ice",
    "recipient_name": "Demo investigator",
    "recipient_institution": "Princess Máxima Center, research lab",
    "recipient_address": "Heidelberglaan 25, 3584 CS Utrecht, NL",
}


def _asker(session: Session, username: str) -> Asker | None:
    user = session.scalar(select(User).where(User.username == username, User.active))
    return (
        Asker(user.id, user.username, user.role, substudies=tuple(user.substudy_codes))
        if user
        else None
    )


def load_demo(session: Session, actor: str) -> dict[str, int]:
    """Add the missing demo requests; returns how many were added per state."""
    added = dict.fromkeys(STATES, 0)
    researcher = _asker(session, RESEARCHER)
    manager = _asker(session, MANAGER)
    technician = _asker(session, TECHNICIAN) or manager
    if (
        researcher is None
        or manager is None
        or technician is None
        or SUBSTUDY not in researcher.substudies
        or session.scalar(select(Substudy.id).where(Substudy.code == SUBSTUDY)) is None
    ):
        return added  # nothing to build on: load the core, consent and storage demos first
    have = set(
        session.scalars(select(SampleRequest.title).where(SampleRequest.title.in_(TITLES.values())))
    )
    for state in STATES:
        if TITLES[state] not in have:
            _make(session, state, researcher, manager, technician)
            added[state] += 1
    return added


def _make(
    session: Session, state: str, researcher: Asker, manager: Asker, technician: Asker
) -> None:
    """One request, taken through the lifecycle up to ``state``."""
    request = lifecycle.create(
        session,
        researcher,
        {
            "substudy": SUBSTUDY,
            "title": TITLES[state],
            "criteria": dict(CRITERIA),
            "purpose": f"Demo data: a request left {state}, to show what that looks like.",
        },
    )
    number = request.number
    if state == "draft":
        return
    lifecycle.submit(session, researcher, number)
    if state == "cancelled":
        lifecycle.cancel(session, researcher, number, "demo: no longer needed")
        return
    if state == "rejected":
        lifecycle.reject(
            session,
            manager,
            number,
            "demo: the sub-study's ethics approval has expired; resubmit when renewed",
        )
        return
    if state == "submitted":
        return
    lifecycle.approve(session, manager, number, None, "demo: approved as asked")
    if state == "approved":
        return
    allocation.allocate(session, manager, number, allow_partial=True)
    if state == "allocated":
        return
    tubes = readmodels.tubes(session, request, ("allocated",))
    for tube in tubes if state != "picking" else tubes[:1]:
        picking.pick(session, technician, number, tube.barcode)
    if state == "picking":
        return
    shipping.ship(session, manager, number, dict(SHIPMENT))
    if state == "shipped":
        return
    shipping.receive(
        session,
        researcher,
        number,
        {
            "note": "arrived frozen",
            "discrepancies": [
                {"barcode": tubes[0].barcode, "note": "label partly torn, barcode readable"}
            ],
        },
    )
    if state == "received":
        return
    shipping.consumed(
        session, researcher, number, [t.barcode for t in tubes], "used for method development"
    )
    lifecycle.close(session, researcher, number)


def summary(added: dict[str, Any]) -> str:
    """What a load added, in words (for the demo CLI)."""
    made = [state for state, n in added.items() if n]
    return f"{len(made)} requests ({', '.join(made)})" if made else "0 requests"
