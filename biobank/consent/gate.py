"""The gate: may this tube be used for this sub-study at this moment, and why (not)?

Everything that releases material asks ``may_use`` (or ``justify_release``, which also
stores the consent entries that allowed the release). One tube or a whole rack costs the
same three queries: the sub-study, the tubes, their patients' consent logs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, overload

from sqlalchemy import (
    Select,
    bindparam,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import rule, service
from biobank.consent.models import ConsentEntry, ReleaseJustification, Substudy
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid
from biobank.patients.models import Patient
from biobank.samples import states
from biobank.samples.models import Aliquot, Sample

UNKNOWN = "no aliquot with this barcode"


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one tube: allowed, the reasons if not, the entries if so."""

    allowed: bool
    reasons: tuple[str, ...]
    justification: tuple[int, ...] = ()  # consent entry ids: storage, then sub-study
    barcode: str | None = None
    basis: str | None = None  # when allowed: "consent", or "anonymised" (no patient)


@dataclass(frozen=True)
class _Candidate:
    """A tube up for release, as the gate reads it."""

    id: int
    barcode: str
    status: str
    patient_id: int | None  # None: anonymised
    of_age: dt.date | None  # the day the patient comes of age


def _tubes_query() -> Select[Any]:
    return (
        select(
            Aliquot.id,
            Aliquot.barcode,
            Aliquot.status,
            Sample.patient_id,
            rule.majority_day_of(Patient),
        )
        .join(Sample, Aliquot.sample_id == Sample.id)
        .outerjoin(Patient, Sample.patient_id == Patient.id)
    )


def _entries(
    session: Session, patient_ids: set[int], substudy: Substudy
) -> dict[int | None, list[ConsentEntry]]:
    by_patient: dict[int | None, list[ConsentEntry]] = {p: [] for p in patient_ids}
    by_patient[None] = []
    if not patient_ids:
        return by_patient
    for entry in session.scalars(
        select(ConsentEntry).where(
            ConsentEntry.patient_id.in_(patient_ids),
            or_(ConsentEntry.component == "storage", ConsentEntry.substudy_id == substudy.id),
        )
    ):
        by_patient[entry.patient_id].append(entry)
    return by_patient


def came_of_age(of_age: dt.date | None) -> str:
    """The reason a parent's consent no longer counts."""
    return f"came of age on {of_age}: re-consent needed"


def _component_reasons(
    entry: ConsentEntry | None, standing: str, label: str, day: dt.date, recorded_later: bool
) -> list[str]:
    if standing == "none":
        return [f"no {label} yet on {day}" if recorded_later else f"no {label} on record"]
    if standing in ("given", rule.RECONSENT):
        return []
    assert entry is not None
    return [f"{label} {entry.decision} on {entry.effective_date}"]


def not_accepted(substudy: Substudy) -> str:
    """The reason an anonymised tube may not go to a sub-study."""
    return f"anonymised tube: sub-study {substudy.code} does not accept anonymised material"


def _decide(
    tube: _Candidate, substudy: Substudy, entries: list[ConsentEntry], day: dt.date
) -> Decision:
    reasons = []
    if tube.status not in states.RELEASABLE:
        reasons.append(f"the tube is {tube.status}")
    if not substudy.open:
        reasons.append(f"sub-study {substudy.code} is closed")
    if tube.patient_id is None:
        # No patient, so no consent to ask: only a sub-study that takes anonymised material.
        if substudy.open and not rule.takes_anonymised(substudy):
            reasons.append(not_accepted(substudy))
        return (
            Decision(False, tuple(reasons), barcode=tube.barcode)
            if reasons
            else Decision(True, (), (), tube.barcode, "anonymised")
        )
    state = rule.state_on(entries, day)
    later = {rule.key_of(e) for e in entries if e.effective_date > day}
    own_key = ("substudy", substudy.id)
    storage, own = state.get(rule.STORAGE), state.get(own_key)
    standings = [rule.standing(e, day, tube.of_age) for e in (storage, own)]
    reasons += _component_reasons(
        storage, standings[0], "storage consent", day, rule.STORAGE in later
    )
    reasons += _component_reasons(
        own, standings[1], f"consent for sub-study {substudy.code}", day, own_key in later
    )
    if rule.RECONSENT in standings:
        reasons.append(came_of_age(tube.of_age))
    if reasons:
        return Decision(False, tuple(reasons), barcode=tube.barcode)
    assert storage is not None and own is not None
    return Decision(True, (), (storage.id, own.id), tube.barcode, "consent")


