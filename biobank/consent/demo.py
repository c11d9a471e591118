"""Demo consents: three sub-studies, two form versions, consents for most demo patients,
a few declined sub-studies and one withdrawn sub-study. Idempotent: sub-studies and forms
are recognised by code, patients with any consent entry are left alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import service, withdrawal
from biobank.consent.models import ConsentEntry, ConsentFormVersion, Substudy
from biobank.patients.models import Patient

SUBSTUDIES = (
    {
        "code": "DEMO",
        "title": "Demo sub-study: residual material for method development",
        "principal_investigator": "Demo investigator (Utrecht)",
    },
    {
        "code": "MRD-NGS",
        "title": "MRD by next-generation sequencing of KMT2A breakpoints",
        "principal_investigator": "Demo investigator (Kiel)",
    },
    {
        "code": "IMMUNO",
        "title": "Immune reconstitution after blinatumomab",
        "principal_investigator": "Demo investigator (Monza)",
    },
)
COVERS = ["storage", "data", "DEMO", "MRD-NGS", "IMMUNO"]
FORMS = (
    {
        "code": "IF21-BB-2.0-NL",
        "title": "Toestemmingsformulier biobank Interfant-21",
        "version": "2.0",
        "language": "nl",
        "covers": COVERS,
    },
    {
        "code": "IF21-BB-2.0-EN",
        "title": "Interfant-21 biobank consent form",
        "version": "2.0",
        "language": "en",
        "covers": COVERS,
    },
)
SIGNATORIES = ("mother", "father", "mother", "legal_guardian")
WITHDRAWN = "MRD-NGS"  # the sub-study one demo patient withdraws from


def load_demo(session: Session, actor: str) -> dict[str, int]:
    """Add the demo sub-studies, forms and consents that are missing; returns counts added."""
    added = {"substudies": 0, "forms": 0, "patients": 0, "entries": 0, "withdrawals": 0}
    have = set(session.scalars(select(Substudy.code)))
    for values in SUBSTUDIES:
        if values["code"] not in have:
            service.create_substudy(session, actor, dict(values))
            added["substudies"] += 1
    have = set(session.scalars(select(ConsentFormVersion.code)))
    for values in FORMS:
        if values["code"] not in have:
            service.create_form(session, actor, dict(values))
            added["forms"] += 1
    done = set(session.scalars(select(ConsentEntry.patient_id).distinct()))
    patients = session.scalars(
        select(Patient).where(Patient.study_id.like("IF21-%")).order_by(Patient.study_id)
    ).all()
    today = clock.today()
    for index, patient in enumerate(patients):
        # The last patient's form has not been entered yet: no consent on record.
        if patient.id in done or index == len(patients) - 1:
            continue
        entries = _consents(session, actor, patient, index, today)
        added["patients"] += 1
        added["entries"] += entries
        if index == 2:
            withdrawal.withdraw(
                session,
                actor,
                patient,
                {
                    "scope": WITHDRAWN,
                    "date": max(_signed_on(patient, today), today - dt.timedelta(days=3)),
                    "requested_by": "mother",
                    "reason": "parents prefer no further sequencing research",
                },
            )
            added["withdrawals"] += 1
    return added


def _signed_on(patient: Patient, today: dt.date) -> dt.date:
    # Parents sign in the days after diagnosis.
    return min(patient.diagnosis_date + dt.timedelta(days=2), today)


def _consents(session: Session, actor: str, patient: Patient, index: int, today: dt.date) -> int:
    """What this patient's parents answered: a deterministic mix."""
    answers: dict[str, str] = {"storage": "given", "data": "given", "DEMO": "given"}
    answers["MRD-NGS"] = "declined" if index == 5 else "given" if index % 2 == 0 else ""
    answers["IMMUNO"] = "declined" if index % 7 == 3 else "given" if index % 3 == 0 else ""
    form = "IF21-BB-2.0-NL" if patient.site.country == "NL" else "IF21-BB-2.0-EN"
    values: dict[str, Any] = {
        "signed_on": _signed_on(patient, today),
        "form_version": form,
        "signed_by": SIGNATORIES[index % len(SIGNATORIES)],
    }
    recorded = 0
    for component, decision in answers.items():
        if decision:
            service.record_consent(
                session, actor, patient, {**values, "component": component, "decision": decision}
            )
            recorded += 1
    return recorded
