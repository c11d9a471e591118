"""A request's lifecycle: who may see it, and draft → submitted → approved or rejected →
allocated → picking → shipped → received → closed, or cancelled before shipping.

Every step goes through ``move``, which refuses what the TRANSITIONS table does not allow
(a 409 naming the request's state), and leaves a line in the request's audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from biobank.auth.service import Asker
from biobank.consent.models import Substudy
from biobank.consent.service import get_substudy
from biobank.custody.service import record_audit
from biobank.db import utcnow
from biobank.errors import Conflict, Forbidden, Invalid, NotFound
from biobank.requests import availability
from biobank.requests.models import HELD, RequestAliquot, SampleRequest
from biobank.samples import barcodes
from biobank.samples import service as samples
from biobank.samples.models import Aliquot

NUMBER_PREFIX = "RQ"
NUMBER_DIGITS = 6

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"submitted", "cancelled"}),
    "submitted": frozenset({"approved", "rejected", "cancelled"}),
    "approved": frozenset({"allocated", "cancelled"}),
    "allocated": frozenset({"picking", "cancelled"}),
    "picking": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"received"}),
    "received": frozenset({"closed"}),
    "rejected": frozenset(),
    "closed": frozenset(),
    "cancelled": frozenset(),
}
# What each step is called in messages ("it cannot be approved").
VERBS = {
    "submitted": "submitted",
    "approved": "approved",
    "rejected": "rejected",
    "allocated": "allocated",
    "picking": "picked",
    "shipped": "shipped",
    "received": "received",
    "closed": "closed",
    "cancelled": "cancelled",
}


def may_see(asker: Asker, request: SampleRequest) -> bool:
    """Whether the request exists, as far as the asker is concerned: a researcher sees their
    own sub-studies' requests only."""
    return not asker.researcher or request.substudy_code in asker.substudies


def may_act(asker: Asker, request: SampleRequest) -> bool:
    """The one owner rule: the researcher who made a request acts on it, and so do managers
    and admins (the matrix says which staff step is whose); the other researchers of its
    sub-study may only read it."""
    return not asker.researcher or request.created_by == asker.username


# --- finding requests -------------------------------------------------------------------


def get_request(
    session: Session, asker: Asker, number: str, *, act: str | None = None
) -> SampleRequest:
    """A request by number; another sub-study's request is a 404 to a researcher. To ``act``
    on it (a verb: "receive", "cancel"…) the row is locked and the owner rule applies
    (``may_act``): a researcher who did not make the request is refused (403)."""
    query = select(SampleRequest).where(SampleRequest.number == barcodes.normalize(number))
    if act is not None:
        # Steps on one request queue here (PostgreSQL; SQLite has one writer anyway), and
        # the one that waited reads what the other wrote.
        query = query.with_for_update(of=SampleRequest).execution_options(populate_existing=True)
    request = session.scalar(query)
    if request is None or not may_see(asker, request):
        raise NotFound(f"no request {number}")
    if act is not None and not may_act(asker, request):
        raise Forbidden(
            f"only {request.created_by}, who made request {request.number}, "
            f"or a manager can {act} it",
            field="number",
        )
    return request


def requests_query(
    asker: Asker, state: str | None = None, substudy: str | None = None
) -> Select[tuple[SampleRequest]]:
    """The requests the asker may see, newest first, filtered."""
    query = select(SampleRequest).join(SampleRequest.substudy).order_by(SampleRequest.id.desc())
    if asker.researcher:
        query = query.where(Substudy.code.in_(asker.substudies))
    if state:
        query = query.where(SampleRequest.state == state)
    if substudy:
        query = query.where(Substudy.code == substudy)
    return query


