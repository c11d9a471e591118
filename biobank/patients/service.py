"""Patients: registration, clinical updates, MRD results, risk group, completeness."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from biobank import clock
from biobank.custody.service import record_audit
from biobank.errors import Conflict, Invalid, NotFound
from biobank.patients import risk
from biobank.patients.models import MrdResult, Patient, RiskGroupChange
from biobank.reference.models import Site, Timepoint
from biobank.reference.service import by_code
from biobank.samples.models import Sample

CLINICAL_FIELDS = ("sex", "fusion_partner", "wbc_at_diagnosis", "day8_blasts_per_ul",
                   "prednisone_response")


def get_patient(session: Session, study_id: str, *, with_history: bool = False) -> Patient:
    """A patient by study_id, or 404."""
    query = select(Patient).where(Patient.study_id == study_id)
    if with_history:
        query = query.options(selectinload(Patient.risk_history),
                              selectinload(Patient.mrd_results))
    patient = session.scalar(query)
    if patient is None:
        raise NotFound(f"no patient {study_id!r}")
    return patient


def patients_query(site: str | None = None, risk_group: str | None = None,
                   diagnosis: str | None = None) -> Select[tuple[Patient]]:
    """The select behind the patient list, filtered."""
    query = select(Patient).order_by(Patient.study_id)
    if site:
        query = query.where(Patient.site.has(Site.code == site))
    if risk_group:
        query = query.where(Patient.risk_group == risk_group)
    if diagnosis:
        query = query.where(Patient.diagnosis == diagnosis)
    return query


def _check_diagnosis_date(value: dt.date) -> None:
    if value > clock.today():
        raise Invalid("the diagnosis date is in the future", field="diagnosis_date")


def _response_from(values: dict[str, Any], current: str | None = None) -> str:
    stated = values.get("prednisone_response", current)
    blasts = values.get("day8_blasts_per_ul")
    derived = risk.prednisone_response(blasts, stated)
    if blasts is not None and "prednisone_response" in values and stated not in (derived, "unknown"):
        raise Invalid(f"{blasts} blasts/µL on day 8 is a {derived} response, not {stated}",
                      field="prednisone_response")
    return derived


def register(session: Session, actor: str, values: dict[str, Any]) -> Patient:
    """Register an enrolled infant and stratify them."""
    if session.scalar(select(Patient.id).where(Patient.study_id == values["study_id"])):
        raise Conflict(f"study_id {values['study_id']!r} is already registered", field="study_id")
    _check_diagnosis_date(values["diagnosis_date"])
    site = by_code(session, Site, values.pop("site"), "site")
    response = _response_from(values)
    group, reason = risk.initial_risk(values["age_at_diagnosis_days"],
                                      values.get("wbc_at_diagnosis"), response)
    patient = Patient(**{**values, "prednisone_response": response}, site=site, risk_group=group,
                      mrd_results=[])
    patient.risk_history = [RiskGroupChange(
        previous=None, risk_group=group, effective_date=values["diagnosis_date"],
        reason=f"stratified at registration: {reason}", actor=actor,
    )]
    session.add(patient)
    session.flush()
    record_audit(session, actor, "patient", patient.study_id, "registered",
                 new_values={**values, "site": site.code, "risk_group": group})
    return patient


def _mrd_pairs(session: Session, patient: Patient) -> list[tuple[str, Any]]:
    return [tuple(row) for row in session.execute(
        select(Timepoint.code, MrdResult.value_percent).join(MrdResult.timepoint)
        .where(MrdResult.patient_id == patient.id).order_by(MrdResult.id)
    )]


def _restratify(session: Session, actor: str, patient: Patient, effective: dt.date,
                why: str) -> None:
    """Apply the rule to everything known; a different answer is a new history entry."""
    group, reason = risk.derive(patient.age_at_diagnosis_days, patient.wbc_at_diagnosis,
                                patient.prednisone_response, _mrd_pairs(session, patient))
    if group != patient.risk_group:
        change_risk_group(session, actor, patient, group, effective, f"{why}: {reason}")


def change_risk_group(session: Session, actor: str, patient: Patient, group: str,
                      effective: dt.date, reason: str) -> RiskGroupChange:
    """Move a patient to another risk group, keeping the history."""
    if group == patient.risk_group:
        raise Conflict(f"the patient is already {group}", field="risk_group")
    if effective < patient.diagnosis_date or effective > clock.today():
        raise Invalid("the effective date must lie between diagnosis and today",
                      field="effective_date")
    change = RiskGroupChange(previous=patient.risk_group, risk_group=group,
                             effective_date=effective, reason=reason, actor=actor)
    patient.risk_history.append(change)
    record_audit(session, actor, "patient", patient.study_id, "risk_group_changed",
                 reason=reason, old_values={"risk_group": patient.risk_group},
                 new_values={"risk_group": group})
    patient.risk_group = group
    session.flush()
    return change


def update_clinical(session: Session, actor: str, patient: Patient, values: dict[str, Any],
                    reason: str) -> Patient:
    """Correct or complete clinical data; the risk group follows the rule."""
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
    record_audit(session, actor, "patient", patient.study_id, "updated", reason=reason,
                 old_values=old, new_values=changes)
    _restratify(session, actor, patient, clock.today(), f"clinical data changed ({reason})")
    return patient


def record_mrd(session: Session, actor: str, patient: Patient, values: dict[str, Any]) -> MrdResult:
    """Record an MRD result; it may move the patient to HR."""
    timepoint = by_code(session, Timepoint, values.pop("timepoint"), "timepoint")
    measured_on = values.get("measured_on")
    if measured_on is not None and (measured_on > clock.today()
                                    or measured_on < patient.diagnosis_date):
        raise Invalid("measured_on must lie between diagnosis and today", field="measured_on")
    result = MrdResult(timepoint=timepoint, actor=actor, **values)
    patient.mrd_results.append(result)
    session.flush()
    record_audit(session, actor, "patient", patient.study_id, "mrd_recorded",
                 new_values={"timepoint": timepoint.code, **values})
    _restratify(session, actor, patient, measured_on or clock.today(),
                f"MRD at {timepoint.code}")
    return result


def timeline(session: Session, patient: Patient, today: dt.date | None = None) -> dict[str, Any]:
    """Expected vs received material per timepoint that applies to the patient's risk group."""
    today = today or clock.today()
    timepoints = list(session.scalars(select(Timepoint).order_by(Timepoint.sort_order)))
    samples = list(session.scalars(
        select(Sample).where(Sample.patient_id == patient.id).order_by(Sample.collected_at)
    ))
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
        for code in dict.fromkeys([*tp.expected_materials,
                                   *(s.material.code for s in received)]):
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
            materials.append({"material": code, "state": state,
                              "samples": [s.barcode for s in got]})
        rows.append({
            "timepoint": tp.code, "name": tp.name, "applies": applies,
            "window_start": window[0] if window else None,
            "window_end": window[1] if window else None,
            "window_passed": passed, "materials": materials,
        })
    unscheduled = [{"barcode": s.barcode, "material": s.material.code,
                    "collected_at": s.collected_at, "reason": s.unscheduled_reason}
                   for s in by_tp.get(None, [])]
    return {"study_id": patient.study_id, "risk_group": patient.risk_group,
            "timepoints": rows, "unscheduled": unscheduled}


def _window(diagnosed: dt.date, tp: Timepoint) -> tuple[dt.date, dt.date] | None:
    if tp.nominal_day is None:
        return None  # event-driven: never "missing"
    nominal = diagnosed + dt.timedelta(days=tp.nominal_day)
    return (nominal - dt.timedelta(days=tp.window_before_days),
            nominal + dt.timedelta(days=tp.window_after_days))
