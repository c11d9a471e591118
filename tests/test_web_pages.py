"""The pages beyond the scan station: login redirects and refusals, the home page, rack-scan
upload, patients, the consent desk and withdrawals, printers."""

from __future__ import annotations

import io

from sqlalchemy import select
from web_helpers import HTML, lab, login  # noqa: F401

from biobank import clock
from biobank.consent.models import AnonymisationTask, ConsentEntry, Withdrawal
from biobank.labels.models import Printer
from biobank.storage.models import Position

TODAY = clock.today().isoformat()


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


# --- who may see what ------------------------------------------------------------------------


def test_an_anonymous_browser_is_sent_to_the_login_page(client):
    """A page asked for without a session redirects to /login, which comes back to it."""
    answer = client.get("/scan?code=IF1", headers=HTML)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/scan?code%3DIF1"


def test_the_api_keeps_answering_401_json_to_browsers(client):
    """Under /api a browser without a session still gets the JSON 401."""
    answer = client.get("/api/v1/patients", headers=HTML)
    assert answer.status_code == 401 and answer.is_json


def test_a_page_refused_to_a_role_says_so_in_a_page(login):
    """A researcher asking for the scan station gets a 403 page, not JSON."""
    answer = login("researcher").get("/scan")
    assert answer.status_code == 403 and not answer.is_json
    assert "Not for your role" in text(answer) and "researcher" in text(answer)


def test_the_home_page_offers_what_the_role_may_open(login):
    """The front page lists the pages of the user's role, and only those."""
    tech = text(login("technician").get("/"))
    assert "Scan station" in tech and "Consent desk" in tech and "Printers" not in tech
    manager = text(login("manager").get("/"))
    assert "Printers" in manager
    researcher = text(login("researcher").get("/"))
    assert "Scan station" not in researcher and "Patients" not in researcher


# --- rack scans --------------------------------------------------------------------------------


def rack_file(lab) -> bytes:  # type: ignore[no-untyped-def]
    box = lab.box.barcode
    return (
        f"{box},A1,{lab.tubes[0].barcode}\n{box},A2,{lab.tubes[1].barcode}\n"
        f"{box},A3,NO READ\n{box},A4,FX00000001\n"
    ).encode()


def test_a_rack_scan_is_shown_as_a_coloured_grid_before_it_is_confirmed(login, lab, session):
    """Upload: matches, moved, unreadable and unknown each get their colour and word;
    nothing moves until the confirm button."""
    tech = login("technician")
    answer = tech.post(
        f"/boxes/{lab.box.barcode}/rack-scan", {"file": (io.BytesIO(rack_file(lab)), "rack.csv")}
    )
    page = text(answer)
    assert answer.status_code == 200, page
    for css in ("rk-match", "rk-moved", "rk-unreadable", "rk-unknown"):
        assert f'class="cell {css}"' in page
    assert "Confirm the scan" in page
    assert session.scalar(select(Position).where(Position.aliquot_id == lab.tubes[1].id)) is None
    confirm = page.split(f'action="/boxes/{lab.box.barcode}/rack-scan/')[1].split('"')[0]
    assert 'name="acknowledge" value="unknown_tubes"' in page
    assert 'name="acknowledge" value="unreadable_wells"' in page
    answer = tech.post(f"/boxes/{lab.box.barcode}/rack-scan/{confirm}")
    assert answer.status_code == 409 and "acknowledge" in text(answer)
    answer = tech.post(
        f"/boxes/{lab.box.barcode}/rack-scan/{confirm}",
        {"acknowledge": ["unknown_tubes", "unreadable_wells"]},
    )
    assert answer.status_code == 303
    assert "1 tube(s) moved" in text(tech.get(answer.headers["Location"]))
    where = session.scalar(select(Position).where(Position.aliquot_id == lab.tubes[1].id))
    assert (where.box_id, where.row_no, where.col_no) == (lab.box.id, 1, 2)


def test_a_file_that_is_no_rack_scan_is_refused_on_the_page(login, lab):
    """A file the parser cannot read: the reason on the upload page, with a 422."""
    answer = login("technician").post(
        f"/boxes/{lab.box.barcode}/rack-scan", {"file": (io.BytesIO(b"\xff\xfe\x00"), "x.csv")}
    )
    assert answer.status_code == 422 and "not text" in text(answer)


# --- patients ----------------------------------------------------------------------------------


def test_the_patient_page_draws_completeness_risk_and_consent(login, lab):
    """Timepoint × material with received / missing / not applicable, the risk-group
    history, consent now and its history, the tubes with their places."""
    page = text(login("consent_officer").get(f"/patients/{lab.patient.study_id}"))
    assert 'class="tl tl-received"' in page and 'class="tl tl-not_applicable"' in page
    assert 'class="tl tl-missing"' in page  # D8 blood passed long ago without a sample
    assert "stratified at registration" in page
    assert "Storage consent: given" in page and "mother" in page  # officers see who signed
    assert lab.tubes[0].barcode in page and "Plasma 01 · A1" in page


def test_a_technician_sees_consent_but_not_who_signed(login, lab):
    """Signatories are for consent officers: the technician's page leaves them out."""
    page = text(login("technician").get(f"/patients/{lab.patient.study_id}"))
    assert "Storage consent: given" in page and "mother" not in page
    assert "Record a withdrawal" not in page


