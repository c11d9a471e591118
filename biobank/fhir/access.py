"""Who sees what through /fhir: the asker's scopes, applied to every base query, and the
name a patient goes by for that asker.

Three rules, each in one place here:

- ``patient_filter``: the patients an asker may see at all. Site-scoped users see their
  sites' patients and tubes (``biobank.auth.scope``, the rule of the whole service);
  researchers see only patients whose tubes their sub-studies received.
- ``released_filter``: the tubes a researcher may see: those released to one of their
  sub-studies (``consent.ReleaseJustification``, written when a request ships).
- ``patient_label`` / ``patient_by_fhir_id``: what a patient is called (and found by) in
  resources: for staff the study pseudonym (study_id); for a researcher the keyed pseudonym
  of their sub-study (``biobank.consent.pseudonym``), as in their requests and manifests.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field, replace
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, false, select, true
from sqlalchemy.orm import Session

from biobank.auth import scope as sites
from biobank.auth.models import UserSite, UserSubstudy
from biobank.consent import pseudonym
from biobank.consent.models import ReleaseJustification, Substudy
from biobank.patients.models import Patient
from biobank.reference.models import Site
from biobank.samples.models import Aliquot, Sample


@dataclass(frozen=True)
class Viewer:
    """The asker as /fhir filters for them."""

    username: str
    role: str
    # Sites the user is limited to (empty: every site).
    site_ids: tuple[int, ...] = ()
    # A researcher's sub-studies (ids and codes).
    substudy_ids: tuple[int, ...] = ()
    substudy_codes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # The same sites by code: the service's site scope (biobank.auth.scope).
    site_codes: tuple[str, ...] = ()

    @property
    def within(self) -> sites.Scope:
        """The sites the viewer is limited to, as every query of the service applies them."""
        return sites.for_sites(self.site_codes)

    @property
    def researcher(self) -> bool:
        """Researchers see only what their sub-studies received, pseudonymised."""
        return self.role == "researcher"

    @property
    def staff(self) -> bool:
        """Biobank staff see locations and notes; researchers do not."""
        return not self.researcher


SYSTEM = Viewer("system", "admin")  # the bulk export: everything


def viewer_for(session: Session, user_id: int, username: str, role: str) -> Viewer:
    """The asker's scopes, read in one statement per kind (sites, sub-studies)."""
    rows = session.execute(
        select(Site.id, Site.code)
        .join(UserSite, UserSite.site_code == Site.code)
        .where(UserSite.user_id == user_id)
        .order_by(Site.id)
    ).all()
    site_ids, codes = tuple(r.id for r in rows), tuple(r.code for r in rows)
    if role != "researcher":
        return Viewer(username, role, site_ids, site_codes=codes)
    rows = session.execute(
        select(Substudy.id, Substudy.code)
        .join(UserSubstudy, UserSubstudy.substudy_code == Substudy.code)
        .where(UserSubstudy.user_id == user_id)
        .order_by(Substudy.id)
    ).all()
    return Viewer(
        username,
        role,
        site_ids,
        tuple(r.id for r in rows),
        tuple(r.code for r in rows),
        site_codes=codes,
    )


def released_filter(viewer: Viewer, aliquot_id: SQLColumnExpression[int]) -> ColumnElement[bool]:
    """The tubes the viewer may see: all for staff; for a researcher, those released to one
    of their sub-studies."""
    if viewer.staff:
        return true()
    if not viewer.substudy_ids:
        return false()
    released = select(ReleaseJustification.aliquot_id).where(
        ReleaseJustification.substudy_id.in_(viewer.substudy_ids)
    )
    return aliquot_id.in_(released)


def patient_filter(
    viewer: Viewer, patient_id: SQLColumnExpression[int | None]
) -> ColumnElement[bool]:
    """The patients the viewer may see (site scope; for researchers, only patients whose
    tubes their sub-studies received)."""
    condition = sites.patient_id_filter(viewer.within, patient_id)
    if viewer.researcher:
        received = (
            select(Sample.patient_id)
            .join(Aliquot, Aliquot.sample_id == Sample.id)
            .where(released_filter(viewer, Aliquot.id))
        )
        condition = condition & patient_id.in_(received)
    return condition


Row = TypeVarTuple("Row")


def scope(
    query: Select[*Row],
    viewer: Viewer,
    patient_id: SQLColumnExpression[int | None],
    aliquot_id: SQLColumnExpression[int] | None = None,
) -> Select[*Row]:
    """A base query narrowed to what the viewer may see: with ``aliquot_id`` (tubes) the
    tubes of the viewer's sites, else (patients, samples, consents) their sites' patients."""
    if aliquot_id is not None:
        query = query.where(sites.aliquot_filter(viewer.within, aliquot_id))
        if viewer.researcher:
            query = query.where(
                patient_filter(replace(viewer, site_codes=()), patient_id),
                released_filter(viewer, aliquot_id),
            )
        return query
    if viewer.site_codes or viewer.researcher:
        query = query.where(patient_filter(viewer, patient_id))
    return query


# --- names ----------------------------------------------------------------------------------

# Study ids are letters, digits, '-' and '_' (patients.schemas.STUDY_ID); a FHIR id allows
# letters, digits, '-' and '.', so '_' travels as '.' (which a study id never has).
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def pseudonym_substudy(viewer: Viewer) -> str:
    """The sub-study whose pseudonyms a researcher sees: their first (most researchers have
    one; one researcher in two sub-studies could link them by tube anyway)."""
    return viewer.substudy_codes[0] if viewer.substudy_codes else ""


def patient_label(viewer: Viewer, study_id: str) -> str:
    """The name of a patient for this viewer: the study_id for staff, the sub-study's keyed
    pseudonym for a researcher (every resource names patients through this function)."""
    if viewer.researcher:
        return pseudonym.pseudonym(pseudonym_substudy(viewer), study_id)
    return study_id


def patient_fhir_id(viewer: Viewer, study_id: str) -> str:
    """The patient's resource id for this viewer."""
    return patient_label(viewer, study_id).replace("_", ".")


def patient_by_fhir_id(session: Session, viewer: Viewer, fhir_id: str) -> int | None:
    """The patient a resource id names for this viewer (None: none, or not visible)."""
    if not _FHIR_ID.match(fhir_id):
        return None
    if viewer.researcher:
        # A keyed hash cannot be reversed: hash the few patients the researcher may see.
        if not fhir_id.startswith(pseudonym.PREFIX):
            return None
        visible = session.execute(
            scope(select(Patient.id, Patient.study_id), viewer, Patient.id)
        ).all()
        return next(
            (
                i
                for i, study_id in visible
                if hmac.compare_digest(patient_label(viewer, study_id), fhir_id)
            ),
            None,
        )
    study_id = fhir_id.replace(".", "_")
    query = select(Patient.id).where(Patient.study_id == study_id)
    return session.scalar(scope(query, viewer, Patient.id))


def identifier_system(viewer: Viewer, base: str) -> str:
    """The identifier system of the names ``patient_label`` gives."""
    if viewer.researcher:
        return f"{base}/sid/pseudonym/{pseudonym_substudy(viewer)}"
    return f"{base}/sid/study-id"
