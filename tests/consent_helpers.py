"""Fixtures shared by the consent tests (imported by name into each tests/test_consent*.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import service
from biobank.reference.models import Trial
from biobank.samples import service as samples

ACTOR = "consent-fixture"
NUMBERING = samples.Numbering()
TODAY = clock.today()
FORM = "ICF-IF21-NL-3"


def open_trial_by(session: Session, day: dt.date) -> None:
    """Move the trial's opening date (reference data) back to ``day`` at the latest: tests of
    patients coming of age need infants diagnosed long before Interfant-21 opened (2022)."""
    for trial in session.scalars(select(Trial)):
        trial.opened_on = min(trial.opened_on, day)


def days_ago(n: int) -> dt.date:
    """A date ``n`` days before today."""
    return TODAY - dt.timedelta(days=n)


@pytest.fixture
def studies(session: Session) -> SimpleNamespace:
    """Sub-studies DEMO and MRD-NGS (open) and OLD (closed), and one form covering all."""
    made = SimpleNamespace()
    for code, is_open in (("DEMO", True), ("MRD-NGS", True), ("OLD", False)):
        setattr(
            made,
            code.replace("-", "_").lower(),
            service.create_substudy(
                session,
                ACTOR,
                {
                    "code": code,
                    "title": f"{code} sub-study",
                    "principal_investigator": "Dr. P. Investigator",
                    "open": is_open,
                },
            ),
        )
    made.form = service.create_form(
        session,
        ACTOR,
        {
            "code": FORM,
            "title": "Interfant-21 biobank consent",
            "version": "3.0",
            "language": "nl",
            "covers": ["storage", "data", "DEMO", "MRD-NGS", "OLD"],
        },
    )
    session.commit()
    return made


@pytest.fixture
def give(session: Session, studies: SimpleNamespace) -> Callable[..., Any]:
    """``give(patient, "storage", days_ago(30))``: record a consent entry via the service."""

    def record(
        patient: Any,
        component: str,
        on: dt.date | None = None,
        *,
        decision: str = "given",
        signed_by: str = "mother",
        **extra: Any,
    ) -> Any:
        entry = service.record_consent(
            session,
            ACTOR,
            patient,
            {
                "component": component,
                "decision": decision,
                "signed_on": on or days_ago(100),
                "form_version": FORM,
                "signed_by": signed_by,
                **extra,
            },
        )
        session.commit()
        return entry

    return record


@pytest.fixture
def consented(
    make_patient: Callable[..., Any],
    make_sample: Callable[..., Any],
    make_aliquots: Callable[..., Any],
    give: Callable[..., Any],
) -> Callable[..., Any]:
    """``consented(n, "DEMO")``: a patient with ``n`` tubes, storage and those sub-studies given."""

    def make(n: int = 3, *substudies: str, on: dt.date | None = None) -> SimpleNamespace:
        patient = make_patient()
        tubes = make_aliquots(n, parent=make_sample(patient), volume="0.1")
        give(patient, "storage", on)
        for code in substudies:
            give(patient, code, on)
        return SimpleNamespace(patient=patient, tubes=tubes, study_id=patient.study_id)

    return make


@pytest.fixture
def officer(as_role: Callable[..., Any]) -> Any:
    """A consent officer."""
    return as_role("consent_officer")
