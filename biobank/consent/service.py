"""Consent: sub-studies, form versions, recording consent, and the state derived from the log.

The log is append-only; what is in force on a day, and whether it allows use, is the rule
of ``biobank.consent.rule``.

Other domains hook into withdrawals here: ``register_withdrawal_effect`` (e.g. the requests
domain takes withdrawn tubes out of open requests) and ``register_shipment_lookup`` (which
request shipped a tube, to whom: it fills in recall notices).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from biobank import clock
from biobank.consent.models import (
    GENERAL_COMPONENTS,
    ConsentEntry,
    ConsentFormVersion,
    DestructionTask,
    Substudy,
)
from biobank.consent.rule import PARTICIPANT, Key, in_force, key_of, majority_day_of, state_on
from biobank.custody.service import record_audit, record_events
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.locking import lock_tubes
from biobank.patients.models import Patient
from biobank.samples import states
from biobank.samples.models import Aliquot, Sample

GENERAL_TITLES = {
    "storage": "Storage of residual material (blood, bone marrow, CSF)",
    "data": "Collection of clinical data",
}


# --- extension points ------------------------------------------------------------------


@dataclass
class WithdrawalContext:
    """What a withdrawal ends, handed to every registered effect."""

    study_id: str
    scope: str  # "storage", "data", "all" or a sub-study code
    withdrawn_on: dt.date
    storage_ended: bool  # every use of the patient's material ends
    substudies_ended: list[str]  # sub-study codes whose use ends
    aliquot_ids: list[int]  # the patient's tubes still in house (available, reserved, blocked)
    actor: str
    dry_run: bool
    withdrawal_id: int | None = None  # None in a dry run


class EffectAction(NamedTuple):
    """One thing an effect did (or, in a dry run, would do), in words."""

    barcode: str | None
    description: str


class Shipment(NamedTuple):
    """Where a shipped tube went."""

    request_reference: str | None
    recipient: str | None


WithdrawalEffect = Callable[[Session, WithdrawalContext], list[EffectAction]]
ShipmentLookup = Callable[[Session, list[int]], dict[int, Shipment]]

WITHDRAWAL_EFFECTS: dict[str, WithdrawalEffect] = {}
SHIPMENT_LOOKUPS: list[ShipmentLookup] = []


def register_withdrawal_effect(name: str, effect: WithdrawalEffect) -> None:
    """Run ``effect`` inside every withdrawal's transaction (and in dry runs, not writing).

    It must only flush, and must not write when ``context.dry_run`` is true; what it
    returns is shown to the consent officer under ``name``.
    """
    WITHDRAWAL_EFFECTS[name] = effect


def register_shipment_lookup(lookup: ShipmentLookup) -> None:
    """Tell recall notices which request shipped each tube, and to whom."""
    if lookup not in SHIPMENT_LOOKUPS:
        SHIPMENT_LOOKUPS.append(lookup)


# --- sub-studies and form versions -----------------------------------------------------


def list_substudies(session: Session) -> list[Substudy]:
    """Every sub-study, by code."""
    return list(session.scalars(select(Substudy).order_by(Substudy.code)))


def get_substudy(session: Session, code: str) -> Substudy:
    """A sub-study by code, or 404."""
    substudy = session.scalar(select(Substudy).where(Substudy.code == code))
    if substudy is None:
        raise NotFound(f"no sub-study {code!r}")
    return substudy


def create_substudy(session: Session, actor: str, values: dict[str, Any]) -> Substudy:
    """Add a sub-study; a taken code (or "storage", "data", "all") is a 409."""
    if session.scalar(select(Substudy.id).where(Substudy.code == values["code"])) is not None:
        raise Conflict(f"sub-study {values['code']!r} already exists", field="code")
    substudy = Substudy(**values)
    session.add(substudy)
    session.flush()
    record_audit(session, actor, "substudy", substudy.code, "created", new_values=values)
    return substudy


def update_substudy(
    session: Session, actor: str, code: str, values: dict[str, Any], reason: str | None = None
) -> Substudy:
    """Edit a sub-study (close it, change its investigator); its code stays."""
    substudy = get_substudy(session, code)
    old = {key: getattr(substudy, key) for key in values}
    for key, value in values.items():
        setattr(substudy, key, value)
    session.flush()
    record_audit(
        session,
        actor,
        "substudy",
        code,
        "updated",
        reason=reason,
        old_values=old,
        new_values=values,
    )
    return substudy


def list_forms(session: Session) -> list[ConsentFormVersion]:
    """Every consent form version, by code."""
    return list(session.scalars(select(ConsentFormVersion).order_by(ConsentFormVersion.code)))


def create_form(session: Session, actor: str, values: dict[str, Any]) -> ConsentFormVersion:
    """Add a consent form version; every component it covers must exist."""
    if (
        session.scalar(
            select(ConsentFormVersion.id).where(ConsentFormVersion.code == values["code"])
        )
        is not None
    ):
        raise Conflict(f"form version {values['code']!r} already exists", field="code")
    covers = list(dict.fromkeys(values["covers"]))
    known = set(session.scalars(select(Substudy.code).where(Substudy.code.in_(covers))))
    unknown = [c for c in covers if c not in known and c not in GENERAL_COMPONENTS]
    if unknown:
        raise Invalid(f"unknown component(s): {', '.join(unknown)}", field="covers")
    form = ConsentFormVersion(**{**values, "covers": covers})
    session.add(form)
    session.flush()
    record_audit(session, actor, "consent_form", form.code, "created", new_values=values)
    return form


def resolve_component(session: Session, code: str, field_name: str) -> tuple[Key, Substudy | None]:
    """ "storage", "data" or a sub-study code → its key in the log; unknown is a 422."""
    if code in GENERAL_COMPONENTS:
        return (code, None), None
    substudy = session.scalar(select(Substudy).where(Substudy.code == code))
    if substudy is None:
        raise Invalid(
            f'unknown component {code!r}: "storage", "data" or a sub-study code', field=field_name
        )
    return ("substudy", substudy.id), substudy


# --- the log ---------------------------------------------------------------------------


def comes_of_age(session: Session, patient: Patient) -> dt.date:
    """The day the patient comes of age in their site's country (``rule.majority_day_of``)."""
    day = session.scalar(select(majority_day_of(Patient)).where(Patient.id == patient.id))
    assert day is not None
    return day


