"""Re-consent at the age of majority: the patients whose consent, given by their parents,
must be renewed soon or is overdue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth import scope
from biobank.consent import rule
from biobank.consent.models import ConsentEntry
from biobank.patients.models import Patient
from biobank.reference.models import Site


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (the month's last day if it is shorter)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


@dataclass
class ReconsentDue:
    """A patient who comes of age: consent given by the parents must be renewed."""

    study_id: str
    site: str
    country: str
    majority_age: int
    majority_date: dt.date
    overdue: bool
    components: list[str]


def reconsent_due(
    session: Session, months: int, today: dt.date | None = None
) -> list[ReconsentDue]:
    """Patients coming of age within ``months`` (or already of age) without re-consent.

    When they come of age is the rule's (``rule.majority_day_of``: the birth date from the
    diagnosis date and age at diagnosis, the majority age of the site's country from
    reference data); what a re-consent is, too (``rule.renewed``).
    """
    today = today or clock.today()
    horizon = add_months(today, months)
    comes_of_age = rule.majority_day_of(Patient)
    candidates = session.execute(
        select(
            Patient.id,
            Patient.study_id,
            Site.code,
            Site.country,
            rule.majority_years(Patient.site_id),
            comes_of_age,
        )
        .join(Site, Patient.site_id == Site.id)
        .where(comes_of_age <= horizon, scope.patient_filter(scope.of(session), Patient.site_id))
        .order_by(Patient.study_id)
    ).all()
    if not candidates:
        return []
    entries: dict[int, list[ConsentEntry]] = {c[0]: [] for c in candidates}
    for entry in session.scalars(select(ConsentEntry).where(ConsentEntry.patient_id.in_(entries))):
        entries[entry.patient_id].append(entry)
    due = []
    for patient_id, study_id, site, country, majority, of_age in candidates:
        given = [e for e in rule.state_on(entries[patient_id]).values() if e.decision == "given"]
        pending = sorted(e.component_code for e in given if not rule.renewed(e, of_age))
        if pending:
            due.append(
                ReconsentDue(study_id, site, country, majority, of_age, of_age <= today, pending)
            )
    return sorted(due, key=lambda d: (d.majority_date, d.study_id))