def day_at(at: dt.datetime | None) -> dt.date:
    """The biobank's day at ``at`` (None: today)."""
    return clock.today() if at is None else clock.day_of(at)


def _decide_all(
    session: Session, tubes: Sequence[_Candidate], substudy_code: str, at: dt.datetime | None
) -> tuple[Substudy, dict[int, Decision]]:
    substudy = service.get_substudy(session, substudy_code)
    day = day_at(at)
    entries = _entries(session, {t.patient_id for t in tubes if t.patient_id is not None}, substudy)
    return substudy, {t.id: _decide(t, substudy, entries[t.patient_id], day) for t in tubes}


@overload
def may_use(
    session: Session, aliquots: int | Aliquot, substudy_code: str, at: dt.datetime | None = None
) -> Decision: ...


@overload
def may_use(
    session: Session,
    aliquots: Iterable[int | Aliquot],
    substudy_code: str,
    at: dt.datetime | None = None,
) -> dict[int, Decision]: ...


def may_use(
    session: Session, aliquots: Any, substudy_code: str, at: dt.datetime | None = None
) -> Decision | dict[int, Decision]:
    """Whether tubes may be used for a sub-study at ``at`` (default: now), with the reasons.

    Give one aliquot (or id) for one Decision, or many for a dict by aliquot id. Needs the
    storage consent and the sub-study's consent in force that day, the sub-study open and
    the tube available or reserved. An unknown sub-study is a 404.
    """
    single = isinstance(aliquots, int | Aliquot)
    items = [aliquots] if single else list(aliquots)
    ids = [a.id if isinstance(a, Aliquot) else a for a in items]
    tubes = [_Candidate(*row) for row in session.execute(_tubes_query().where(Aliquot.id.in_(ids)))]
    decisions = _decide_all(session, tubes, substudy_code, at)[1]
    for missing in set(ids) - set(decisions):
        decisions[missing] = Decision(False, ("no such aliquot",))
    return decisions[ids[0]] if single else decisions


# What a researcher hears instead of the consent reasons: no dates, no withdrawal.
NOT_CONSENTED = "consent does not allow this use"


def researcher_reasons(decision: Decision) -> list[str]:
    """The reasons a researcher may read: the tube's status and the sub-study's, and
    whether consent allows the use, without the dates and decisions behind it."""
    kept = [
        r
        for r in decision.reasons
        if r.startswith(("the tube is ", "sub-study ", "anonymised tube: "))
    ]
    if len(kept) < len(decision.reasons):
        kept.append(NOT_CONSENTED)
    return kept


def check_barcodes(
    session: Session, barcodes: list[str], substudy_code: str, at: dt.datetime | None = None
) -> list[Decision]:
    """The gate for scanned codes (one tube, or a rack), in the order given."""
    tubes = {
        row.barcode: _Candidate(*row)
        for row in session.execute(_tubes_query().where(Aliquot.barcode.in_(set(barcodes))))
    }
    decisions = _decide_all(session, list(tubes.values()), substudy_code, at)[1]
    return [
        decisions[tubes[code].id] if code in tubes else Decision(False, (UNKNOWN,), barcode=code)
        for code in barcodes
    ]