def lock_patient(session: Session, patient: Patient) -> None:
    """Serialise consent changes of one patient (PostgreSQL row lock; SQLite locks on write)."""
    session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update())


def patient_entries(
    session: Session, patient_id: int, *, with_corrections: bool = False
) -> list[ConsentEntry]:
    """A patient's whole consent log, oldest recorded first."""
    query = select(ConsentEntry).where(ConsentEntry.patient_id == patient_id)
    if with_corrections:
        query = query.options(selectinload(ConsentEntry.corrected_by))
    return list(session.scalars(query.order_by(ConsentEntry.id)))


@dataclass
class PatientConsent:
    """A patient's consent now, and the log it comes from."""

    study_id: str
    current: list[ConsentEntry]
    history: list[ConsentEntry]


def patient_consent(session: Session, patient: Patient) -> PatientConsent:
    """The consent state of every component today, with the whole history."""
    history = patient_entries(session, patient.id, with_corrections=True)
    current = sorted(
        state_on(history, clock.today()).values(),
        key=lambda e: (e.component != "storage", e.component, e.component_code),
    )
    return PatientConsent(patient.study_id, current, history)


# --- recording consent -----------------------------------------------------------------


def record_consent(
    session: Session, actor: str, patient: Patient, values: dict[str, Any]
) -> ConsentEntry:
    """Record a signed consent form's answer for one component, or correct an entry."""
    lock_patient(session, patient)
    key, substudy = resolve_component(session, values["component"], "component")
    code = values["component"]
    form = session.scalar(
        select(ConsentFormVersion).where(ConsentFormVersion.code == values["form_version"])
    )
    if form is None:
        raise Invalid(
            f"unknown consent form version {values['form_version']!r}", field="form_version"
        )
    if code not in form.covers:
        raise Invalid(f"form {form.code} does not cover {code}", field="form_version")
    signed_on: dt.date = values["signed_on"]
    if signed_on > clock.today():
        raise Invalid("signed_on is in the future", field="signed_on")
    of_age = comes_of_age(session, patient)
    if signed_on >= of_age and values["signed_by"] != PARTICIPANT:
        raise Invalid(
            f"{patient.study_id} came of age on {of_age}: from then on only the "
            "participant signs consent (signed_by: participant)",
            field="signed_by",
        )
    if values["signed_by"] == "other" and not values.get("signatory_note"):
        raise Invalid(
            "say who signed (signatory_note) when signed_by is other", field="signatory_note"
        )
    entries = [e for e in in_force(patient_entries(session, patient.id)) if key_of(e) == key]
    corrected = _check_correction(entries, values) if values.get("corrects") else None
    if corrected is None:
        _check_new_entry(entries, values, code)

    entry = ConsentEntry(
        patient_id=patient.id,
        component=key[0],
        substudy_id=key[1],
        decision=values["decision"],
        effective_date=signed_on,
        form_version=form,
        signed_by=values["signed_by"],
        signatory_note=values.get("signatory_note"),
        corrects_id=corrected.id if corrected else None,
        reason=values.get("reason"),
        recorded_by=actor,
        substudy=substudy,
    )
    session.add(entry)
    session.flush()
    record_audit(
        session,
        actor,
        "patient",
        patient.study_id,
        "consent_corrected" if corrected else "consent_recorded",
        reason=values.get("reason"),
        old_values=_audit_values(corrected),
        new_values=_audit_values(entry),
    )
    if key == ("storage", None) and entry.decision == "given":
        restore_after_reconsent(session, actor, patient, entry)
    return entry


