"""The trial's clinical edge cases: provisional risk groups, history dated by the clinical
event, one-way escalation, MRD timepoints per risk group, the trial's opening date."""

from __future__ import annotations

import datetime as dt

import pytest
from web_helpers import login  # noqa: F401

from biobank import clock

TODAY = clock.today()  # the biobank's day (BIOBANK_TIMEZONE), not the server's


def young_infant(**overrides):  # type: ignore[no-untyped-def]
    """An infant under 6 months whose WBC and prednisone response nobody knows yet."""
    body = {
        "study_id": "IF21-NL-201",
        "site": "NL-PMC",
        "sex": "F",
        "diagnosis": "B-ALL",
        "fusion_partner": "AFF1",
        "diagnosis_date": str(TODAY - dt.timedelta(days=90)),
        "age_at_diagnosis_days": 120,
        "wbc_at_diagnosis": None,
    }
    body.update(overrides)
    return body


def test_unknown_deciding_facts_give_a_provisional_group_that_claims_nothing(tech):
    """WBC and prednisone response unknown: MR, provisional, and the reason names the
    unknown facts instead of claiming 'WBC < 300' or 'no poor response'."""
    response = tech.post("/api/v1/patients", json=young_infant())
    assert response.status_code == 201, response.json
    body = response.json
    assert body["risk_group"] == "MR" and body["risk_provisional"] is True
    assert body["risk_pending"] == ["wbc_at_diagnosis", "prednisone_response"]
    reason = body["risk_history"][0]["reason"]
    assert "WBC < 300" not in reason and "no prednisone poor response" not in reason
    assert "unknown" in reason
    assert body["risk_history"][0]["provisional"] is True


@pytest.mark.parametrize(
    ("wbc", "response", "provisional"),
    [
        ("350", "unknown", False),  # HR is decided by the WBC alone
        (None, "poor", False),  # HR is decided by the poor response alone
        ("50", "good", False),  # both known: MR for certain
        ("50", "unknown", True),  # a poor response on day 8 would still make it HR
        (None, "good", True),  # a WBC ≥ 300 would still make it HR
    ],
)
def test_a_group_is_provisional_only_while_a_fact_could_change_it(tech, wbc, response, provisional):
    """Provisional exactly when an unknown fact could still decide HR."""
    answer = tech.post(
        "/api/v1/patients", json=young_infant(wbc_at_diagnosis=wbc, prednisone_response=response)
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["risk_provisional"] is provisional


def test_older_infants_are_definite_mr_whatever_is_unknown(tech):
    """Six months or older: MR by age, not provisional."""
    answer = tech.post("/api/v1/patients", json=young_infant(age_at_diagnosis_days=250))
    assert (answer.json["risk_group"], answer.json["risk_provisional"]) == ("MR", False)


def test_the_day8_result_makes_the_group_definite_dated_by_the_day8_date(tech, manager):
    """Good response on day 8 with WBC known: MR becomes definite; the history entry carries
    the day-8 date as its date and the entry time beside it."""
    patient = tech.post("/api/v1/patients", json=young_infant(wbc_at_diagnosis="40")).json
    assert patient["risk_provisional"] is True
    day8 = dt.date.fromisoformat(patient["diagnosis_date"]) + dt.timedelta(days=8)
    answer = tech.patch(
        f"/api/v1/patients/{patient['study_id']}",
        json={"day8_blasts_per_ul": 200, "day8_date": str(day8), "reason": "day-8 blood count"},
    )
    assert answer.status_code == 200, answer.json
    assert (answer.json["risk_group"], answer.json["risk_provisional"]) == ("MR", False)
    last = answer.json["risk_history"][-1]
    assert last["effective_date"] == str(day8)
    assert last["previous"] == "MR" and last["provisional"] is False
    assert clock.day_of(dt.datetime.fromisoformat(last["recorded_at"])) == clock.today()
    assert "prednisone good response" in last["reason"]


def test_a_poor_day8_response_moves_to_hr_on_the_day8_date(tech):
    """1500 blasts/µL on day 8: HR from the day-8 date, not from the day it was typed in."""
    patient = tech.post("/api/v1/patients", json=young_infant(wbc_at_diagnosis="40")).json
    day8 = dt.date.fromisoformat(patient["diagnosis_date"]) + dt.timedelta(days=8)
    answer = tech.patch(
        f"/api/v1/patients/{patient['study_id']}",
        json={"day8_blasts_per_ul": 1500, "day8_date": str(day8), "reason": "day-8 blood count"},
    )
    last = answer.json["risk_history"][-1]
    assert (last["previous"], last["risk_group"], last["effective_date"]) == ("MR", "HR", str(day8))


def test_without_a_day8_date_the_schedules_day8_is_used(tech):
    """No day8_date given: the D8 timepoint's nominal day after diagnosis dates the change."""
    patient = tech.post("/api/v1/patients", json=young_infant(wbc_at_diagnosis="40")).json
    answer = tech.patch(
        f"/api/v1/patients/{patient['study_id']}",
        json={"day8_blasts_per_ul": 1500, "reason": "day-8 blood count"},
    )
    nominal = dt.date.fromisoformat(patient["diagnosis_date"]) + dt.timedelta(days=8)
    assert answer.json["risk_history"][-1]["effective_date"] == str(nominal)
    assert answer.json["day8_date"] is None


def test_a_day8_date_outside_diagnosis_and_today_is_refused(tech):
    """A day-8 date before the diagnosis is a 422 naming day8_date."""
    patient = tech.post("/api/v1/patients", json=young_infant()).json
    before = dt.date.fromisoformat(patient["diagnosis_date"]) - dt.timedelta(days=1)
    answer = tech.patch(
        f"/api/v1/patients/{patient['study_id']}",
        json={"day8_blasts_per_ul": 1500, "day8_date": str(before), "reason": "x"},
    )
    assert answer.status_code == 422 and "day8_date" in answer.json["errors"]["json"]


def test_an_mrd_escalation_is_dated_by_measured_on(tech, make_patient):
    """EOI MRD 2% measured 50 days ago: HR from that day; entered today."""
    patient = make_patient(age_at_diagnosis_days=300)
    measured = TODAY - dt.timedelta(days=50)
    answer = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={
            "timepoint": "EOI",
            "value_percent": 2,
            "method": "PCR",
            "measured_on": str(measured),
        },
    )
    assert answer.json["risk_history"][-1]["effective_date"] == str(measured)


