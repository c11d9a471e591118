"""The gate: may this tube be used for this sub-study at this moment, and why (not)?

Everything that releases material asks ``may_use`` (or ``justify_release``, which also
stores the consent entries that allowed the release). One tube or a whole rack costs the
same three queries: the sub-study, the tubes, their patients' consent logs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    bindparam,
    exists,
    false,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from biobank.consent import service
from biobank.consent.models import ConsentEntry, ReleaseJustification, Substudy
from biobank.db import json_rows, utcnow
from biobank.errors import Conflict, Invalid
from biobank.patients.models import Patient
from biobank.samples.models import Aliquot, Sample

# Statuses in which a tube can still be handed out.
USABLE = frozenset({"available", "reserved"})
UNKNOWN = "no aliquot with this barcode"


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one tube: allowed, the reasons if not, the entries if so."""

    allowed: bool
    reasons: tuple[str, ...]
    justification: tuple[int, ...] = ()  # consent entry ids: storage, then sub-study
    barcode: str | None = None


@dataclass(frozen=True)
class _Tube:
    id: int
    barcode: str
    status: str
    patient_id: int


def _tubes_query() -> Select[Any]:
    return (select(Aliquot.id, Aliquot.barcode, Aliquot.status, Sample.patient_id)
            .join(Sample, Aliquot.sample_id == Sample.id))


def _entries(session: Session, patient_ids: set[int],
             substudy: Substudy) -> dict[int, list[ConsentEntry]]:
    by_patient: dict[int, list[ConsentEntry]] = {p: [] for p in patient_ids}
    if not patient_ids:
        return by_patient
    for entry in session.scalars(
            select(ConsentEntry).where(
                ConsentEntry.patient_id.in_(patient_ids),
                or_(ConsentEntry.component == "storage", ConsentEntry.substudy_id == substudy.id))):
        by_patient[entry.patient_id].append(entry)
    return by_patient


def _component_reasons(entry: ConsentEntry | None, label: str, day: dt.date,
                       recorded_later: bool) -> list[str]:
    if entry is None:
        return [f"no {label} yet on {day}" if recorded_later else f"no {label} on record"]
    if entry.decision == "given":
        return []
    return [f"{label} {entry.decision} on {entry.effective_date}"]


def _decide(tube: _Tube, substudy: Substudy, entries: list[ConsentEntry],
            day: dt.date) -> Decision:
    reasons = []
    if tube.status not in USABLE:
        reasons.append(f"the tube is {tube.status}")
    if not substudy.open:
        reasons.append(f"sub-study {substudy.code} is closed")
    state = service.state_on(entries, day)
    later = {service.key_of(e) for e in entries if e.effective_date > day}
    storage = state.get(("storage", None))
    own = state.get(("substudy", substudy.id))
    reasons += _component_reasons(storage, "storage consent", day, ("storage", None) in later)
    reasons += _component_reasons(own, f"consent for sub-study {substudy.code}", day,
                                  ("substudy", substudy.id) in later)
    if reasons:
        return Decision(False, tuple(reasons), barcode=tube.barcode)
    assert storage is not None and own is not None
    return Decision(True, (), (storage.id, own.id), tube.barcode)


def _decide_all(session: Session, tubes: Sequence[_Tube], substudy_code: str,
                at: dt.datetime | None) -> tuple[Substudy, dict[int, Decision]]:
    substudy = service.get_substudy(session, substudy_code)
    day = (at or utcnow()).astimezone(dt.UTC).date()
    entries = _entries(session, {t.patient_id for t in tubes}, substudy)
    return substudy, {t.id: _decide(t, substudy, entries[t.patient_id], day) for t in tubes}


@overload
def may_use(session: Session, aliquots: int | Aliquot, substudy_code: str,
            at: dt.datetime | None = None) -> Decision: ...


@overload
def may_use(session: Session, aliquots: Iterable[int | Aliquot], substudy_code: str,
            at: dt.datetime | None = None) -> dict[int, Decision]: ...


