"""Consent resources: one per patient and component (storage, data, each sub-study), from
the append-only consent log, with every period of it as a nested provision.

The state follows ``biobank.consent.rule``: corrections replace what they correct
(``in_force``), and the latest entry of a component decides its status. A withdrawal is a
``deny`` provision from the day it took effect; re-consent after it a new ``permit``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.consent.models import ConsentEntry
from biobank.consent.rule import in_force
from biobank.fhir import access
from biobank.fhir import terminology as tx
from biobank.fhir.access import Viewer
from biobank.fhir.resources import Settings
from biobank.patients.models import Patient

_SLUG = re.compile(r"^(storage|data|substudy-[1-9][0-9]{0,17})$")
GENERAL_TITLES = {
    "storage": "Storage of residual material (blood, bone marrow, CSF)",
    "data": "Collection of clinical data",
}


@dataclass(frozen=True)
class PatientRow:
    """A patient as the consent resources name it."""

    id: int
    study_id: str
    sex: str


def slug(entry: ConsentEntry) -> str:
    """The component part of a Consent id."""
    return f"substudy-{entry.substudy_id}" if entry.component == "substudy" else entry.component


def split_id(fhir_id: str) -> tuple[str, str] | None:
    """(patient resource id, component slug) of a Consent id, or None."""
    patient, _, component = fhir_id.rpartition(".")
    if not patient or not _SLUG.match(component):
        return None
    return patient, component


def _visible(viewer: Viewer, entry: ConsentEntry) -> bool:
    # Researchers see the storage consent (it ends every use) and their own sub-studies'.
    return (
        viewer.staff
        or entry.component == "storage"
        or (entry.substudy_id is not None and entry.substudy_id in viewer.substudy_ids)
    )


def entries_of(
    session: Session, viewer: Viewer, patient_ids: Iterable[int]
) -> dict[int, list[ConsentEntry]]:
    """The consent logs of patients the viewer may see, by patient (components they may see)."""
    ids = sorted(set(patient_ids))
    found: dict[int, list[ConsentEntry]] = {i: [] for i in ids}
    if not ids:
        return found
    query = access.scope(
        select(ConsentEntry).where(ConsentEntry.patient_id.in_(ids)),
        viewer,
        ConsentEntry.patient_id,
    ).order_by(ConsentEntry.id)
    for entry in session.scalars(query):
        if _visible(viewer, entry):
            found[entry.patient_id].append(entry)
    return found


def consent_resources(
    patient: PatientRow, entries: list[ConsentEntry], viewer: Viewer, settings: Settings
) -> list[dict[str, Any]]:
    """One Consent per component of a patient's log, storage first."""
    by_component: dict[str, list[ConsentEntry]] = {}
    for entry in in_force(entries):
        by_component.setdefault(slug(entry), []).append(entry)
    patient_id = access.patient_fhir_id(viewer, patient.study_id)
    resources = []
    for component in sorted(by_component, key=_order):
        log = sorted(by_component[component], key=lambda e: (e.effective_date, e.id))
        latest = log[-1]
        code = latest.component_code
        title = GENERAL_TITLES.get(latest.component) or (
            latest.substudy.title if latest.substudy else code
        )
        forms = sorted({e.form_version.code for e in log if e.form_version is not None})
        resource: dict[str, Any] = {
            "resourceType": "Consent",
            "id": f"{patient_id}.{component}",
            "status": tx.CONSENT_STATUS[latest.decision],
            "scope": tx.concept(tx.coding(*tx.CONSENT_SCOPE)),
            "category": [tx.concept(tx.coding(*tx.CONSENT_CATEGORY))],
            "patient": {"reference": f"Patient/{patient_id}"},
            "dateTime": latest.effective_date.isoformat(),
            "organization": [{"reference": "Organization/biobank"}],
        }
        if forms:
            resource["policy"] = [{"uri": f"{settings.base}/consent-form/{form}"} for form in forms]
        else:
            resource["policyRule"] = tx.concept(text="Interfant-21 informed consent")
        resource["provision"] = {
            "type": "deny",
            "purpose": [tx.coding(*tx.RESEARCH_PURPOSE)],
            "code": [
                tx.concept(tx.coding(f"{settings.base}/CodeSystem/consent-component", code, title))
            ],
            "provision": _provisions(log),
        }
        resources.append(resource)
    return resources


def _order(component: str) -> tuple[int, str]:
    return ({"storage": 0, "data": 1}.get(component, 2), component)


def _provisions(log: list[ConsentEntry]) -> list[dict[str, Any]]:
    """Each entry's decision for the period until the next one: permit while given, deny
    after a refusal or a withdrawal (as it happened, from the day it took effect)."""
    provisions = []
    for index, entry in enumerate(log):
        period = {"start": entry.effective_date.isoformat()}
        if index + 1 < len(log):
            period["end"] = log[index + 1].effective_date.isoformat()
        provisions.append(
            {"type": "permit" if entry.decision == "given" else "deny", "period": period}
        )
    return provisions


def patients_after(
    session: Session, viewer: Viewer, after: int, limit: int, only: list[int] | None = None
) -> list[PatientRow]:
    """Patients the viewer may see, in id order after ``after``."""
    query = access.scope(
        select(Patient.id, Patient.study_id, Patient.sex).where(Patient.id > after),
        viewer,
        Patient.id,
    )
    if only is not None:
        query = query.where(Patient.id.in_(only))
    return [PatientRow(*row) for row in session.execute(query.order_by(Patient.id).limit(limit))]


def search(
    session: Session,
    viewer: Viewer,
    settings: Settings,
    patient_ids: list[int] | None,
    size: int,
    cursor: tuple[int, str] | None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of ``size`` Consents after ``cursor`` (patient id, component), and whether
    more follow."""
    found: list[tuple[int, str, dict[str, Any]]] = []
    after = cursor[0] - 1 if cursor else 0
    while len(found) <= size:
        patients = patients_after(session, viewer, after, size + 1, patient_ids)
        if not patients:
            break
        logs = entries_of(session, viewer, [p.id for p in patients])
        for patient in patients:
            for resource in consent_resources(patient, logs[patient.id], viewer, settings):
                key = (patient.id, _order(resource["id"].rpartition(".")[2]))
                if cursor is None or key > (cursor[0], _order(cursor[1])):
                    found.append((patient.id, resource["id"], resource))
        after = patients[-1].id
    return [resource for _, _, resource in found[:size]], len(found) > size
