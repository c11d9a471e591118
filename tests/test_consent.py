"""Consent records: sub-studies, form versions, the append-only log and who may see what."""

from __future__ import annotations

import datetime as dt

import pytest
from consent_helpers import FORM, days_ago, give, officer, studies  # noqa: F401
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from biobank import clock
from biobank.consent.models import ConsentEntry
from biobank.custody.service import audit_trail


def _body(component: str = "storage", **overrides):  # type: ignore[no-untyped-def]
    return {
        "component": component,
        "decision": "given",
        "signed_on": str(days_ago(10)),
        "form_version": FORM,
        "signed_by": "father",
        **overrides,
    }


# --- sub-studies and forms --------------------------------------------------------------


def test_substudies_are_listed_with_their_code_for_every_role(as_role, studies):
    """GET /substudies answers code, title, investigator and open/closed, researchers too."""
    response = as_role("researcher").get("/api/v1/substudies")
    assert response.status_code == 200
    by_code = {s["code"]: s for s in response.json}
    assert {"DEMO", "MRD-NGS", "OLD"} <= set(by_code)
    assert by_code["OLD"]["open"] is False
    assert by_code["DEMO"]["principal_investigator"] == "Dr. P. Investigator"


def test_managers_add_and_close_substudies_with_an_audit_trail(manager, session):
    """A manager creates a sub-study, then closes it giving a reason; both are audited."""
    created = manager.post(
        "/api/v1/substudies",
        json={
            "code": "EPI",
            "title": "Epigenetics of KMT2A-r ALL",
            "principal_investigator": "Dr. X",
        },
    )
    assert created.status_code == 201 and created.json["open"] is True
    closed = manager.patch("/api/v1/substudies/EPI", json={"open": False, "reason": "ended"})
    assert closed.json["open"] is False
    assert [r.action for r in audit_trail(session, "substudy", "EPI")] == ["created", "updated"]
    assert (
        manager.post(
            "/api/v1/substudies",
            json={"code": "EPI", "title": "again", "principal_investigator": "Dr. X"},
        ).status_code
        == 409
    )


def test_the_components_list_the_general_parts_then_the_substudies(tech, studies):
    """Storage and data collection come first, then each sub-study."""
    codes = [c["code"] for c in tech.get("/api/v1/consent/components").json]
    assert codes[:2] == ["storage", "data"] and "MRD-NGS" in codes


def test_a_form_version_covers_only_known_components(officer, studies):
    """A form naming an unknown sub-study is a 422; a good one is listed with its language."""
    bad = officer.post(
        "/api/v1/consent/forms",
        json={
            "code": "ICF-2",
            "title": "t",
            "version": "2",
            "language": "en",
            "covers": ["storage", "NOPE"],
        },
    )
    assert bad.status_code == 422 and "NOPE" in bad.json["message"]
    good = officer.post(
        "/api/v1/consent/forms",
        json={
            "code": "ICF-2",
            "title": "t",
            "version": "2",
            "language": "en",
            "covers": ["storage"],
        },
    )
    assert good.status_code == 201
    assert {f["code"]: f["language"] for f in officer.get("/api/v1/consent/forms").json} == {
        FORM: "nl",
        "ICF-2": "en",
    }


# --- recording consent ------------------------------------------------------------------


def test_an_officer_records_consent_per_component(officer, make_patient, studies):
    """Storage given, DEMO given, MRD-NGS declined: the current state shows each."""
    patient = make_patient()
    url = f"/api/v1/patients/{patient.study_id}/consent"
    assert officer.post(url, json=_body()).status_code == 201
    assert officer.post(url, json=_body("DEMO")).status_code == 201
    assert officer.post(url, json=_body("MRD-NGS", decision="declined")).status_code == 201
    current = {e["component"]: e["decision"] for e in officer.get(url).json["current"]}
    assert current == {"storage": "given", "DEMO": "given", "MRD-NGS": "declined"}


def test_the_entry_records_form_signatory_and_recorder(officer, make_patient, studies):
    """The entry keeps the form version and its language, who signed and who recorded it."""
    patient = make_patient()
    entry = officer.post(
        f"/api/v1/patients/{patient.study_id}/consent", json=_body(signed_by="legal_guardian")
    ).json
    assert (entry["form_version"], entry["language"]) == (FORM, "nl")
    assert entry["signed_by"] == "legal_guardian"
    assert entry["recorded_by"] == officer.username


def test_a_correction_is_a_new_entry_with_a_reason_and_the_old_one_stays(
    officer, make_patient, studies
):
    """Correcting a date adds an entry naming the one it replaces; history keeps both."""
    patient = make_patient()
    url = f"/api/v1/patients/{patient.study_id}/consent"
    first = officer.post(url, json=_body(signed_on=str(days_ago(12)))).json
    no_reason = officer.post(url, json=_body(signed_on=str(days_ago(11)), corrects=first["id"]))
    assert no_reason.status_code == 422 and "reason" in no_reason.json["errors"]["json"]
    fixed = officer.post(
        url,
        json=_body(
            signed_on=str(days_ago(11)),
            corrects=first["id"],
            reason="date misread from the paper form",
        ),
    )
    assert fixed.status_code == 201 and fixed.json["corrects"] == first["id"]
    view = officer.get(url).json
    assert [e["effective_date"] for e in view["current"]] == [str(days_ago(11))]
    assert [e["replaced_by"] for e in view["history"]] == [fixed.json["id"], None]