def may_use(session: Session, aliquots: Any, substudy_code: str,
            at: dt.datetime | None = None) -> Decision | dict[int, Decision]:
    """Whether tubes may be used for a sub-study at ``at`` (default: now), with the reasons.

    Give one aliquot (or id) for one Decision, or many for a dict by aliquot id. Needs the
    storage consent and the sub-study's consent in force that day, the sub-study open and
    the tube available or reserved. An unknown sub-study is a 404.
    """
    single = isinstance(aliquots, int | Aliquot)
    items = [aliquots] if single else list(aliquots)
    ids = [a.id if isinstance(a, Aliquot) else a for a in items]
    tubes = [_Tube(*row) for row in session.execute(_tubes_query().where(Aliquot.id.in_(ids)))]
    decisions = _decide_all(session, tubes, substudy_code, at)[1]
    for missing in set(ids) - set(decisions):
        decisions[missing] = Decision(False, ("no such aliquot",))
    return decisions[ids[0]] if single else decisions


def consented_patients_subquery(substudy: Substudy, day: dt.date) -> Select[tuple[int]]:
    """The patients whose tubes ``may_use`` lets out for a sub-study on ``day``, as SQL.

    The same rule, tube status aside: the sub-study is open, and the storage consent and
    the sub-study's consent in force that day (each component's latest entry on or before
    it, ties to the later recorded, corrections replacing what they correct) are both
    ``given``. Patients are few and tubes many: use it as ``patient_id IN (...)`` in
    queries that count or pick tubes in the database.
    """
    replacing = aliased(ConsentEntry)
    rank = func.row_number().over(
        partition_by=(ConsentEntry.patient_id, ConsentEntry.component),
        order_by=(ConsentEntry.effective_date.desc(), ConsentEntry.id.desc()))
    latest = (select(ConsentEntry.patient_id, ConsentEntry.decision, rank.label("rank"))
              .where(or_(ConsentEntry.component == "storage",
                         ConsentEntry.substudy_id == substudy.id),
                     ConsentEntry.effective_date <= day,
                     ~exists().where(replacing.corrects_id == ConsentEntry.id))
              .subquery("latest_consent"))
    query = (select(latest.c.patient_id)
             .where(latest.c.rank == 1, latest.c.decision == "given")
             .group_by(latest.c.patient_id).having(func.count() == 2))
    return query if substudy.open else query.where(false())


def check_barcodes(session: Session, barcodes: list[str], substudy_code: str,
                   at: dt.datetime | None = None) -> list[Decision]:
    """The gate for scanned codes (one tube, or a rack), in the order given."""
    tubes = {row.barcode: _Tube(*row) for row in
             session.execute(_tubes_query().where(Aliquot.barcode.in_(set(barcodes))))}
    decisions = _decide_all(session, list(tubes.values()), substudy_code, at)[1]
    return [decisions[tubes[code].id] if code in tubes
            else Decision(False, (UNKNOWN,), barcode=code)
            for code in barcodes]


def justify_release(session: Session, actor: str, aliquot_ids: list[int], substudy_code: str,
                    kind: str, reference: str,
                    at: dt.datetime | None = None) -> list[ReleaseJustification]:
    """Pass tubes through the gate and store, per tube, the consent that allowed the release.

    Call it from whatever releases material (the requests workflow), in its transaction.
    Any tube refused refuses the whole release (409, naming each tube and reason). The
    patients' rows are share-locked, so a withdrawal cannot slip in between check and release.
    """
    if not aliquot_ids:
        raise Invalid("no tubes to release", field="aliquots")
    at = at or utcnow()
    tubes = [_Tube(*row) for row in session.execute(
        _tubes_query().join(Patient, Sample.patient_id == Patient.id)
        .where(Aliquot.id.in_(aliquot_ids)).with_for_update(read=True, of=Patient))]
    substudy, decisions = _decide_all(session, tubes, substudy_code, at)
    unknown = set(aliquot_ids) - set(decisions)
    if unknown:
        raise Invalid(f"no aliquot(s) with id {sorted(unknown)}", field="aliquots")
    refused = [d for d in decisions.values() if not d.allowed]
    if refused:
        raise Conflict("consent does not allow this release: " + "; ".join(
            f"{d.barcode}: {', '.join(d.reasons)}" for d in refused), field="aliquots")
    rows = [{"release_kind": kind, "release_reference": reference, "aliquot_id": i,
             "substudy_id": substudy.id, "storage_consent_id": decisions[i].justification[0],
             "substudy_consent_id": decisions[i].justification[1], "released_at": at,
             "actor": actor} for i in dict.fromkeys(aliquot_ids)]
    ids = list(session.scalars(insert(ReleaseJustification)
                               .returning(ReleaseJustification.id, sort_by_parameter_order=True),
                               rows))
    return list(session.scalars(select(ReleaseJustification)
                                .where(ReleaseJustification.id.in_(ids))
                                .order_by(ReleaseJustification.id)))