def _check_correction(entries: list[ConsentEntry], values: dict[str, Any]) -> ConsentEntry:
    target = next((e for e in entries if e.id == values["corrects"]), None)
    if target is None:
        raise Invalid(
            f"entry {values['corrects']} is not a current entry of this patient's "
            f"{values['component']} consent",
            field="corrects",
        )
    if not values.get("reason"):
        raise Invalid("a correction needs a reason", field="reason")
    ordered = sorted(entries, key=lambda e: (e.effective_date, e.id))
    if ordered[-1].id != target.id:
        raise Invalid(
            "only the latest entry of a component can be corrected; later "
            "entries already superseded this one",
            field="corrects",
        )
    if target.decision == "withdrawn":
        raise Invalid(
            "a withdrawal is not corrected here: record a new consent after it", field="corrects"
        )
    if target.decision == "given" and values["decision"] == "declined":
        raise Invalid(
            "turning given consent into declined would stop use of material: "
            "record a withdrawal, which blocks and recalls it",
            field="decision",
        )
    before = [e for e in ordered if e.id != target.id]
    if before and values["signed_on"] < before[-1].effective_date:
        raise Invalid(
            f"the correction is dated before the previous entry ({before[-1].effective_date})",
            field="signed_on",
        )
    return target


def _check_new_entry(entries: list[ConsentEntry], values: dict[str, Any], code: str) -> None:
    current = max(entries, key=lambda e: (e.effective_date, e.id), default=None)
    if current is None:
        return
    if values["signed_on"] < current.effective_date:
        raise Invalid(
            f"dated before the current {code} entry ({current.effective_date}); "
            "to fix that entry, correct it",
            field="signed_on",
        )
    same = [
        e
        for e in entries
        if e.decision == values["decision"]
        and e.effective_date == values["signed_on"]
        and e.signed_by == values["signed_by"]
        and e.form_version is not None
        and e.form_version.code == values["form_version"]
    ]
    if same:
        raise Conflict(
            f"this {code} consent is already recorded (entry {same[0].id})", field="component"
        )
    if current.decision == "given" and values["decision"] == "declined":
        raise Invalid(
            f"{code} consent was given on {current.effective_date}: record a withdrawal to end it",
            field="decision",
        )


def _audit_values(entry: ConsentEntry | None) -> dict[str, Any] | None:
    # The signatory stays in the consent log, out of the patient's general audit trail.
    if entry is None:
        return None
    return {
        "entry": entry.id,
        "component": entry.component_code,
        "decision": entry.decision,
        "effective_date": entry.effective_date,
        "form_version": entry.form_version.code if entry.form_version else None,
        "withdrawal": entry.withdrawal_id,
    }


def restore_after_reconsent(
    session: Session, actor: str, patient: Patient, entry: ConsentEntry, why: str | None = None
) -> tuple[list[int], list[int]]:
    """Storage consent in force again (given again, or its withdrawal corrected): tubes still
    waiting for destruction go back into use. Returns the tubes (ids) whose tasks were
    cancelled, and those back in use."""
    state = state_on(patient_entries(session, patient.id), clock.today())
    if state.get(("storage", None)) is not entry:
        return [], []
    pending = (DestructionTask.completed_at.is_(None), DestructionTask.cancelled_at.is_(None))
    tasks = (
        select(
            DestructionTask.id,
            DestructionTask.aliquot_id,
            DestructionTask.blocked_from,
            Aliquot.status,
        )
        .join(Aliquot, DestructionTask.aliquot_id == Aliquot.id)
        .join(Sample, Aliquot.sample_id == Sample.id)
        .where(Sample.patient_id == patient.id, *pending)
    )
    # The tubes' locks (biobank.locking, after the patient's), then their tasks and statuses
    # as they are once locked: a technician may have destroyed one meanwhile.
    if not lock_tubes(session, [r.aliquot_id for r in session.execute(tasks)]):
        return [], []
    rows = session.execute(tasks).all()
    if not rows:
        return [], []
    now = utcnow()
    session.execute(
        update(DestructionTask)
        .where(DestructionTask.id.in_([r.id for r in rows]), *pending)
        .values(cancelled_at=now)
    )
    # Only what the withdrawal blocked: a tube held for a quality problem stays held.
    blocked = [
        r.aliquot_id for r in rows if r.status == "blocked" and r.blocked_from in states.RELEASABLE
    ]
    if blocked:
        blocked = sorted(
            session.scalars(
                update(Aliquot)
                .where(Aliquot.id.in_(blocked), Aliquot.status == "blocked")
                .values(status="available")
                .returning(Aliquot.id)
                .execution_options(synchronize_session="fetch")
            )
        )
        record_events(
            session,
            [
                {
                    "event_type": states.event_type("blocked", "available"),
                    "aliquot_id": i,
                    "reason": why
                    or f"storage consent given again on {entry.effective_date} "
                    f"(consent entry {entry.id})",
                    "old_values": {"status": "blocked"},
                    "new_values": {"status": "available"},
                }
                for i in blocked
            ],
            actor,
            now,
        )
    return [r.aliquot_id for r in rows], blocked
