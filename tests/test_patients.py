"""Patients: registration, the risk rule, MRD escalation, history, completeness."""

from __future__ import annotations

import datetime as dt

import pytest

from biobank import clock
from biobank.patients.models import Patient

TODAY = clock.today()


def patient_body(**overrides):  # type: ignore[no-untyped-def]
    """A valid registration body, with overrides."""
    body = {
        "study_id": "IF21-NL-101",
        "site": "NL-PMC",
        "sex": "F",
        "diagnosis": "B-ALL",
        "fusion_partner": "AFF1",
        "diagnosis_date": str(TODAY - dt.timedelta(days=100)),
        "age_at_diagnosis_days": 200,
        "wbc_at_diagnosis": "50",
    }
    body.update(overrides)
    return body


def count_patients(session) -> int:  # type: ignore[no-untyped-def]
    return session.query(Patient).count()


@pytest.mark.parametrize(
    ("age", "wbc", "blasts", "expected"),
    [
        (120, "350", None, "HR"),  # < 6 months, WBC ≥ 300
        (120, "50", 1500, "HR"),  # < 6 months, prednisone poor response
        (120, "50", 200, "MR"),  # < 6 months, neither
        (300, "900", 5000, "MR"),  # ≥ 6 months: always MR at stratification
        (182, "300", None, "HR"),  # 182 days is still under six months; 300 is the threshold
        (183, "300", None, "MR"),
    ],
)
def test_the_risk_group_follows_the_interfant_rule(tech, age, wbc, blasts, expected):
    """HR = age < 6 months and (WBC ≥ 300 or poor prednisone response); else MR."""
    body = patient_body(age_at_diagnosis_days=age, wbc_at_diagnosis=wbc, day8_blasts_per_ul=blasts)
    response = tech.post("/api/v1/patients", json=body)
    assert response.status_code == 201, response.json
    assert response.json["risk_group"] == expected
    assert response.json["risk_history"][0]["reason"].startswith("stratified at registration")


def test_day8_blasts_decide_the_prednisone_response(tech):
    """1000 blasts/µL or more on day 8 is a poor response."""
    response = tech.post("/api/v1/patients", json=patient_body(day8_blasts_per_ul=1000))
    assert response.json["prednisone_response"] == "poor"


def test_a_stated_response_contradicting_the_blast_count_is_refused(tech, session):
    """Saying 'good' with 5000 blasts/µL is a 422 on prednisone_response; nothing written."""
    before = count_patients(session)
    response = tech.post(
        "/api/v1/patients", json=patient_body(day8_blasts_per_ul=5000, prednisone_response="good")
    )
    assert response.status_code == 422
    assert "prednisone_response" in response.json["errors"]["json"]
    assert count_patients(session) == before


def test_an_infant_older_than_365_days_is_refused_citing_the_trial(tech, session):
    """Age 400 days: 422 on age_at_diagnosis_days, with the trial's limit in the message."""
    response = tech.post("/api/v1/patients", json=patient_body(age_at_diagnosis_days=400))
    assert response.status_code == 422
    message = response.json["errors"]["json"]["age_at_diagnosis_days"][0]
    assert "365 days" in message and "Interfant-21" in message
    assert count_patients(session) == 0


def test_a_diagnosis_date_in_the_future_is_refused(tech, session):
    """A diagnosis tomorrow is a 422 naming diagnosis_date."""
    response = tech.post(
        "/api/v1/patients", json=patient_body(diagnosis_date=str(TODAY + dt.timedelta(days=1)))
    )
    assert response.status_code == 422
    assert "diagnosis_date" in response.json["errors"]["json"]
    assert count_patients(session) == 0


def test_an_unknown_site_is_refused(tech):
    """An unknown site code is a 422 naming site."""
    response = tech.post("/api/v1/patients", json=patient_body(site="XX-NOPE"))
    assert response.status_code == 422
    assert "site" in response.json["errors"]["json"]


def test_a_duplicate_study_id_is_a_conflict(tech, make_patient, session):
    """Registering a study_id twice is a 409 naming study_id."""
    make_patient(study_id="IF21-NL-101")
    response = tech.post("/api/v1/patients", json=patient_body())
    assert response.status_code == 409
    assert "study_id" in response.json["errors"]["json"]
    assert count_patients(session) == 1


def test_names_and_birth_dates_are_unknown_fields(tech):
    """The API refuses direct identifiers: they are unknown fields (422)."""
    response = tech.post("/api/v1/patients", json=patient_body(name="Jan", birth_date="2026-01-01"))
    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == {"name", "birth_date"}


