"""The FHIR service: search parameters into criteria, pages of rows into resources.

No Flask here: the API and the bulk export both call it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from biobank.fhir import access, search, specimens
from biobank.fhir import terminology as tx
from biobank.fhir.access import Viewer
from biobank.fhir.outcome import FhirError
from biobank.fhir.resources import Settings, aliquot_specimen, sample_specimen

KNOWN_TYPES = frozenset({"Specimen", "Patient", "Consent", "Organization", "Group", "Measure"})


def specimen_criteria(
    session: Session, viewer: Viewer, args: MultiDict[str, str], settings: Settings
) -> specimens.Criteria:
    """A Specimen search's parameters as criteria; a bad value is a 400 naming it."""
    criteria = specimens.Criteria()
    subjects = search.values(args, "subject") or search.values(args, "patient")
    if subjects is not None:
        name = "subject" if "subject" in args else "patient"
        ids = [
            access.patient_by_fhir_id(session, viewer, search.reference_id(s, "Patient", name))
            for s in subjects
        ]
        # A patient the asker may not see matches nothing, as one that does not exist.
        criteria.patient_ids = [i for i in ids if i is not None]
    statuses = search.values(args, "status")
    if statuses is not None:
        unknown = [s for s in statuses if s not in tx.SPECIMEN_STATUSES]
        if unknown:
            raise FhirError(
                400,
                f"status: {unknown[0]!r} is not a Specimen status "
                f"({', '.join(sorted(tx.SPECIMEN_STATUSES))})",
                expression="status",
            )
        criteria.states = [state for s in statuses for state in tx.STATES_FOR_STATUS.get(s, ())]
        criteria.sample_statuses = [s for s in statuses if s in ("available", "unavailable")]
    parents = search.values(args, "parent")
    if parents is not None:
        parsed = [specimens.parse_id(search.reference_id(p, "Specimen", "parent")) for p in parents]
        criteria.parents = [p for p in parsed if p is not None]
    types = search.values(args, "type")
    if types is not None:
        criteria.aliquot_kinds, criteria.sample_materials = specimens.type_matches(
            session, [search.token(t) for t in types], settings.base
        )
    criteria.last_updated = search.date_intervals(args, "_lastUpdated")
    return criteria


def page_entries(
    session: Session, viewer: Viewer, page: specimens.Page, settings: Settings
) -> list[dict[str, Any]]:
    """A page's Specimens, samples first, with their details read once for the page."""
    details = specimens.details(session, viewer, page.aliquots)
    return [sample_specimen(row, viewer, settings) for row in page.samples] + [
        aliquot_specimen(row, details, viewer, settings) for row in page.aliquots
    ]