class _LogLine(NamedTuple):
    """What the scan card reads of a consent entry (``service.state_on`` takes these too)."""

    id: int
    component: str
    substudy_id: int | None
    decision: str
    effective_date: dt.date
    corrects_id: int | None
    component_code: str


def consent_log_column(patient_id: ColumnElement[int]) -> ScalarSelect[Any]:
    """A patient's consent log as one JSON value of the enclosing statement (read back by
    ``card_of``); ``patient_id`` is the patient's id column there."""
    entry, substudy = ConsentEntry.__table__, Substudy.__table__
    return (select(json_rows(id=entry.c.id, component=entry.c.component,
                             substudy_id=entry.c.substudy_id, decision=entry.c.decision,
                             effective_date=entry.c.effective_date,
                             corrects_id=entry.c.corrects_id,
                             component_code=func.coalesce(substudy.c.code, entry.c.component)))
            .select_from(entry.outerjoin(substudy, substudy.c.id == entry.c.substudy_id))
            .where(entry.c.patient_id == patient_id).scalar_subquery())


_patient = Patient.__table__
# Built once: the scan station asks on every tube.
_LOG = select(consent_log_column(_patient.c.id)).where(_patient.c.id == bindparam("patient_id"))


def scan_card(session: Session, patient_id: int, status: str) -> dict[str, Any]:
    """The consent state at the scan station, with a withdrawal in words (one query)."""
    return card_of(session.scalar(_LOG, {"patient_id": patient_id}), status)


def card_of(log: list[dict[str, Any]] | None, status: str) -> dict[str, Any]:
    """The scan card of a tube in ``status`` from the log of ``consent_log_column``."""
    entries = [_LogLine(row["id"], row["component"], row["substudy_id"], row["decision"],
                        dt.date.fromisoformat(row["effective_date"]), row["corrects_id"],
                        row["component_code"]) for row in log or ()]
    state = service.state_on(entries, dt.date.today())  # type: ignore[arg-type]
    storage = state.get(("storage", None))
    substudies = {e.component_code: {"state": e.decision, "since": e.effective_date.isoformat()}
                  for k, e in sorted(state.items(), key=lambda i: i[1].component_code)
                  if k[0] == "substudy"}
    if storage is None:
        words = "no storage consent on record: do not use this tube"
    elif storage.decision == "given":
        given = [code for code, s in substudies.items() if s["state"] == "given"]
        ended = [f"{code} {s['state']} on {s['since']}" for code, s in substudies.items()
                 if s["state"] != "given"]
        words = (f"storage consent given on {storage.effective_date}; usable for "
                 f"{', '.join(given) or 'no sub-study yet'}"
                 + (f" (not for {'; '.join(ended)})" if ended else ""))
    else:
        words = f"storage consent {storage.decision} on {storage.effective_date}: tube {status}"
    return {
        "storage": storage.decision if storage else None,
        "storage_since": storage.effective_date.isoformat() if storage else None,
        "substudies": substudies,
        "summary": words,
    }