def visible_substudy(
    session: Session, asker: Asker, code: str | None, field_name: str = "substudy"
) -> Substudy:
    """The sub-study a researcher asks about (their only one if not named); others' are 404."""
    if code is None:
        if asker.researcher and len(asker.substudies) == 1:
            code = asker.substudies[0]
        else:
            raise Invalid("say which sub-study", field=field_name)
    if asker.researcher and code not in asker.substudies:
        raise NotFound(f"no sub-study {code!r}")
    return get_substudy(session, code)


# --- moving through the lifecycle -------------------------------------------------------


def move(
    session: Session,
    actor: str,
    request: SampleRequest,
    new: str,
    reason: str | None = None,
    **details: Any,
) -> None:
    """Take one step of the lifecycle, or refuse it with the request's state in words."""
    old = request.state
    if new not in TRANSITIONS[old]:
        if old == "cancelled":
            message = f"request {request.number} was cancelled: it cannot be {VERBS[new]}"
        elif old == new:
            message = f"request {request.number} is {old} already"
        else:
            message = f"request {request.number} is {old}: it cannot be {VERBS[new]} now"
        raise Conflict(message, field="state")
    request.state = new
    session.flush()
    record_audit(
        session,
        actor,
        "request",
        request.number,
        new,
        reason=reason,
        old_values={"state": old},
        new_values={"state": new, **details},
    )


def _criteria(session: Session, criteria: dict[str, Any], field_name: str) -> dict[str, Any]:
    """Criteria as stored: validated against reference data, JSON-ready."""
    availability.resolve(session, criteria, f"{field_name}.")
    stored = {key: value for key, value in criteria.items() if value not in (None, [])}
    if "min_volume_ml" in stored:
        stored["min_volume_ml"] = str(stored["min_volume_ml"])
    return stored


def create(session: Session, asker: Asker, values: dict[str, Any]) -> SampleRequest:
    """A new request, as a draft (or submitted at once with ``submit``)."""
    substudy = visible_substudy(session, asker, values.get("substudy"))
    if not substudy.open:
        raise Conflict(
            f"sub-study {substudy.code} is closed: it takes no requests", field="substudy"
        )
    [number] = barcodes.issue(session, NUMBER_PREFIX, 1, NUMBER_DIGITS)
    request = SampleRequest(
        number=number,
        substudy=substudy,
        state="draft",
        title=values["title"],
        purpose=values["purpose"],
        criteria=_criteria(session, values["criteria"], "criteria"),
        created_by=asker.username,
    )
    session.add(request)
    session.flush()
    record_audit(
        session,
        asker.username,
        "request",
        number,
        "created",
        new_values={
            "substudy": substudy.code,
            "title": request.title,
            "criteria": request.criteria,
        },
    )
    if values.get("submit"):
        submit(session, asker, number)
    return request


def edit_draft(
    session: Session, asker: Asker, number: str, values: dict[str, Any]
) -> SampleRequest:
    """Change a draft's title, purpose or criteria."""
    request = get_request(session, asker, number, act="edit")
    if request.state != "draft":
        raise Conflict(
            f"request {number} is {request.state}: only a draft can be edited", field="state"
        )
    old = {key: getattr(request, key) for key in values}
    if "criteria" in values:
        values = {**values, "criteria": _criteria(session, values["criteria"], "criteria")}
    for key, value in values.items():
        setattr(request, key, value)
    session.flush()
    record_audit(
        session,
        asker.username,
        "request",
        request.number,
        "edited",
        old_values=old,
        new_values=values,
    )
    return request


def submit(session: Session, asker: Asker, number: str) -> SampleRequest:
    """The researcher sends the draft to the biobank managers."""
    request = get_request(session, asker, number, act="submit")
    move(session, asker.username, request, "submitted")
    request.submitted_at = utcnow()
    return request


def _not_own(actor: str, request: SampleRequest, what: str) -> None:
    if request.created_by == actor:
        raise Forbidden(
            f"you made request {request.number}: another manager must {what} it", field="number"
        )