# --- consent -----------------------------------------------------------------------------------


def test_recording_consent_through_the_form(login, lab, session):
    """The officer records storage consent for a patient without any; it is in the log."""
    officer = login("consent_officer")
    study_id = lab.stranger.study_id
    answer = officer.post(
        f"/patients/{study_id}/consent/new",
        {
            "component": "storage",
            "decision": "given",
            "signed_on": TODAY,
            "form_version": "ICF-WEB-1",
            "signed_by": "father",
            "reason": "",
        },
    )
    assert answer.status_code == 303, text(answer)
    assert "storage consent given" in text(officer.get(answer.headers["Location"]))
    entry = session.scalar(select(ConsentEntry).where(ConsentEntry.patient_id == lab.stranger.id))
    assert entry.signed_by == "father" and entry.recorded_by == officer.username


def test_a_consent_form_with_a_bad_field_says_which(login, lab, session):
    """The API's schema reads the form: a bad date is a 422 naming the field."""
    answer = login("consent_officer").post(
        f"/patients/{lab.stranger.study_id}/consent/new",
        {
            "component": "storage",
            "decision": "given",
            "signed_on": "yesterday",
            "form_version": "ICF-WEB-1",
            "signed_by": "father",
        },
    )
    assert answer.status_code == 422 and "signed_on" in text(answer)
    assert (
        session.scalar(select(ConsentEntry).where(ConsentEntry.patient_id == lab.stranger.id))
        is None
    )


def test_a_withdrawal_shows_its_impact_first_then_blocks_the_tubes(login, lab, session):
    """Step one is a dry run that writes nothing; confirming blocks every tube in house,
    and the scan card turns red."""
    officer = login("consent_officer")
    url = f"/patients/{lab.patient.study_id}/consent/withdraw"
    form = {"scope": "storage", "date": TODAY, "requested_by": "mother", "reason": ""}
    preview = officer.post(url, {**form, "step": "preview"})
    assert preview.status_code == 200
    assert "dry run, nothing written" in text(preview) and "4 tube(s) blocked" in text(preview)
    assert session.scalar(select(Withdrawal)) is None
    answer = officer.post(url, {**form, "step": "confirm"})
    assert answer.status_code == 303, text(answer)
    detail = text(officer.get(answer.headers["Location"]))
    assert "actions outstanding" in detail and lab.tubes[0].barcode in detail
    card = text(officer.get(f"/scan?code={lab.tubes[0].barcode}"))
    assert "consent-no" in card and "st-blocked" in card and "withdrawn" in card
    desk = text(officer.get("/consent"))
    assert lab.patient.study_id in desk.split("Re-consent due")[0]


def test_an_anonymising_withdrawal_on_the_pages_ends_with_relabelled_tubes(login, lab, session):
    """Outcome 'anonymised' on the form: the impact lists relabelling tasks; the withdrawal
    page closes them one by one; the scan page then shows the tube without a patient."""
    officer = login("consent_officer")
    url = f"/patients/{lab.patient.study_id}/consent/withdraw"
    form = {
        "scope": "storage",
        "date": TODAY,
        "requested_by": "mother",
        "reason": "",
        "outcome": "anonymise",
    }
    preview = officer.post(url, {**form, "step": "preview"})
    assert "relabelling tasks" in text(preview)
    answer = officer.post(url, {**form, "step": "confirm"})
    assert answer.status_code == 303, text(answer)
    detail = text(officer.get(answer.headers["Location"]))
    assert "tubes to relabel" in detail and lab.tubes[0].barcode in detail
    tech = login("technician")
    task = session.scalar(
        select(AnonymisationTask.id).where(AnonymisationTask.aliquot_id == lab.tubes[0].id)
    )
    done = tech.post(f"/consent/anonymisation-tasks/{task}/done", {})
    assert done.status_code == 303, text(done)
    assert "no longer linked" in text(tech.get(done.headers["Location"]))
    card = text(tech.get(f"/scan?code={lab.tubes[0].barcode}"))
    assert "anonymised" in card and lab.patient.study_id not in card


def test_a_withdrawal_the_service_refuses_is_shown_on_the_form(login, lab):
    """Withdrawing what was never given: the service's reason, on the form, as a 422."""
    answer = login("consent_officer").post(
        f"/patients/{lab.stranger.study_id}/consent/withdraw",
        {"scope": "storage", "date": TODAY, "requested_by": "mother", "step": "preview"},
    )
    assert answer.status_code == 422 and "never given" in text(answer)


# --- printers ----------------------------------------------------------------------------------


def test_a_manager_registers_a_printer_on_the_printers_page(login, session):
    """The printer form uses the API's schema and the labels service."""
    manager = login("manager")
    answer = manager.post(
        "/printers",
        {
            "name": "Zebra-Bench-2",
            "host": "10.0.0.7",
            "port": "9100",
            "dpi": "300",
            "template": "",
            "site": "NL-PMC",
        },
    )
    assert answer.status_code == 303, text(answer)
    assert "Zebra-Bench-2" in text(manager.get("/printers"))
    assert session.scalar(select(Printer).where(Printer.name == "Zebra-Bench-2")).dpi == 300
    answer = manager.post("/printers", {"name": "Zebra-Bench-2", "host": "10.0.0.8"})
    assert answer.status_code == 409 and "exists already" in text(answer)