def test_the_log_cannot_be_rewritten_in_the_database(give, make_patient, session):
    """UPDATE and DELETE on consent_entry are refused by the database itself."""
    entry = give(make_patient(), "storage")
    for statement in (
        f"UPDATE consent_entry SET decision = 'declined' WHERE id = {entry.id}",
        f"DELETE FROM consent_entry WHERE id = {entry.id}",
    ):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(statement))


def test_consent_changes_are_in_the_patients_audit_trail(give, make_patient, session):
    """Recording and correcting consent leave audit records on the patient, without signatory."""
    patient = make_patient()
    entry = give(patient, "storage", days_ago(5))
    give(patient, "storage", days_ago(4), corrects=entry.id, reason="wrong date")
    records = [
        r
        for r in audit_trail(session, "patient", patient.study_id)
        if r.action.startswith("consent")
    ]
    assert [r.action for r in records] == ["consent_recorded", "consent_corrected"]
    assert records[1].old_values["entry"] == entry.id
    assert "signed_by" not in records[1].new_values


# --- who sees the signatory -------------------------------------------------------------


def test_technicians_see_the_consent_state_but_not_who_signed(tech, officer, give, make_patient):
    """The officer's view names the signatory; the technician's has no such field at all."""
    patient = make_patient()
    give(patient, "storage", signed_by="other", signatory_note="foster parent")
    url = f"/api/v1/patients/{patient.study_id}/consent"
    [as_officer] = officer.get(url).json["current"]
    [as_tech] = tech.get(url).json["current"]
    assert (as_officer["signed_by"], as_officer["signatory_note"]) == ("other", "foster parent")
    assert as_tech["decision"] == "given"
    assert not {"signed_by", "signatory_note"} & set(as_tech)
    assert "foster" not in tech.get(url).get_data(as_text=True)


def test_researchers_cannot_read_a_patients_consent(as_role, give, make_patient):
    """Researchers are refused the consent log (403): they only ask the gate."""
    patient = make_patient()
    give(patient, "storage")
    assert (
        as_role("researcher").get(f"/api/v1/patients/{patient.study_id}/consent").status_code == 403
    )


def test_only_officers_and_admins_record_consent(tech, manager, make_patient, studies):
    """Technicians and managers get 403 on recording consent."""
    patient = make_patient()
    for user in (tech, manager):
        assert (
            user.post(f"/api/v1/patients/{patient.study_id}/consent", json=_body()).status_code
            == 403
        )


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "status"),
    [
        ({"component": "NOPE"}, "component", 422),
        ({"form_version": "ICF-NONE"}, "form_version", 422),
        ({"signed_on": "2026-02-30"}, "signed_on", 422),
        ({"signed_on": str(clock.today() + dt.timedelta(days=1))}, "signed_on", 422),
        ({"signed_by": "neighbour"}, "signed_by", 422),
        ({"signed_by": "other"}, "signatory_note", 422),
        ({"decision": "withdrawn"}, "decision", 422),
    ],
)
def test_bad_consent_input_is_a_4xx_naming_the_field_and_writes_nothing(
    officer, make_patient, studies, session, overrides, field, status
):
    """Unknown sub-study or form version, impossible or future date, unknown signatory."""
    patient = make_patient()
    response = officer.post(f"/api/v1/patients/{patient.study_id}/consent", json=_body(**overrides))
    assert response.status_code == status, response.json
    assert field in response.json["errors"]["json"]
    assert session.scalar(select(func.count()).select_from(ConsentEntry)) == 0


def test_a_form_that_does_not_cover_the_component_is_refused(officer, make_patient, studies):
    """A storage-only form cannot record consent for a sub-study."""
    officer.post(
        "/api/v1/consent/forms",
        json={
            "code": "ICF-S",
            "title": "t",
            "version": "1",
            "language": "nl",
            "covers": ["storage"],
        },
    )
    response = officer.post(
        f"/api/v1/patients/{make_patient().study_id}/consent",
        json=_body("DEMO", form_version="ICF-S"),
    )
    assert response.status_code == 422 and "does not cover DEMO" in response.json["message"]


def test_the_same_consent_twice_is_a_409(officer, make_patient, studies):
    """Recording an identical entry again is a conflict, not a second line."""
    url = f"/api/v1/patients/{make_patient().study_id}/consent"
    assert officer.post(url, json=_body()).status_code == 201
    assert officer.post(url, json=_body()).status_code == 409


def test_declining_after_giving_must_be_a_withdrawal(officer, make_patient, studies):
    """Given consent is ended by a withdrawal (which blocks tubes), not by a 'declined' entry."""
    url = f"/api/v1/patients/{make_patient().study_id}/consent"
    officer.post(url, json=_body(signed_on=str(days_ago(20))))
    response = officer.post(url, json=_body(decision="declined"))
    assert response.status_code == 422 and "withdrawal" in response.json["message"]


def test_an_entry_dated_before_the_current_one_is_refused(officer, make_patient, studies):
    """A new entry cannot slip in before the current one: correct that entry instead."""
    url = f"/api/v1/patients/{make_patient().study_id}/consent"
    officer.post(url, json=_body(signed_on=str(days_ago(5))))
    response = officer.post(url, json=_body(signed_on=str(days_ago(9)), signed_by="mother"))
    assert response.status_code == 422 and response.json["errors"]["json"].get("signed_on")


def test_an_unknown_patient_is_a_404(officer, studies):
    """Consent for a study id nobody registered."""
    assert officer.post("/api/v1/patients/IF21-NOPE/consent", json=_body()).status_code == 404
