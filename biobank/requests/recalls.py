"""Requests and consent withdrawal: withdrawn tubes leave open requests; shipped ones are
recalled, and the request's researcher acknowledges the notice and reports destruction.

Both hooks are connected to the consent domain by ``connect``, which ``create_app`` calls.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.auth.service import Asker
from biobank.consent import followup
from biobank.consent import service as consent
from biobank.consent.models import RecallNotice, Substudy
from biobank.errors import NotFound
from biobank.requests import lifecycle, readmodels
from biobank.requests.models import HELD, RequestAliquot, SampleRequest, Shipment
from biobank.samples.models import Aliquot

# Tubes that left with a request (and may be recalled from it).
LEFT = ("shipped", "received", "consumed", "destroyed")


def drop_withdrawn(
    session: Session, context: consent.WithdrawalContext
) -> list[consent.EffectAction]:
    """Take the patient's tubes out of requests not yet shipped, where consent now ends."""
    if not context.aliquot_ids or not (context.storage_ended or context.substudies_ended):
        return []
    query = (
        select(SampleRequest, Aliquot.id, Aliquot.barcode, RequestAliquot.state)
        .join(RequestAliquot, RequestAliquot.request_id == SampleRequest.id)
        .join(Aliquot, Aliquot.id == RequestAliquot.aliquot_id)
        .where(RequestAliquot.aliquot_id.in_(context.aliquot_ids), RequestAliquot.state.in_(HELD))
        .order_by(SampleRequest.id, Aliquot.barcode)
    )
    if not context.storage_ended:
        query = query.join(Substudy, Substudy.id == SampleRequest.substudy_id).where(
            Substudy.code.in_(context.substudies_ended)
        )
    rows = session.execute(query).all()
    actions = [
        consent.EffectAction(
            barcode,
            f"taken out of request {request.number}"
            + (" (picked already: put it back)" if state == "picked" else ""),
        )
        for request, _id, barcode, state in rows
    ]
    if context.dry_run:
        return actions
    by_request: dict[int, list[int]] = defaultdict(list)
    requests = {}
    for request, aliquot_id, _code, _state in rows:
        by_request[request.id].append(aliquot_id)
        requests[request.id] = request
    why = f"consent withdrawn ({context.scope}) from {context.withdrawn_on}" + (
        f": withdrawal #{context.withdrawal_id}" if context.withdrawal_id else ""
    )
    for request_id, ids in by_request.items():
        lifecycle.release_held(session, context.actor, requests[request_id], why, ids)
    return actions


def shipped_with(session: Session, aliquot_ids: list[int]) -> dict[int, consent.Shipment]:
    """Which request shipped each tube (the latest), and to whom."""
    found: dict[int, consent.Shipment] = {}
    for aliquot_id, number, name, institution in session.execute(
        select(
            RequestAliquot.aliquot_id,
            SampleRequest.number,
            Shipment.recipient_name,
            Shipment.recipient_institution,
        )
        .join(SampleRequest, SampleRequest.id == RequestAliquot.request_id)
        .join(Shipment, Shipment.request_id == SampleRequest.id)
        .where(RequestAliquot.aliquot_id.in_(aliquot_ids), RequestAliquot.state.in_(LEFT))
        .order_by(Shipment.shipped_at, RequestAliquot.id)
    ):
        found[aliquot_id] = consent.Shipment(number, f"{name}, {institution}")
    return found


def connect() -> None:
    """Hook requests into withdrawals: withdrawn tubes leave open requests, and recall
    notices name the request and recipient (idempotent)."""
    consent.register_withdrawal_effect("requests", drop_withdrawn)
    consent.register_shipment_lookup(shipped_with)


def _notice(
    session: Session, asker: Asker, number: str, notice_id: int
) -> tuple[SampleRequest, readmodels.RecallView]:
    request = lifecycle.get_request(session, asker, number, act="answer a recall of")
    found = readmodels.recalls(session, request, notice_id)
    if not found:
        raise NotFound(f"request {number} has no recall notice {notice_id}")
    return request, found[0]


def acknowledge(
    session: Session, asker: Asker, number: str, notice_id: int
) -> readmodels.RecallView:
    """The researcher has read the recall notice."""
    request, _ = _notice(session, asker, number, notice_id)
    followup.acknowledge_recall(session, asker.username, notice_id)
    return readmodels.recalls(session, request, notice_id)[0]


def report_destroyed(
    session: Session, asker: Asker, number: str, notice_id: int
) -> readmodels.RecallView:
    """The researcher destroyed the recalled tube: so it is recorded, here and in consent."""
    request, notice = _notice(session, asker, number, notice_id)
    followup.report_recall_destroyed(session, asker.username, notice_id)
    session.execute(
        update(RequestAliquot)
        .where(
            RequestAliquot.request_id == request.id,
            RequestAliquot.aliquot_id
            == select(Aliquot.id).where(Aliquot.barcode == notice.barcode).scalar_subquery(),
            RequestAliquot.state.in_(("shipped", "received")),
        )
        .values(state="destroyed", reason="destroyed after recall (consent withdrawn)")
        .execution_options(synchronize_session=False)
    )
    return readmodels.recalls(session, request, notice_id)[0]


def _group(
    session: Session, asker: Asker, number: str, notice_id: int
) -> list[readmodels.RecallView]:
    """Every notice of the tube that ``notice_id`` names, in this request."""
    request, notice = _notice(session, asker, number, notice_id)
    return [n for n in readmodels.recalls(session, request) if n.barcode == notice.barcode]


def acknowledge_tube(session: Session, asker: Asker, number: str, notice_id: int) -> int:
    """Acknowledge the tube's recall: every open notice behind it (one per withdrawal)."""
    done = 0
    for notice in _group(session, asker, number, notice_id):
        if notice.acknowledged_at is None:
            acknowledge(session, asker, number, notice.id)
            done += 1
    return done


def report_tube_destroyed(session: Session, asker: Asker, number: str, notice_id: int) -> int:
    """Report the recalled tube destroyed, on every notice behind it."""
    done = 0
    for notice in _group(session, asker, number, notice_id):
        if notice.destruction_reported_at is None:
            report_destroyed(session, asker, number, notice.id)
            done += 1
    return done


def open_tube_recalls(session: Session, asker: Asker) -> list[tuple[str, str]]:
    """(request number, tube) of every recall not yet acknowledged that the asker may see:
    one per tube and request."""
    numbers = lifecycle.requests_query(asker).with_only_columns(SampleRequest.number)
    return [
        tuple(row)  # type: ignore[misc]
        for row in session.execute(
            select(RecallNotice.request_reference, Aliquot.barcode)
            .distinct()
            .join(Aliquot, Aliquot.id == RecallNotice.aliquot_id)
            .where(
                RecallNotice.acknowledged_at.is_(None),
                RecallNotice.cancelled_at.is_(None),
                RecallNotice.request_reference.in_(numbers.order_by(None)),
                scope.aliquot_filter(scope.of(session), RecallNotice.aliquot_id),
            )
            .order_by(RecallNotice.request_reference, Aliquot.barcode)
        )
    ]