def test_an_mrd_without_a_date_is_dated_by_the_timepoints_nominal_day(tech, make_patient):
    """EOI MRD without measured_on: HR from diagnosis + the EOI's nominal day (33)."""
    patient = make_patient(age_at_diagnosis_days=300)
    answer = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={"timepoint": "EOI", "value_percent": 2, "method": "PCR"},
    )
    nominal = patient.diagnosis_date + dt.timedelta(days=33)
    assert answer.json["risk_history"][-1]["effective_date"] == str(nominal)


def test_de_escalation_after_mrd_needs_a_managers_override_and_shows_the_warning(
    tech, manager, make_patient
):
    """EOI MRD 5% makes HR; a manager's HR→MR is a 409 that warns escalation is one-way;
    with override and a reason it is recorded, warning and override kept in the history."""
    patient = make_patient(age_at_diagnosis_days=300)
    tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={
            "timepoint": "EOI",
            "value_percent": 5,
            "method": "PCR",
            "measured_on": str(TODAY - dt.timedelta(days=10)),
        },
    )
    body = {"risk_group": "MR", "effective_date": str(TODAY), "reason": "clinician's call"}
    answer = manager.post(f"/api/v1/patients/{patient.study_id}/risk-group", json=body)
    assert answer.status_code == 409, answer.json
    assert "one-way" in answer.json["message"] and "MRD 5%" in answer.json["message"]
    answer = manager.post(
        f"/api/v1/patients/{patient.study_id}/risk-group", json={**body, "override": True}
    )
    assert answer.status_code == 201, answer.json
    last = answer.json["risk_history"][-1]
    assert (last["previous"], last["risk_group"], last["override"]) == ("HR", "MR", True)
    assert "one-way" in last["warning"] and last["reason"] == "clinician's call"


def test_a_technician_cannot_override(tech, make_patient):
    """Overrides are a manager's: a technician gets 403."""
    patient = make_patient(age_at_diagnosis_days=100, wbc_at_diagnosis=400)
    answer = tech.post(
        f"/api/v1/patients/{patient.study_id}/risk-group",
        json={"risk_group": "MR", "effective_date": str(TODAY), "reason": "x", "override": True},
    )
    assert answer.status_code == 403


def test_the_rule_never_de_escalates_by_itself(tech, make_patient):
    """HR by WBC 400, then WBC corrected to 40: still HR, with a warning that a manager may
    override; nothing in the history changes."""
    patient = make_patient(
        age_at_diagnosis_days=100, wbc_at_diagnosis=400, prednisone_response="good"
    )
    answer = tech.patch(
        f"/api/v1/patients/{patient.study_id}", json={"wbc_at_diagnosis": "40", "reason": "typo"}
    )
    assert answer.status_code == 200
    assert answer.json["risk_group"] == "HR"
    assert len(answer.json["risk_history"]) == 1
    assert "one-way" in answer.json["risk_warning"] and "MR" in answer.json["risk_warning"]


