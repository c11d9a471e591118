"""Researchers see their sub-study, pseudonymised: the gate answers them only for tubes of their
requests, without consent entry ids; patients are named by a per-sub-study pseudonym; a tube
dropped from their request says only "withdrawn from this request". And ``at`` on the gate."""

from __future__ import annotations

import csv
import datetime as dt
import io

from consent_helpers import ACTOR, days_ago, give, officer, studies  # noqa: F401
from requests_helpers import (  # noqa: F401
    allocated,
    donor,
    freezer,
    held,
    researcher,
    shipped,
)

from biobank import clock
from biobank.consent import pseudonym
from biobank.consent import withdrawal as withdrawals

CHECK = "/api/v1/consent/check"


def test_a_researcher_asking_about_a_tube_not_in_their_requests_gets_404(researcher, donor):
    """Any code outside their requests is answered like an unknown code, GET and POST."""
    other = donor({"DX": 1}, "DEMO")
    code = other.barcodes[0]
    unknown = researcher.get(f"{CHECK}?barcode=FX1&substudy=DEMO")
    answer = researcher.get(f"{CHECK}?barcode={code}&substudy=DEMO")
    assert answer.status_code == unknown.status_code == 404
    assert answer.json["message"] == f"no aliquot {code}"
    bulk = researcher.post(CHECK, json={"substudy": "DEMO", "barcodes": [code]})
    assert bulk.status_code == 404 and bulk.json["message"] == f"no aliquot {code}"


def test_the_gate_answers_a_researcher_for_their_own_tubes_without_entry_ids(
    researcher, manager, donor
):
    """A tube allocated to their request: an answer, but no consent entry ids."""
    donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    codes = held(manager, number)
    answer = researcher.get(f"{CHECK}?barcode={codes[0]}&substudy=DEMO")
    assert answer.status_code == 200, answer.json
    assert answer.json["allowed"] is True and "justification" not in answer.json
    bulk = researcher.post(CHECK, json={"substudy": "DEMO", "barcodes": codes})
    assert bulk.status_code == 200 and bulk.json["allowed_count"] == 2
    assert all("justification" not in r for r in bulk.json["results"])


def test_a_researcher_learns_no_withdrawal_details_from_the_gate(
    researcher, manager, tech, donor, session
):
    """A shipped tube whose patient withdrew DEMO: refused, without date or reason."""
    first = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    _, codes = shipped(researcher, manager, tech)
    withdrawals.withdraw(
        session,
        ACTOR,
        first.patient,
        {
            "scope": "DEMO",
            "date": clock.today(),
            "requested_by": "mother",
            "reason": "private reason of the family",
        },
    )
    session.commit()
    answer = researcher.get(f"{CHECK}?barcode={first.barcodes[0]}&substudy=DEMO").json
    assert answer["allowed"] is False
    text = " ".join(answer["reasons"])
    assert str(clock.today()) not in text and "private" not in text and "withdraw" not in text


def test_staff_still_get_the_entry_ids(tech, donor):
    """Technicians and managers: the justification as before."""
    world = donor({"DX": 1}, "DEMO")
    answer = tech.get(f"{CHECK}?barcode={world.barcodes[0]}&substudy=DEMO").json
    assert answer["allowed"] is True and len(answer["justification"]) == 2


def test_the_request_names_patients_by_a_per_substudy_pseudonym(
    researcher, manager, donor, as_role, app
):
    """Researchers see a pseudonym, stable within DEMO, never the study_id; MRD-NGS gets
    another one for the same patient; a manager maps it back."""
    world = donor({"DX": 1}, "DEMO", "MRD-NGS")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    tubes = researcher.get(f"/api/v1/requests/{number}").json["tubes"]
    names = {t["barcode"]: t["patient"] for t in tubes}
    assert all("study_id" not in t for t in tubes)
    mine = names[world.barcodes[0]]
    assert mine == pseudonym.pseudonym("DEMO", world.study_id)
    assert (
        mine
        == researcher.get(f"/api/v1/requests/{number}").json["tubes"][
            [t["barcode"] for t in tubes].index(world.barcodes[0])
        ]["patient"]
    )
    assert pseudonym.pseudonym("MRD-NGS", world.study_id) != mine
    assert world.study_id not in mine
    resolved = manager.get(f"/api/v1/substudies/DEMO/pseudonyms/{mine}")
    assert resolved.status_code == 200 and resolved.json["study_id"] == world.study_id
    assert researcher.get(f"/api/v1/substudies/DEMO/pseudonyms/{mine}").status_code == 403
    assert manager.get("/api/v1/substudies/DEMO/pseudonyms/P-XXXXXXXXXX").status_code == 404


def test_the_pseudonym_key_comes_from_the_configuration(app):
    """BIOBANK_PSEUDONYM_KEY decides the pseudonyms; without it, the secret key does."""
    before = pseudonym.pseudonym("DEMO", "IF21-NL-001")
    app.config["PSEUDONYM_KEY"] = "another key"
    after = pseudonym.pseudonym("DEMO", "IF21-NL-001")
    assert before != after and after == pseudonym.pseudonym("DEMO", "IF21-NL-001")