def approve(
    session: Session,
    asker: Asker,
    number: str,
    adjust: dict[str, Any] | None,
    note: str | None = None,
) -> SampleRequest:
    """A manager approves the request, possibly adjusting what will be allocated."""
    request = get_request(session, asker, number, act="approve")
    _not_own(asker.username, request, "approve")
    approved = _criteria(session, {**request.criteria, **adjust}, "adjust") if adjust else None
    move(session, asker.username, request, "approved", note, adjusted=approved)
    request.approved_criteria = approved
    request.decided_by, request.decided_at, request.decision_reason = (
        asker.username,
        utcnow(),
        note,
    )
    return request


def reject(session: Session, asker: Asker, number: str, reason: str) -> SampleRequest:
    """A manager rejects the request, saying why."""
    request = get_request(session, asker, number, act="reject")
    _not_own(asker.username, request, "reject")
    # The reason first: the table refuses a rejection without one.
    request.decided_by, request.decided_at, request.decision_reason = (
        asker.username,
        utcnow(),
        reason,
    )
    move(session, asker.username, request, "rejected", reason)
    return request


@dataclass
class Cancelled:
    """A cancelled request, and the tubes a technician must put back (picked already)."""

    request: SampleRequest
    released: int
    put_back: list[str]


def cancel(session: Session, asker: Asker, number: str, reason: str) -> Cancelled:
    """Cancel before shipping: every reserved tube goes back to available at once."""
    request = get_request(session, asker, number, act="cancel")
    request.cancelled_by, request.cancelled_at, request.cancel_reason = (
        asker.username,
        utcnow(),
        reason,
    )
    move(session, asker.username, request, "cancelled", reason)
    released, picked = release_held(
        session, asker.username, request, f"request {request.number} cancelled: {reason}"
    )
    return Cancelled(request, released, picked)


def release_held(
    session: Session,
    actor: str,
    request: SampleRequest,
    why: str,
    aliquot_ids: list[int] | None = None,
) -> tuple[int, list[str]]:
    """Drop a request's held tubes (all, or these) and make the reserved ones available.

    Returns how many were released and the barcodes of those already picked (out of their
    boxes: someone must put them back).
    """
    query = (
        select(
            RequestAliquot.id,
            RequestAliquot.aliquot_id,
            RequestAliquot.state,
            Aliquot.barcode,
            Aliquot.status,
        )
        .join(Aliquot, Aliquot.id == RequestAliquot.aliquot_id)
        .where(RequestAliquot.request_id == request.id, RequestAliquot.state.in_(HELD))
    )
    if aliquot_ids is not None:
        query = query.where(RequestAliquot.aliquot_id.in_(aliquot_ids))
    rows = session.execute(query).all()
    if not rows:
        return 0, []
    now = utcnow()
    session.execute(
        RequestAliquot.__table__.update()
        .where(RequestAliquot.id.in_([r.id for r in rows]))
        .values(state="dropped", reason=why[:200], updated_at=now)
    )
    reserved = [r.aliquot_id for r in rows if r.status == "reserved"]
    released = samples.change_statuses(
        session,
        actor,
        reserved,
        "reserved",
        "available",
        why[:200],
        {"request": request.number},
        now,
    )
    return len(released), sorted(r.barcode for r in rows if r.state == "picked")


def close(session: Session, asker: Asker, number: str) -> SampleRequest:
    """Close a received request once every tube is accounted for (used, returned, gone)."""
    request = get_request(session, asker, number, act="close")
    still = session.scalar(
        select(func.count())
        .select_from(RequestAliquot)
        .where(RequestAliquot.request_id == request.id, RequestAliquot.state == "received")
    )
    if request.state == "received" and still:
        raise Conflict(
            f"{still} tube(s) of request {number} are still with the recipient: "
            "report each one consumed or returned first",
            field="state",
        )
    move(session, asker.username, request, "closed")
    request.closed_by, request.closed_at = asker.username, utcnow()
    return request
