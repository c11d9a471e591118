"""Patients: registration, clinical updates, MRD results, risk group, completeness."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from biobank import clock
from biobank.auth import scope
from biobank.custody.service import record_audit
from biobank.errors import Conflict, Invalid, NotFound
from biobank.patients import risk
from biobank.patients.models import MrdResult, Patient, RiskGroupChange
from biobank.reference.models import Site, Timepoint, Trial
from biobank.reference.service import by_code
from biobank.samples.models import Sample

CLINICAL_FIELDS = (
    "sex",
    "fusion_partner",
    "wbc_at_diagnosis",
    "day8_blasts_per_ul",
    "day8_date",
    "prednisone_response",
)
DAY8_TIMEPOINT = "D8"  # whose nominal day dates a day-8 result that comes without a date


def get_patient(
    session: Session, study_id: str, *, with_history: bool = False, for_update: bool = False
) -> Patient:
    """A patient by study_id, or 404; ``for_update`` locks the row, so that concurrent
    clinical updates apply the risk rule one after the other (one history entry each)."""
    query = select(Patient).where(
        Patient.study_id == study_id, scope.patient_filter(scope.of(session), Patient.site_id)
    )
    if for_update:
        query = query.with_for_update(of=Patient)
    if with_history:
        query = query.options(selectinload(Patient.risk_history), selectinload(Patient.mrd_results))
    patient = session.scalar(query)
    if patient is None:
        raise NotFound(f"no patient {study_id!r}")
    return patient


def patients_query(
    within: scope.Scope,
    site: str | None = None,
    risk_group: str | None = None,
    diagnosis: str | None = None,
) -> Select[tuple[Patient]]:
    """The select behind the patient list, filtered (``within``: the asker's sites)."""
    query = (
        select(Patient)
        .where(scope.patient_filter(within, Patient.site_id))
        .order_by(Patient.study_id)
    )
    if site:
        query = query.where(Patient.site.has(Site.code == site))
    if risk_group:
        query = query.where(Patient.risk_group == risk_group)
    if diagnosis:
        query = query.where(Patient.diagnosis == diagnosis)
    return query


def pending_facts(patient: Patient) -> list[str]:
    """The unknown facts a provisional risk group waits for (field names)."""
    if not patient.risk_provisional:
        return []
    return list(
        risk.initial_risk(
            patient.age_at_diagnosis_days, patient.wbc_at_diagnosis, patient.prednisone_response
        ).pending
    )


def _check_diagnosis_date(session: Session, value: dt.date) -> None:
    if value > clock.today():
        raise Invalid("the diagnosis date is in the future", field="diagnosis_date")
    opened = session.scalar(select(func.min(Trial.opened_on)))
    if opened is not None and value < opened:
        raise Invalid(
            f"the trial opened on {opened.isoformat()}: a diagnosis on "
            f"{value.isoformat()} is before it",
            field="diagnosis_date",
        )


def _check_day8_date(patient_diagnosed: dt.date, value: dt.date | None) -> None:
    if value is not None and not patient_diagnosed <= value <= clock.today():
        raise Invalid("the day-8 date must lie between diagnosis and today", field="day8_date")


def _response_from(values: dict[str, Any], current: str | None = None) -> str:
    stated = values.get("prednisone_response", current)
    blasts = values.get("day8_blasts_per_ul")
    derived = risk.prednisone_response(blasts, stated)
    if (
        blasts is not None
        and "prednisone_response" in values
        and stated not in (derived, "unknown")
    ):
        raise Invalid(
            f"{blasts} blasts/µL on day 8 is a {derived} response, not {stated}",
            field="prednisone_response",
        )
    return derived


def register(session: Session, actor: str, values: dict[str, Any]) -> Patient:
    """Register an enrolled infant and stratify them."""
    if session.scalar(select(Patient.id).where(Patient.study_id == values["study_id"])):
        raise Conflict(f"study_id {values['study_id']!r} is already registered", field="study_id")
    _check_diagnosis_date(session, values["diagnosis_date"])
    _check_day8_date(values["diagnosis_date"], values.get("day8_date"))
    site = by_code(session, Site, values.pop("site"), "site")
    scope.require_site(scope.of(session), site.code)
    response = _response_from(values)
    stratum = risk.initial_risk(
        values["age_at_diagnosis_days"], values.get("wbc_at_diagnosis"), response
    )
    patient = Patient(
        **{**values, "prednisone_response": response},
        site=site,
        risk_group=stratum.group,
        risk_provisional=stratum.provisional,
        mrd_results=[],
    )
    patient.risk_history = [
        RiskGroupChange(
            previous=None,
            risk_group=stratum.group,
            effective_date=values["diagnosis_date"],
            reason=f"stratified at registration: {stratum.reason}",
            provisional=stratum.provisional,
            actor=actor,
        )
    ]
    session.add(patient)
    session.flush()
    record_audit(
        session,
        actor,
        "patient",
        patient.study_id,
        "registered",
        new_values={
            **values,
            "site": site.code,
            "risk_group": stratum.group,
            "risk_provisional": stratum.provisional,
        },
    )
    return patient


def _mrd_pairs(session: Session, patient: Patient) -> list[tuple[str, Any]]:
    return [
        tuple(row)
        for row in session.execute(
            select(Timepoint.code, MrdResult.value_percent)
            .join(MrdResult.timepoint)
            .where(MrdResult.patient_id == patient.id)
            .order_by(MrdResult.id)
        )
    ]


def _restratify(
    session: Session, actor: str, patient: Patient, effective: dt.date, why: str
) -> None:
    """Apply the rule to everything known: an escalation, or a provisional group becoming
    definite (or provisional again), is a new history entry dated ``effective``. The rule
    never de-escalates: when it gives MR for an HR patient, the patient keeps HR and the
    warning says a manager may override."""
    stratum = risk.derive(
        patient.age_at_diagnosis_days,
        patient.wbc_at_diagnosis,
        patient.prednisone_response,
        _mrd_pairs(session, patient),
    )
    if stratum.group == patient.risk_group:
        patient.risk_warning = None
        if stratum.provisional != patient.risk_provisional:
            state = "provisional" if stratum.provisional else "definite"
            _append(
                session,
                actor,
                patient,
                stratum.group,
                effective,
                f"{why}: {stratum.group} now {state}: {stratum.reason}",
                provisional=stratum.provisional,
            )
        session.flush()
    elif stratum.group == "HR":
        _append(session, actor, patient, "HR", effective, f"{why}: {stratum.reason}")
    else:
        patient.risk_warning = (
            f"the rule now gives MR ({stratum.reason}), but escalation to "
            "HR is one-way in the protocol: the patient stays HR unless a "
            "manager overrides with a reason"
        )
        session.flush()


def _check_effective(patient: Patient, effective: dt.date) -> None:
    if effective < patient.diagnosis_date or effective > clock.today():
        raise Invalid(
            "the effective date must lie between diagnosis and today", field="effective_date"
        )


def _append(
    session: Session,
    actor: str,
    patient: Patient,
    group: str,
    effective: dt.date,
    reason: str,
    *,
    provisional: bool = False,
    override: bool = False,
    warning: str | None = None,
) -> RiskGroupChange:
    """Add one history entry and make it the patient's current group (audited)."""
    _check_effective(patient, effective)
    change = RiskGroupChange(
        previous=patient.risk_group,
        risk_group=group,
        effective_date=effective,
        reason=reason[:200],
        provisional=provisional,
        override=override,
        warning=warning,
        actor=actor,
    )
    patient.risk_history.append(change)
    record_audit(
        session,
        actor,
        "patient",
        patient.study_id,
        "risk_group_changed",
        reason=reason,
        old_values={"risk_group": patient.risk_group, "risk_provisional": patient.risk_provisional},
        new_values={
            "risk_group": group,
            "risk_provisional": provisional,
            "override": override,
            "warning": warning,
        },
    )
    patient.risk_group = group
    patient.risk_provisional = provisional
    patient.risk_warning = None
    session.flush()
    return change


def _escalated_by(patient: Patient) -> RiskGroupChange | None:
    """The history entry that last made the patient HR."""
    for change in reversed(patient.risk_history):
        if change.risk_group == "HR" and change.previous != "HR":
            return change
    return None


def change_risk_group(
    session: Session,
    actor: str,
    patient: Patient,
    group: str,
    effective: dt.date,
    reason: str,
    *,
    override: bool = False,
) -> RiskGroupChange:
    """Reassign the risk group by hand (a clinical decision), keeping the history.

    Moving HR back to MR goes against the protocol's one-way escalation: refused (409, with
    the warning) unless ``override`` is given; then the warning is kept with the entry.
    """
    if group == patient.risk_group:
        raise Conflict(f"the patient is already {group}", field="risk_group")
    _check_effective(patient, effective)
    warning = None
    if patient.risk_group == "HR" and group == "MR":
        cause = _escalated_by(patient)
        since = (
            f" since {cause.effective_date.isoformat()} ({cause.reason})"
            if cause is not None
            else ""
        )
        warning = f"escalation to HR is one-way in the protocol: the patient is HR{since}"
        if not override:
            raise Conflict(
                f"{warning}. A manager may override: send override=true with the reason",
                field="override",
            )
    return _append(
        session,
        actor,
        patient,
        group,
        effective,
        reason,
        override=warning is not None,
        warning=warning,
    )


def _day8(session: Session, patient: Patient) -> dt.date:
    """The day of the day-8 count: as recorded, else the schedule's D8 after diagnosis."""
    if patient.day8_date is not None:
        return patient.day8_date
    nominal = (
        session.scalar(select(Timepoint.nominal_day).where(Timepoint.code == DAY8_TIMEPOINT)) or 8
    )
    return min(patient.diagnosis_date + dt.timedelta(days=nominal), clock.today())


def update_clinical(
    session: Session, actor: str, patient: Patient, values: dict[str, Any], reason: str
) -> Patient:
    """Correct or complete clinical data; the risk group follows the rule, dated by the
    clinical event the new fact belongs to (diagnosis for the WBC, day 8 for the response)."""
    _check_day8_date(patient.diagnosis_date, values.get("day8_date"))
    changes = {k: v for k, v in values.items() if getattr(patient, k) != v}
    if "day8_blasts_per_ul" in changes or "prednisone_response" in changes:
        changes["prednisone_response"] = _response_from(
            {**{"day8_blasts_per_ul": patient.day8_blasts_per_ul}, **values},
            patient.prednisone_response,
        )
    if not changes:
        return patient
    old = {key: getattr(patient, key) for key in changes}
    for key, value in changes.items():
        setattr(patient, key, value)
    session.flush()
    record_audit(
        session,
        actor,
        "patient",
        patient.study_id,
        "updated",
        reason=reason,
        old_values=old,
        new_values=changes,
    )
    day8_facts = {"day8_blasts_per_ul", "prednisone_response", "day8_date"} & changes.keys()
    effective = _day8(session, patient) if day8_facts else patient.diagnosis_date
    _restratify(session, actor, patient, effective, f"clinical data changed ({reason})")
    return patient


def _group_on(patient: Patient, day: dt.date | None) -> str:
    """The risk group in force on a day (the current one when the day is unknown)."""
    if day is None:
        return patient.risk_group
    group = patient.risk_group
    for change in sorted(patient.risk_history, key=lambda c: (c.effective_date, c.id or 0)):
        if change.effective_date <= day:
            group = change.risk_group
    return group


def record_mrd(session: Session, actor: str, patient: Patient, values: dict[str, Any]) -> MrdResult:
    """Record an MRD result; it may move the patient to HR, from the day it was measured."""
    timepoint = by_code(session, Timepoint, values.pop("timepoint"), "timepoint")
    measured_on = values.get("measured_on")
    if measured_on is not None and (
        measured_on > clock.today() or measured_on < patient.diagnosis_date
    ):
        raise Invalid("measured_on must lie between diagnosis and today", field="measured_on")
    group = _group_on(patient, measured_on)
    if group not in timepoint.risk_groups:
        raise Invalid(
            f"{timepoint.code} ({timepoint.name}) is a timepoint of "
            f"{' and '.join(timepoint.risk_groups)} patients only; this patient was "
            f"{group}" + (f" on {measured_on.isoformat()}" if measured_on else ""),
            field="timepoint",
        )
    result = MrdResult(timepoint=timepoint, actor=actor, **values)
    patient.mrd_results.append(result)
    session.flush()
    record_audit(
        session,
        actor,
        "patient",
        patient.study_id,
        "mrd_recorded",
        new_values={"timepoint": timepoint.code, **values},
    )
    if measured_on is not None:
        effective, note = measured_on, ""
    elif timepoint.nominal_day is not None:
        effective = min(
            patient.diagnosis_date + dt.timedelta(days=timepoint.nominal_day), clock.today()
        )
        note = " (no measured_on: dated by the timepoint's nominal day)"
    else:
        effective, note = clock.today(), " (no measured_on: dated by its entry)"
    _restratify(session, actor, patient, effective, f"MRD at {timepoint.code}{note}")
    return result


def timeline(session: Session, patient: Patient, today: dt.date | None = None) -> dict[str, Any]:
    """Expected vs received material per timepoint that applies to the patient's risk group."""
    today = today or clock.today()
    timepoints = list(session.scalars(select(Timepoint).order_by(Timepoint.sort_order)))
    samples = list(
        session.scalars(
            select(Sample).where(Sample.patient_id == patient.id).order_by(Sample.collected_at)
        )
    )
    by_tp: dict[int | None, list[Sample]] = {}
    for sample in samples:
        by_tp.setdefault(sample.timepoint_id, []).append(sample)

    rows = []
    for tp in timepoints:
        applies = patient.risk_group in tp.risk_groups
        received = by_tp.get(tp.id, [])
        if not applies and not received:
            continue
        window = _window(patient.diagnosis_date, tp)
        passed = window is not None and window[1] < today
        materials = []
        for code in dict.fromkeys([*tp.expected_materials, *(s.material.code for s in received)]):
            got = [s for s in received if s.material.code == code]
            if got:
                state = "received"
            elif code not in tp.expected_materials or not applies or window is None:
                # Event-driven timepoints (relapse) are expected only once the event happens.
                state = "not_applicable"
            elif passed:
                state = "missing"
            else:
                state = "pending"
            materials.append(
                {"material": code, "state": state, "samples": [s.barcode for s in got]}
            )
        rows.append(
            {
                "timepoint": tp.code,
                "name": tp.name,
                "applies": applies,
                "window_start": window[0] if window else None,
                "window_end": window[1] if window else None,
                "window_passed": passed,
                "materials": materials,
            }
        )
    unscheduled = [
        {
            "barcode": s.barcode,
            "material": s.material.code,
            "collected_at": s.collected_at,
            "reason": s.unscheduled_reason,
        }
        for s in by_tp.get(None, [])
    ]
    return {
        "study_id": patient.study_id,
        "risk_group": patient.risk_group,
        "timepoints": rows,
        "unscheduled": unscheduled,
    }


def _window(diagnosed: dt.date, tp: Timepoint) -> tuple[dt.date, dt.date] | None:
    if tp.nominal_day is None:
        return None  # event-driven: never "missing"
    nominal = diagnosed + dt.timedelta(days=tp.nominal_day)
    return (
        nominal - dt.timedelta(days=tp.window_before_days),
        nominal + dt.timedelta(days=tp.window_after_days),
    )
