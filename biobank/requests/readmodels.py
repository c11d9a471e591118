"""Reading a request: its tubes with what a researcher may know of them, counts, recalls."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.consent import pseudonym
from biobank.consent.models import RecallNotice, Substudy
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material, Timepoint
from biobank.requests import availability
from biobank.requests.models import TUBE_STATES, RequestAliquot, SampleRequest
from biobank.samples.models import Aliquot, Sample

# What a researcher reads for a tube taken out of their request, whatever the reason: no
# patient, no date, no withdrawal number.
DROPPED = "withdrawn from this request"
# Tubes that are (or were) the request's: held for it or gone with it.
MINE = ("allocated", "picked", "shipped", "received", "consumed", "returned", "destroyed")


@dataclass
class Tube:
    """One tube of a request, with its fate in the request; ``patient`` is the sub-study's
    pseudonym (researchers see that, never the study_id)."""

    aliquot_id: int
    barcode: str
    study_id: str | None  # None: anonymised
    timepoint: str | None
    material: str
    aliquot_type: str
    volume_ml: Any
    cell_count: int | None
    sprec_code: str | None
    freeze_thaw_count: int
    state: str
    reason: str | None
    picked_at: Any
    picked_by: str | None
    discrepancy: str | None
    location: dict[str, Any] | None = None
    patient: str | None = None


def tubes(
    session: Session, request: SampleRequest, states: tuple[str, ...] | None = None
) -> list[Tube]:
    """A request's tubes in one query, by patient, timepoint and barcode, each patient named
    by the sub-study's pseudonym too."""
    query = (
        select(
            Aliquot.id,
            Aliquot.barcode,
            Patient.study_id,
            Timepoint.code,
            Material.code,
            AliquotType.code,
            Aliquot.volume_remaining_ml,
            Aliquot.cell_count,
            Aliquot.sprec_code,
            Aliquot.freeze_thaw_count,
            RequestAliquot.state,
            RequestAliquot.reason,
            RequestAliquot.picked_at,
            RequestAliquot.picked_by,
            RequestAliquot.discrepancy,
        )
        .select_from(RequestAliquot)
        .join(Aliquot, Aliquot.id == RequestAliquot.aliquot_id)
        .join(Sample, Sample.id == Aliquot.sample_id)
        .outerjoin(Patient, Patient.id == Sample.patient_id)  # none: anonymised
        .outerjoin(Timepoint, Timepoint.id == Sample.timepoint_id)
        .join(Material, Material.id == Sample.material_id)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
        .where(
            RequestAliquot.request_id == request.id,
            scope.aliquot_filter(scope.of(session), Aliquot.id),
        )
        .order_by(Patient.study_id, Timepoint.sort_order, Aliquot.barcode)
    )
    if states is not None:
        query = query.where(RequestAliquot.state.in_(states))
    names = pseudonym.namer(request.substudy_code)
    return [Tube(*row, patient=names[row.study_id]) for row in session.execute(query)]


def for_researcher(found: list[Tube]) -> list[Tube]:
    """The tubes as a researcher sees them: a dropped tube says only DROPPED, and names no
    patient (the reason a tube left names the withdrawal, its date, the patient)."""
    for tube in found:
        if tube.state == "dropped":
            tube.reason, tube.patient = DROPPED, None
    return found


def tubes_of_requests(session: Session, substudy_code: str, codes: list[str]) -> set[str]:
    """Which of these barcodes are allocated or shipped to the sub-study's requests."""
    return set(
        session.scalars(
            select(Aliquot.barcode)
            .join(RequestAliquot, RequestAliquot.aliquot_id == Aliquot.id)
            .join(SampleRequest, SampleRequest.id == RequestAliquot.request_id)
            .join(Substudy, Substudy.id == SampleRequest.substudy_id)
            .where(
                Substudy.code == substudy_code,
                Aliquot.barcode.in_(codes),
                RequestAliquot.state.in_(MINE),
            )
        )
    )


@dataclass
class RecallView:
    """A recall notice on one of the request's shipped tubes."""

    id: int
    barcode: str
    created_at: Any
    acknowledged_at: Any
    acknowledged_by: str | None
    destruction_reported_at: Any


def recalls(
    session: Session, request: SampleRequest, notice_id: int | None = None
) -> list[RecallView]:
    """The recall notices that name this request (consent withdrawn after shipping)."""
    query = (
        select(
            RecallNotice.id,
            Aliquot.barcode,
            RecallNotice.created_at,
            RecallNotice.acknowledged_at,
            RecallNotice.acknowledged_by,
            RecallNotice.destruction_reported_at,
        )
        .join(Aliquot, Aliquot.id == RecallNotice.aliquot_id)
        .join(RequestAliquot, RequestAliquot.aliquot_id == RecallNotice.aliquot_id)
        .where(
            RecallNotice.request_reference == request.number,
            RequestAliquot.request_id == request.id,
            # A withdrawal corrected as entered in error recalls nothing.
            RecallNotice.cancelled_at.is_(None),
            scope.aliquot_filter(scope.of(session), RecallNotice.aliquot_id),
        )
        .order_by(RecallNotice.id)
    )
    if notice_id is not None:
        query = query.where(RecallNotice.id == notice_id)
    return [RecallView(*row) for row in session.execute(query)]


@dataclass
class TubeRecall:
    """One recall per tube and request, however many withdrawals touched the tube: open
    until every notice behind it is acknowledged (or destruction reported)."""

    id: int  # the first notice's id: the page's buttons act on the whole group
    barcode: str
    created_at: Any
    acknowledged_at: Any
    acknowledged_by: str | None
    destruction_reported_at: Any
    notice_ids: list[int] = field(default_factory=list)


def tube_recalls(session: Session, request: SampleRequest) -> list[TubeRecall]:
    """The request's recall notices, one per tube (the earliest notice leads)."""
    merged: dict[str, TubeRecall] = {}
    for notice in recalls(session, request):
        seen = merged.get(notice.barcode)
        if seen is None:
            merged[notice.barcode] = TubeRecall(
                notice.id,
                notice.barcode,
                notice.created_at,
                notice.acknowledged_at,
                notice.acknowledged_by,
                notice.destruction_reported_at,
                [notice.id],
            )
            continue
        seen.notice_ids.append(notice.id)
        if notice.acknowledged_at is None:
            seen.acknowledged_at = seen.acknowledged_by = None
        if notice.destruction_reported_at is None:
            seen.destruction_reported_at = None
    return list(merged.values())


@dataclass
class RequestView:
    """A request with its tubes, their counts by state, recalls and (staff) what matches now."""

    request: SampleRequest
    tubes: list[Tube]
    recalls: list[RecallView]
    matching_now: dict[str, int] | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # The request's own fields read through (schemas dump one flat object).
        if name == "request":
            raise AttributeError(name)
        return getattr(self.request, name)


def describe(session: Session, request: SampleRequest, staff: bool) -> RequestView:
    """A request as its detail page shows it; staff also see what would match now."""
    found = tubes(session, request)
    if not staff:
        found = for_researcher(found)
    counted = Counter(t.state for t in found)
    matching = None
    if staff and request.state in ("submitted", "approved"):
        filters = availability.resolve(session, request.effective_criteria, "criteria.")
        matching = availability.matching(session, request.substudy, filters)
    return RequestView(
        request,
        found,
        recalls(session, request),
        matching,
        {state: counted[state] for state in TUBE_STATES if counted[state]},
    )