def justify_release(
    session: Session,
    actor: str,
    aliquot_ids: list[int],
    substudy_code: str,
    kind: str,
    reference: str,
    at: dt.datetime | None = None,
) -> list[ReleaseJustification]:
    """Pass tubes through the gate and store, per tube, the consent that allowed the release.

    Call it from whatever releases material (the requests workflow), in its transaction.
    Any tube refused refuses the whole release (409, naming each tube and reason). The
    patients' rows are share-locked, so a withdrawal cannot slip in between check and release.
    """
    if not aliquot_ids:
        raise Invalid("no tubes to release", field="aliquots")
    at = at or utcnow()
    # Share-lock the patients first (a lock cannot reach the nullable side of the outer
    # join), then read the tubes: an anonymisation that committed meanwhile shows as one.
    session.execute(
        select(Patient.id)
        .where(
            Patient.id.in_(
                select(Sample.patient_id)
                .join(Aliquot, Aliquot.sample_id == Sample.id)
                .where(Aliquot.id.in_(aliquot_ids))
            )
        )
        .order_by(Patient.id)
        .with_for_update(read=True)
    ).all()
    tubes = [
        _Candidate(*row)
        for row in session.execute(_tubes_query().where(Aliquot.id.in_(aliquot_ids)))
    ]
    substudy, decisions = _decide_all(session, tubes, substudy_code, at)
    unknown = set(aliquot_ids) - set(decisions)
    if unknown:
        raise Invalid(f"no aliquot(s) with id {sorted(unknown)}", field="aliquots")
    refused = [d for d in decisions.values() if not d.allowed]
    if refused:
        raise Conflict(
            "consent does not allow this release: "
            + "; ".join(f"{d.barcode}: {', '.join(d.reasons)}" for d in refused),
            field="aliquots",
        )
    rows = [
        {
            "release_kind": kind,
            "release_reference": reference,
            "aliquot_id": i,
            "substudy_id": substudy.id,
            "basis": decisions[i].basis,
            "storage_consent_id": (decisions[i].justification or (None, None))[0],
            "substudy_consent_id": (decisions[i].justification or (None, None))[1],
            "released_at": at,
            "actor": actor,
        }
        for i in dict.fromkeys(aliquot_ids)
    ]
    ids = list(
        session.scalars(
            insert(ReleaseJustification).returning(
                ReleaseJustification.id, sort_by_parameter_order=True
            ),
            rows,
        )
    )
    return list(
        session.scalars(
            select(ReleaseJustification)
            .where(ReleaseJustification.id.in_(ids))
            .order_by(ReleaseJustification.id)
        )
    )


_patient = Patient.__table__
# Built once: the scan station asks on every sample it scans.
_LOG = select(
    rule.log_column(ConsentEntry.patient_id == _patient.c.id).label("log"),
    rule.majority_day_of(_patient.c).label("of_age"),
).where(_patient.c.id == bindparam("patient_id"))


def patient_card(session: Session, patient_id: int, status: str) -> dict[str, Any]:
    """The consent state at the scan station, with a withdrawal in words (one query)."""
    row = session.execute(_LOG, {"patient_id": patient_id}).one()
    return card_of(row.log, row.of_age, status)


def anonymised_card(takers: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The scan card of a tube (or sample) whose link to its patient was cut, from
    ``rule.anonymised_takers``: the sub-studies it may go to."""
    usable = sorted(t["code"] for t in takers or ())
    return {
        "storage": "anonymised",
        "storage_since": None,
        "substudies": {},
        "anonymised": True,
        "usable_for": usable,
        "summary": "anonymised (no link to a patient): usable only for "
        f"{', '.join(usable) or 'no sub-study yet'} (sub-studies that accept "
        "anonymised material)",
    }


def sample_anonymised_card(session: Session) -> dict[str, Any]:
    """``anonymised_card`` for the scan of an anonymised sample (one query)."""
    return anonymised_card(session.scalar(select(rule.anonymised_takers())))


def card_of(
    log: list[dict[str, Any]] | None, of_age: dt.date | str | None, status: str
) -> dict[str, Any]:
    """The scan card of a tube in ``status`` from the log of ``rule.log_column`` and the day
    its patient comes of age (``rule.majority_day_of``), as of the biobank's today."""
    day, majority = clock.today(), rule.day_from_json(of_age)
    [lines] = rule.read_log(log).values() or [[]]
    state = rule.state_on(lines, day)
    storage = state.get(rule.STORAGE)
    standing = rule.standing(storage, day, majority)
    substudies = {
        e.component_code: {
            "state": rule.standing(e, day, majority),
            "since": e.effective_date.isoformat(),
        }
        for k, e in sorted(state.items(), key=lambda i: i[1].component_code)
        if k[0] == "substudy"
    }
    stale = came_of_age(majority)
    if storage is None:
        words = "no storage consent on record: do not use this tube"
    elif standing == rule.RECONSENT:
        words = f"{stale}: do not use this tube"
    elif standing == "given":
        given = [code for code, s in substudies.items() if s["state"] == "given"]
        ended = [
            f"{code} {stale}"
            if s["state"] == rule.RECONSENT
            else f"{code} {s['state']} on {s['since']}"
            for code, s in substudies.items()
            if s["state"] != "given"
        ]
        words = (
            f"storage consent given on {storage.effective_date}; usable for "
            f"{', '.join(given) or 'no sub-study yet'}"
            + (f" (not for {'; '.join(ended)})" if ended else "")
        )
    else:
        words = f"storage consent {storage.decision} on {storage.effective_date}: tube {status}"
    return {
        "storage": None if storage is None else standing,
        "storage_since": storage.effective_date.isoformat() if storage else None,
        "substudies": substudies,
        "summary": words,
    }
