"""Allocation: reserve the tubes an approved request gets, atomically and race-free.

Candidates come from the same conditions availability counts with (consent in SQL); the
chosen ones pass the gate tube by tube and are then reserved with one conditional UPDATE
(``status = 'available'`` in its WHERE). On PostgreSQL a concurrent allocation that took a
tube first makes that UPDATE skip it (after waiting for the other to commit); the tubes
lost are replaced by picking again. A partial unique index on held allocations is the last
line: no tube is ever held for two requests. A site-scoped manager allocates only the tubes
at their sites (``biobank.auth.scope``), the ones "matching now" counted for them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.consent import gate
from biobank.custody.service import record_audit
from biobank.db import utcnow
from biobank.errors import Conflict
from biobank.patients.models import Patient
from biobank.requests import availability, lifecycle
from biobank.requests.lifecycle import Asker
from biobank.requests.models import RequestAliquot, SampleRequest
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, Sample

# Rounds of "pick, reserve, replace what others took first" before giving up.
ROUNDS = 5


@dataclass(frozen=True)
class Candidate:
    """An available, consented tube that matches the criteria."""

    id: int
    patient_id: int | None  # None: anonymised (a donor of its own, unknown)
    study_id: str | None
    timepoint_id: int | None
    volume: Decimal | None
    freeze_thaw: int


def candidates(
    session: Session,
    request: SampleRequest,
    filters: availability.Filters,
    mine: set[int],
    skip: set[int],
) -> list[Candidate]:
    """Tubes that could go to the request: available (or reserved by this allocation); a
    site-scoped manager's, only those at their sites (what "matching now" showed them)."""
    status = Aliquot.status == "available"
    if mine:
        status = or_(status, Aliquot.id.in_(mine))
    query = (
        select(
            Aliquot.id,
            Sample.patient_id,
            Patient.study_id,
            Sample.timepoint_id,
            Aliquot.volume_remaining_ml,
            Aliquot.freeze_thaw_count,
        )
        .join(Sample, Sample.id == Aliquot.sample_id)
        .outerjoin(Patient, Patient.id == Sample.patient_id)
        .where(
            status,
            *availability.tube_conditions(filters),
            *availability.sample_conditions(filters, request.substudy, availability.today()),
            *availability.at_sites(scope.of(session)),
        )
    )
    if skip:
        query = query.where(Aliquot.id.not_in(skip))
    return [Candidate(*row) for row in session.execute(query)]


def donor(tube: Candidate) -> Any:
    """Whose tube it is: the patient, or, anonymised, a donor of its own (unknown)."""
    return tube.patient_id if tube.patient_id is not None else ("anonymised", tube.id)