def test_manifests_carry_pseudonyms_only(researcher, manager, tech, donor):
    """The manifest CSV names patients by the sub-study's pseudonym, for everyone."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number, _ = shipped(researcher, manager, tech)
    for client in (researcher, manager):
        text = client.get(f"/api/v1/requests/{number}/manifest.csv").get_data(as_text=True)
        assert world.study_id not in text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert pseudonym.pseudonym("DEMO", world.study_id) in {r["patient"] for r in rows}
    page = researcher.get(f"/api/v1/requests/{number}/manifest").get_data(as_text=True)
    assert world.study_id not in page


def test_a_dropped_tube_says_only_withdrawn_from_this_request(researcher, manager, donor, session):
    """A tube dropped after a withdrawal: the researcher sees no patient, date or number."""
    first = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    impact = withdrawals.withdraw(
        session,
        ACTOR,
        first.patient,
        {"scope": "DEMO", "date": clock.today(), "requested_by": "mother"},
    )
    session.commit()
    tubes = researcher.get(f"/api/v1/requests/{number}").json["tubes"]
    [dropped] = [t for t in tubes if t["state"] == "dropped"]
    assert dropped["reason"] == "withdrawn from this request"
    assert dropped["patient"] is None
    text = str(tubes)
    assert first.study_id not in text and str(clock.today()) not in text
    assert f"#{impact.withdrawal.id}" not in text
    staff = manager.get(f"/api/v1/requests/{number}").json["tubes"]
    [seen] = [t for t in staff if t["state"] == "dropped"]
    assert f"#{impact.withdrawal.id}" in seen["reason"]


# --- at ---------------------------------------------------------------------------------


def test_the_gate_answers_as_of_a_date_or_a_moment(tech, donor, session):
    """?at=: allowed before a withdrawal, refused after it; a date or a date-time."""
    world = donor({"DX": 1}, "DEMO")
    withdrawals.withdraw(
        session,
        ACTOR,
        world.patient,
        {"scope": "DEMO", "date": days_ago(10), "requested_by": "mother"},
    )
    session.commit()
    code = world.barcodes[0]
    before = tech.get(f"{CHECK}?barcode={code}&substudy=DEMO&at={days_ago(20)}")
    assert before.status_code == 200 and before.json["allowed"] is True
    moment = dt.datetime.combine(days_ago(11), dt.time(23, 30), clock.zone())
    late = tech.get(
        f"{CHECK}", query_string={"barcode": code, "substudy": "DEMO", "at": moment.isoformat()}
    )
    assert late.json["allowed"] is True
    now = tech.get(f"{CHECK}?barcode={code}&substudy=DEMO")
    assert now.json["allowed"] is False
    bulk = tech.post(CHECK, json={"substudy": "DEMO", "barcodes": [code], "at": str(days_ago(20))})
    assert bulk.status_code == 200 and bulk.json["allowed_count"] == 1


def test_a_malformed_at_is_a_422_naming_at(tech, donor):
    """Not a date: 422 naming ``at``, on GET and POST."""
    code = donor({"DX": 1}, "DEMO").barcodes[0]
    answer = tech.get(f"{CHECK}?barcode={code}&substudy=DEMO&at=yesterday")
    assert answer.status_code == 422 and "at" in answer.json["errors"]["query"]
    bulk = tech.post(CHECK, json={"substudy": "DEMO", "barcodes": [code], "at": "2026-13-01"})
    assert bulk.status_code == 422 and "at" in bulk.json["errors"]["json"]


def test_shipment_labels_name_patients_by_the_pseudonym(researcher, manager, tech, donor):
    """The request's relabelling sheet (ZPL) carries the pseudonym, never the study_id."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number = allocated(researcher, manager)
    sheet = tech.get(f"/api/v1/requests/{number}/labels?format=zpl")
    assert sheet.status_code == 200, sheet.json
    text = sheet.get_data(as_text=True)
    assert pseudonym.pseudonym("DEMO", world.study_id) in text and world.study_id not in text
    assert text.count("^XA") == 2
    assert researcher.get(f"/api/v1/requests/{number}/labels").status_code == 403


def test_a_shipped_tube_anonymised_afterwards_names_no_patient_anywhere(
    researcher, manager, tech, officer, donor
):
    """After an anonymising withdrawal, the request, its manifest (CSV and page) and the
    shipment labels name the tube's patient 'anonymised', by pseudonym or study_id alike."""
    world = donor({"DX": 1}, "DEMO")
    donor({"DX": 1}, "DEMO")
    number, _ = shipped(researcher, manager, tech)
    name = pseudonym.pseudonym("DEMO", world.study_id)
    response = officer.post(
        f"/api/v1/patients/{world.study_id}/consent/withdrawals",
        json={
            "scope": "storage",
            "date": str(days_ago(0)),
            "requested_by": "mother",
            "outcome": "anonymise",
        },
    )
    assert response.status_code == 201, response.json
    assert response.json["recalls"]  # the recipient is still told
    for client in (researcher, manager):
        tubes = client.get(f"/api/v1/requests/{number}").json["tubes"]
        assert pseudonym.ANONYMISED in {t["patient"] for t in tubes}
        text = client.get(f"/api/v1/requests/{number}/manifest.csv").get_data(as_text=True)
        assert name not in text and world.study_id not in text
        assert pseudonym.ANONYMISED in {r["patient"] for r in csv.DictReader(io.StringIO(text))}
    labels = tech.get(f"/api/v1/requests/{number}/labels?format=zpl").get_data(as_text=True)
    assert name not in labels and world.study_id not in labels and "ANON" in labels
