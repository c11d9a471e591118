"""Re-consent at the age of majority: per country (reference data), from the diagnosis age."""

from __future__ import annotations

import datetime as dt

from consent_helpers import days_ago, give, officer, open_trial_by, studies  # noqa: F401
from sqlalchemy import select

from biobank import clock
from biobank.consent.reconsent import add_months
from biobank.reference import service as reference
from biobank.reference.models import Site

TODAY = clock.today()


def _patient_coming_of_age(
    make_patient, session, *, site: str = "NL-PMC", years: int = 16, in_months: int = 3
):  # type: ignore[no-untyped-def]
    """A patient whose ``years``-th birthday is ``in_months`` from today."""
    if session.scalar(select(Site.id).where(Site.code == site)) is None:
        reference.create(session, "t", "sites", {"code": site, "name": site, "country": site[:2]})
    birth = add_months(TODAY, in_months - 12 * years)
    diagnosed = birth + dt.timedelta(days=120)
    open_trial_by(session, diagnosed)
    return make_patient(site=site, age_at_diagnosis_days=120, diagnosis_date=diagnosed)


def _due(client, months: int = 6) -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = client.get(f"/api/v1/consent/reconsent-due?months={months}")
    assert response.status_code == 200, response.json
    return {row["study_id"]: row for row in response.json}


def test_the_age_of_majority_is_reference_data_with_16_in_the_netherlands(tech):
    """The defaults: 18 for every country without its own row, 16 in the Netherlands."""
    ages = {row["code"]: row["age"] for row in tech.get("/api/v1/majority-ages").json}
    assert ages == {"DEFAULT": 18, "NL": 16}


def test_a_dutch_patient_turning_16_soon_is_due_a_german_one_is_not(
    officer, make_patient, give, session
):
    """Same birthday: NL comes of age at 16 (due), DE at 18 (not yet)."""
    dutch = _patient_coming_of_age(make_patient, session)
    german = _patient_coming_of_age(make_patient, session, site="DE-KIEL")
    for patient in (dutch, german):
        give(patient, "storage", days_ago(30))
        give(patient, "DEMO", days_ago(30))
    due = _due(officer)
    assert set(due) == {dutch.study_id}
    row = due[dutch.study_id]
    assert (row["country"], row["majority_age"], row["overdue"]) == ("NL", 16, False)
    assert row["majority_date"] == str(add_months(TODAY, 3))
    assert row["components"] == ["DEMO", "storage"]


def test_the_window_is_chosen_in_months(officer, make_patient, give, session):
    """Coming of age in 3 months: listed for 6 months ahead, not for 2."""
    patient = _patient_coming_of_age(make_patient, session)
    give(patient, "storage", days_ago(30))
    assert patient.study_id in _due(officer, 6)
    assert patient.study_id not in _due(officer, 2)


def test_a_patient_already_of_age_without_re_consent_is_overdue(
    officer, make_patient, give, session
):
    """The 16th birthday passed a month ago: listed as overdue."""
    patient = _patient_coming_of_age(make_patient, session, in_months=-1)
    give(patient, "storage", days_ago(90))  # the parents, before the birthday
    assert _due(officer, 0)[patient.study_id]["overdue"] is True


def test_the_participants_own_consent_settles_it_per_component(
    officer, make_patient, give, session
):
    """Re-consent for storage signed by the participant: only DEMO is still due."""
    patient = _patient_coming_of_age(make_patient, session, in_months=-2)
    give(patient, "storage", days_ago(90))
    give(patient, "DEMO", days_ago(90))
    give(patient, "storage", days_ago(10), signed_by="participant")
    assert _due(officer)[patient.study_id]["components"] == ["DEMO"]
    give(patient, "DEMO", days_ago(10), signed_by="participant")
    assert patient.study_id not in _due(officer)


def test_nothing_given_nothing_to_renew(officer, make_patient, give, session):
    """A patient who declined everything is not on the list."""
    patient = _patient_coming_of_age(make_patient, session)
    give(patient, "storage", days_ago(30), decision="declined")
    assert patient.study_id not in _due(officer)


def test_a_manager_sets_a_countrys_age_and_the_list_follows(
    officer, manager, make_patient, give, session
):
    """Adding DE at 16 through the API puts the German patient on the list."""
    german = _patient_coming_of_age(make_patient, session, site="DE-KIEL")
    give(german, "storage", days_ago(30))
    assert german.study_id not in _due(officer)
    assert (
        manager.post(
            "/api/v1/majority-ages", json={"code": "DE", "age": 16, "note": "for the test"}
        ).status_code
        == 201
    )
    assert _due(officer)[german.study_id]["majority_age"] == 16
    assert manager.post("/api/v1/majority-ages", json={"code": "DEU", "age": 16}).status_code == 422


def test_a_bad_window_is_a_422(officer):
    """Negative months are refused."""
    assert officer.get("/api/v1/consent/reconsent-due?months=-1").status_code == 422