def choose(
    found: Iterable[Candidate], per_group: int, patients: int, mine: set[int]
) -> list[Candidate]:
    """Up to ``per_group`` tubes per patient and timepoint, from up to ``patients`` patients.

    Tubes already reserved come first (a re-pick keeps them), then the fewest freeze–thaw
    cycles and the most volume. Patients who fill the most timepoints come first.
    """
    groups: dict[Any, dict[int | None, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for tube in found:
        groups[donor(tube)][tube.timepoint_id].append(tube)
    offers = []
    for by_timepoint in groups.values():
        taken = []
        for tubes in by_timepoint.values():
            tubes.sort(key=lambda t: (t.id not in mine, t.freeze_thaw, -(t.volume or 0), t.id))
            taken.append(tubes[:per_group])
        full = sum(len(t) == per_group for t in taken)
        chosen = [tube for part in taken for tube in part]
        keeps = any(t.id in mine for t in chosen)
        offers.append(
            ((not keeps, -full, -len(chosen), chosen[0].study_id or "~", chosen[0].id), chosen)
        )
    offers.sort(key=lambda offer: offer[0])
    return [tube for _, chosen in offers[:patients] for tube in chosen]


def _shortfall(request: SampleRequest, wanted: int, plan: list[Candidate]) -> Conflict:
    found = len({donor(t) for t in plan})
    if not plan:
        message = (
            f"no available tube matches request {request.number} now: nothing to "
            "allocate (0 patients, 0 aliquots found)"
        )
    else:
        message = (
            f"request {request.number} asks for {wanted} patient(s); only {found} "
            f"patient(s) with {len(plan)} matching aliquot(s) are available now "
            "(allow_partial takes them)"
        )
    return Conflict(
        message,
        errors={
            "json": {"patients": [message]},
            "found": {"patients": found, "aliquots": len(plan)},
        },
    )


def allocate(
    session: Session, asker: Asker, number: str, allow_partial: bool = False
) -> SampleRequest:
    """Reserve an approved request's tubes; fewer patients than asked is a 409 saying how
    many were found, unless ``allow_partial``."""
    request = lifecycle.get_request(session, asker, number, act="allocate")
    lifecycle.move(session, asker.username, request, "allocated")
    criteria = request.effective_criteria
    filters = availability.resolve(session, criteria, "criteria.")
    per_group, wanted = criteria.get("aliquots_per_patient_timepoint", 1), criteria["patients"]
    why = f"allocated to request {request.number}"
    mine: set[int] = set()
    skip: set[int] = set()
    refused: dict[str, list[str]] = {}
    try:
        for _ in range(ROUNDS):
            plan = choose(
                candidates(session, request, filters, mine, skip), per_group, wanted, mine
            )
            if not plan or (len({donor(t) for t in plan}) < wanted and not allow_partial):
                raise _shortfall(request, wanted, plan)
            new = [t.id for t in plan if t.id not in mine]
            # The SQL rule and the gate agree (a test holds them to it); the gate has the
            # last word, tube by tube, and a refusal only means picking again without it.
            decisions = gate.may_use(session, new, request.substudy_code) if new else {}
            denied = {i for i, d in decisions.items() if not d.allowed}
            for i in denied:
                refused[decisions[i].barcode or str(i)] = list(decisions[i].reasons)
            got = samples.change_statuses(
                session,
                asker.username,
                [i for i in new if i not in denied],
                "available",
                "reserved",
                why,
                {"request": request.number},
            )
            mine.update(got)
            skip.update(set(new) - set(got))
            if len(got) == len(new):
                break
        else:
            raise Conflict(
                f"other allocations kept taking the tubes request {number} would get: try again",
                field="number",
            )
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in ("40P01", "40001"):
            raise Conflict("another allocation got in the way: try again", field="number") from exc
        raise
    _record(session, asker.username, request, plan, mine, wanted, allow_partial, refused)
    return request


def _record(
    session: Session,
    actor: str,
    request: SampleRequest,
    plan: list[Candidate],
    mine: set[int],
    wanted: int,
    allow_partial: bool,
    refused: dict[str, list[str]],
) -> None:
    """Store the allocation rows and release any tube reserved on the way but not kept."""
    keep = {t.id for t in plan}
    now = utcnow()
    samples.change_statuses(
        session,
        actor,
        sorted(mine - keep),
        "reserved",
        "available",
        f"not needed by request {request.number} after all",
        {"request": request.number},
        now,
    )
    session.execute(
        insert(RequestAliquot),
        [
            {
                "request_id": request.id,
                "aliquot_id": i,
                "state": "allocated",
                "allocated_at": now,
                "updated_at": now,
            }
            for i in sorted(keep)
        ],
    )
    summary: dict[str, Any] = {
        "patients_requested": wanted,
        "patients_found": len({donor(t) for t in plan}),
        "aliquots": len(keep),
        "partial": allow_partial and len({donor(t) for t in plan}) < wanted,
    }
    if refused:
        summary["refused_by_gate"] = refused
    request.allocation_summary = summary
    request.allocated_by, request.allocated_at = actor, now
    session.flush()
    record_audit(session, actor, "request", request.number, "allocation", new_values=summary)