def test_malformed_json_is_a_400(tech):
    """A body that is not JSON is a 400 in the one error shape."""
    response = tech.post(
        "/api/v1/patients", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json["code"] == 400 and "errors" in response.json


def test_end_of_induction_mrd_of_one_percent_moves_mr_to_hr(tech, make_patient):
    """MRD ≥ 1% at EOI escalates an MR patient, and the history says why."""
    patient = make_patient(age_at_diagnosis_days=300)
    assert patient.risk_group == "MR"
    response = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={
            "timepoint": "EOI",
            "value_percent": 1.0,
            "method": "PCR",
            "measured_on": str(TODAY - dt.timedelta(days=60)),
        },
    )
    assert response.status_code == 201, response.json
    assert response.json["risk_group"] == "HR"
    last = response.json["risk_history"][-1]
    assert (last["previous"], last["risk_group"]) == ("MR", "HR")
    assert "end-of-induction MRD 1% ≥ 1%" in last["reason"] and last["actor"] == tech.username


@pytest.mark.parametrize(
    ("timepoint", "value", "expected"),
    [
        ("EOI", 0.99, "MR"),
        ("B1", 0.01, "MR"),
        ("B1", 0.011, "HR"),
        ("D15", 50, "MR"),
    ],
)
def test_only_the_protocol_mrd_thresholds_escalate(tech, make_patient, timepoint, value, expected):
    """EOI < 1% and B1 ≤ 0.01% keep MR; other timepoints do not stratify."""
    patient = make_patient(age_at_diagnosis_days=300)
    response = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={"timepoint": timepoint, "value_percent": value, "method": "FLOW"},
    )
    assert response.json["risk_group"] == expected


def test_mrd_at_an_unknown_timepoint_is_refused(tech, make_patient):
    """An unknown timepoint code is a 422 naming timepoint."""
    patient = make_patient()
    response = tech.post(
        f"/api/v1/patients/{patient.study_id}/mrd",
        json={"timepoint": "D99", "value_percent": 1, "method": "PCR"},
    )
    assert response.status_code == 422
    assert "timepoint" in response.json["errors"]["json"]


def test_correcting_wbc_restratifies_and_keeps_the_old_value(tech, make_patient):
    """A corrected WBC moves the patient to HR; the audit keeps the old value and reason."""
    patient = make_patient(age_at_diagnosis_days=100, wbc_at_diagnosis=50)
    response = tech.patch(
        f"/api/v1/patients/{patient.study_id}",
        json={"wbc_at_diagnosis": "450", "reason": "typo in the referral form"},
    )
    assert response.status_code == 200, response.json
    assert response.json["risk_group"] == "HR"
    assert [h["risk_group"] for h in response.json["risk_history"]] == ["MR", "HR"]


def test_a_patient_update_needs_a_reason(tech, make_patient):
    """PATCH without a reason is a 422 naming reason."""
    patient = make_patient()
    response = tech.patch(f"/api/v1/patients/{patient.study_id}", json={"sex": "M"})
    assert response.status_code == 422
    assert "reason" in response.json["errors"]["json"]


def test_a_manager_reassigns_a_risk_group_by_hand(manager, tech, make_patient):
    """Only managers reassign by hand; the history records who and why."""
    patient = make_patient(age_at_diagnosis_days=300)
    body = {"risk_group": "HR", "effective_date": str(TODAY), "reason": "CNS3 at relapse"}
    assert (
        tech.post(f"/api/v1/patients/{patient.study_id}/risk-group", json=body).status_code == 403
    )
    response = manager.post(f"/api/v1/patients/{patient.study_id}/risk-group", json=body)
    assert response.status_code == 201
    assert response.json["risk_history"][-1]["actor"] == manager.username


def test_the_patient_list_filters_and_paginates(tech, make_patient):
    """Filtering by risk group and paging report totals in X-Pagination."""
    for _ in range(3):
        make_patient(age_at_diagnosis_days=300)
    make_patient(age_at_diagnosis_days=100, wbc_at_diagnosis=400)
    response = tech.get("/api/v1/patients?risk_group=MR&page_size=2")
    assert response.status_code == 200
    assert len(response.json) == 2
    assert '"total": 3' in response.headers["X-Pagination"]
    assert tech.get("/api/v1/patients/IF21-NOPE").status_code == 404


def test_the_timeline_shows_received_missing_and_pending_material(tech, make_patient, make_sample):
    """DX BM received, DX PB missing (window passed), B1 pending, relapse not expected."""
    patient = make_patient(age_at_diagnosis_days=300, diagnosis_date=TODAY - dt.timedelta(days=40))
    sample = make_sample(patient)
    response = tech.get(f"/api/v1/patients/{patient.study_id}/timeline")
    assert response.status_code == 200
    rows = {row["timepoint"]: row for row in response.json["timepoints"]}
    dx = {m["material"]: m for m in rows["DX"]["materials"]}
    assert dx["BM"] == {"material": "BM", "state": "received", "samples": [sample.barcode]}
    assert dx["PB"]["state"] == "missing"
    assert {m["state"] for m in rows["B1"]["materials"]} == {"pending"}
    assert "B2" in rows and "PRE-HSCT" not in rows  # MR schedule
    assert rows["REL"]["window_end"] is None  # event-driven: never missing
    assert {m["state"] for m in rows["REL"]["materials"]} == {"not_applicable"}