@pytest.mark.parametrize(
    ("age", "wbc", "timepoint"),
    [
        (100, 400, "B2"),  # B2 is an MR-only timepoint; this patient is HR
        (300, 50, "PRE-HSCT"),  # PRE-HSCT is HR-only; this patient is MR
    ],
)
def test_mrd_at_a_timepoint_not_for_the_patients_group_is_refused(
    tech, make_patient, session, age, wbc, timepoint
):
    """A 422 naming timepoint; nothing recorded."""
    patient = make_patient(age_at_diagnosis_days=age, wbc_at_diagnosis=wbc)
    answer = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={"timepoint": timepoint, "value_percent": "0.5", "method": "PCR"},
    )
    assert answer.status_code == 422, answer.json
    assert "timepoint" in answer.json["errors"]["json"]
    session.refresh(patient)
    assert patient.mrd_results == []


def test_mrd_follows_the_group_in_force_on_the_measurement_day(tech, make_patient):
    """An MR patient later moved to HR may still get the B2 result measured while MR."""
    patient = make_patient(age_at_diagnosis_days=300)
    escalated = TODAY - dt.timedelta(days=5)
    tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={
            "timepoint": "EOI",
            "value_percent": 3,
            "method": "PCR",
            "measured_on": str(escalated),
        },
    )
    early = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={
            "timepoint": "B2",
            "value_percent": "0.001",
            "method": "PCR",
            "measured_on": str(escalated - dt.timedelta(days=1)),
        },
    )
    assert early.status_code == 201, early.json
    late = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={
            "timepoint": "B2",
            "value_percent": "0.001",
            "method": "FLOW",
            "measured_on": str(escalated),
        },
    )
    assert late.status_code == 422


def test_a_diagnosis_before_the_trial_opened_is_refused(tech, session):
    """The trial opened on 2022-12-15 (reference data): a day earlier is a 422 naming
    diagnosis_date; the opening day itself is accepted."""
    early = tech.post("/api/v1/patients", json=young_infant(diagnosis_date="2022-12-14"))
    assert early.status_code == 422
    assert "2022-12-15" in early.json["errors"]["json"]["diagnosis_date"][0]
    assert (
        tech.post("/api/v1/patients", json=young_infant(diagnosis_date="2022-12-15")).status_code
        == 201
    )


def test_the_trials_opening_date_is_reference_data(tech, manager):
    """GET /trials shows Interfant-21 and its opening date; managers may edit it."""
    trials = tech.get("/api/v1/trials").json
    assert [(t["code"], t["opened_on"]) for t in trials] == [("INTERFANT-21", "2022-12-15")]


def test_the_patient_pages_show_a_provisional_group_and_the_warning(tech, login, make_patient):
    """The list and the patient page say 'provisional' and what is awaited; a blocked
    de-escalation shows its warning; the history shows when each entry was entered."""
    waiting = make_patient(
        age_at_diagnosis_days=100, wbc_at_diagnosis=None, prednisone_response="unknown"
    )
    browser = login("technician")
    page = browser.get(f"/patients/{waiting.study_id}").get_data(as_text=True)
    assert "MR, provisional" in page
    assert "waiting for WBC at diagnosis and day-8 prednisone response" in page
    assert "Entered" in page
    assert "MR, provisional" in browser.get("/patients").get_data(as_text=True)
    blocked = make_patient(age_at_diagnosis_days=100, wbc_at_diagnosis=400)
    tech.patch(
        f"/api/v1/patients/{blocked.study_id}", json={"wbc_at_diagnosis": "40", "reason": "typo"}
    )
    page = browser.get(f"/patients/{blocked.study_id}").get_data(as_text=True)
    assert "one-way" in page


def test_a_manager_edits_the_trials_opening_date_and_the_bound_follows(tech, manager):
    """PATCH /trials/INTERFANT-21 moves the bound (audited reference data); control
    characters in its text are refused."""
    answer = manager.patch("/api/v1/trials/INTERFANT-21", json={"opened_on": "2023-01-10"})
    assert answer.status_code == 200, answer.json
    refused = tech.post("/api/v1/patients", json=young_infant(diagnosis_date="2023-01-09"))
    assert refused.status_code == 422 and "2023-01-10" in refused.json["message"]
    bad = manager.patch("/api/v1/trials/INTERFANT-21", json={"name": "Inter\x00fant"})
    assert bad.status_code == 422 and "name" in bad.json["errors"]["json"]
