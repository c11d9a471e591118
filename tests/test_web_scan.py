"""The scan station and box pages, through the pages' own requests (the browser tests in
tests/browser/ drive the same pages in Chromium)."""

from __future__ import annotations

from sqlalchemy import select
from web_helpers import FRAGMENT, lab, login  # noqa: F401

from biobank.custody.models import CustodyEvent
from biobank.storage.models import Position, Thaw


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def events(session, aliquot):  # type: ignore[no-untyped-def]
    return [
        e.event_type
        for e in session.scalars(
            select(CustodyEvent)
            .where(CustodyEvent.aliquot_id == aliquot.id)
            .order_by(CustodyEvent.id)
        )
    ]


def place_of(session, aliquot):  # type: ignore[no-untyped-def]
    return session.scalar(select(Position).where(Position.aliquot_id == aliquot.id))


def test_a_scanned_tube_shows_its_card(login, lab):
    """The card: study ID, timepoint, type, volume, status, location path, consent in green
    with its reason, last events, and the technician's actions with their keys."""
    tech = login("technician")
    tube = lab.tubes[0]
    page = text(tech.get(f"/scan/card?code={tube.barcode.lower()}", headers=FRAGMENT))
    assert tube.barcode in page and lab.patient.study_id in page
    assert "DX" in page and "PLASMA" in page and "0.200 mL" in page
    assert 'class="badge st-available">available' in page
    assert "NL-PMC / F-80-01 / Rack A / Plasma 01" in page and "<strong>A1</strong>" in page
    assert "consent-ok" in page and "Consent OK" in page and "usable for DEMO" in page
    assert "stored</strong>" in page and "aliquoted</strong>" in page
    for action in (
        "Move <kbd>Alt+M</kbd>",
        "Thaw <kbd>Alt+T</kbd>",
        "Mark missing <kbd>Alt+X</kbd>",
        "Take out <kbd>Alt+O</kbd>",
    ):
        assert action in page
    assert "<html" not in page  # a piece of the page, for the script to swap in


def test_a_tube_without_consent_is_red_with_the_reason(login, lab):
    """No storage consent on record: red, "do not use", with the reason in words."""
    page = text(login("technician").get(f"/scan?code={lab.unconsented.barcode}"))
    assert "consent-no" in page and "Do not use" in page
    assert "no storage consent on record" in page
    assert "<html" in page  # without the script: the whole page


def test_a_consent_officer_sees_the_card_without_storage_actions(login, lab):
    """The card follows the matrix: an officer may scan but not move or thaw tubes."""
    page = text(login("consent_officer").get(f"/scan?code={lab.tubes[0].barcode}"))
    assert lab.tubes[0].barcode in page
    assert "Thaw" not in page and "Move" not in page


def test_a_wrong_or_unknown_code_is_shown_plainly(login, lab):
    """A misread check character is a 422, an unknown code a 404; both in words, as alerts."""
    tech = login("technician")
    good = lab.tubes[0].barcode
    misread = good[:-1] + ("A" if good[-1] != "A" else "B")
    answer = tech.get(f"/scan/card?code={misread}", headers=FRAGMENT)
    assert answer.status_code == 422
    assert 'role="alert"' in text(answer) and "check character" in text(answer)
    answer = tech.get("/scan/card?code=XYZ-NOT-OURS", headers=FRAGMENT)
    assert answer.status_code == 404 and "is not a code this biobank knows" in text(answer)


def test_scanning_a_box_opens_its_map(login, lab):
    """A box code shows the grid: the stored tube by position, free places, the next place."""
    page = text(login("technician").get(f"/scan/card?code={lab.box.barcode}", headers=FRAGMENT))
    assert f'data-box="{lab.box.barcode}"' in page
    assert f'data-barcode="{lab.tubes[0].barcode}" data-position="A1"' in page
    assert 'class="cell free is-target"' in page and 'data-target="A2"' in page
    assert page.count('class="cell free') == 80


def test_a_tube_scanned_after_a_box_goes_into_it(login, lab, session):
    """Box open, tube scanned: stored at the next free place, highlighted on the map."""
    tech = login("technician")
    tube = lab.tubes[1]
    answer = tech.post(
        "/scan/place",
        {"code": tube.barcode, "box": lab.box.barcode, "position": ""},
        headers=FRAGMENT,
    )
    assert answer.status_code == 200, text(answer)
    assert f"{tube.barcode} stored: A2 of Plasma 01" in text(answer)
    assert "is-highlight" in text(answer) and 'data-target="A3"' in text(answer)
    where = place_of(session, tube)
    assert (where.box_id, where.row_no, where.col_no) == (lab.box.id, 1, 2)
    assert events(session, tube)[-1] == "stored"


def test_a_tube_scanned_into_another_box_moves_there_at_the_chosen_place(login, lab, session):
    """A stored tube scanned while another box is open is asked about first (nothing moves);
    confirmed, it moves to the clicked place, the answer naming from and to."""
    tech = login("technician")
    tube = lab.tubes[0]
    asked = tech.post(
        "/scan/place",
        {"code": tube.barcode, "box": lab.spare.barcode, "position": "C3"},
        headers=FRAGMENT,
    )
    assert f"{tube.barcode} is at A1 of Plasma 01. Move it to C3 of Spare?" in text(asked)
    assert place_of(session, tube).box_id == lab.box.id
    answer = tech.post(
        "/scan/place",
        {"code": tube.barcode, "box": lab.spare.barcode, "position": "C3", "confirm": "1"},
        headers=FRAGMENT,
    )
    assert f"{tube.barcode} moved from A1 of Plasma 01 to C3 of Spare" in text(answer)
    assert events(session, tube)[-1] == "moved"
    assert place_of(session, tube).box_id == lab.spare.id


def test_scanning_a_tube_already_in_the_open_box_only_finds_it(login, lab, session):
    """Scanning a tube of the open box moves nothing: it is highlighted where it is."""
    tube = lab.tubes[0]
    answer = login("technician").post(
        "/scan/place", {"code": tube.barcode, "box": lab.box.barcode}, headers=FRAGMENT
    )
    assert "is in this box already, at A1" in text(answer) and "is-highlight" in text(answer)
    assert events(session, tube)[-1] == "stored"


def test_a_taken_place_is_refused_and_nothing_changes(login, lab, session):
    """A tube sent to an occupied place: the service's 409 in words; the tube stays put."""
    tube = lab.tubes[1]
    answer = login("technician").post(
        "/scan/place",
        {"code": tube.barcode, "box": lab.box.barcode, "position": "A1"},
        headers=FRAGMENT,
    )
    assert answer.status_code == 409
    assert f"holds {lab.tubes[0].barcode} already" in text(answer)
    assert place_of(session, tube) is None


def test_thaw_and_refreeze_from_the_card(login, lab, session):
    """Thaw counts a cycle and keeps the place; the card then offers Refreeze, which puts
    the tube back."""
    tech = login("technician")
    tube = lab.tubes[0]
    answer = tech.post(
        f"/scan/{tube.barcode}/storage", {"op": "thaw", "reason": "assay"}, headers=FRAGMENT
    )
    assert f"{tube.barcode} thawed" in text(answer) and "Refreeze" in text(answer)
    assert session.get(Thaw, tube.id) is not None
    answer = tech.post(f"/scan/{tube.barcode}/storage", {"op": "refreeze"}, headers=FRAGMENT)
    assert f"{tube.barcode} refrozen" in text(answer)
    assert events(session, tube)[-2:] == ["thawed", "refrozen"]


def test_a_move_from_the_card_records_the_reason_typed(login, lab, session):
    """Store from the card, into another box: the custody event carries the reason the
    technician typed, not the station's default words."""
    tube = lab.tubes[0]
    answer = login("technician").post(
        f"/scan/{tube.barcode}/storage",
        {"op": "store", "box": lab.spare.barcode, "position": "B2", "reason": "box cracked"},
        headers=FRAGMENT,
    )
    assert answer.status_code == 200, text(answer)
    last = session.scalars(
        select(CustodyEvent)
        .where(CustodyEvent.aliquot_id == tube.id)
        .order_by(CustodyEvent.id.desc())
        .limit(1)
    ).one()
    assert (last.event_type, last.reason) == ("moved", "box cracked")


def test_marking_missing_needs_a_reason_from_the_service(login, lab, session):
    """Without a reason the service's 422 is shown on the card; with one the tube is missing."""
    tech = login("technician")
    tube = lab.tubes[0]
    answer = tech.post(f"/scan/{tube.barcode}/storage", {"op": "missing"}, headers=FRAGMENT)
    assert answer.status_code == 422 and "say why the aliquot is missing" in text(answer)
    assert tube.barcode in text(answer)  # the card is still there
    answer = tech.post(
        f"/scan/{tube.barcode}/storage", {"op": "missing", "reason": "not at A1 at inventory"}
    )
    assert answer.status_code == 303  # without the script: back to the station
    session.refresh(tube)
    assert tube.status == "missing"


def test_a_form_without_the_csrf_token_changes_nothing(login, lab, session):
    """A page form posted without this session's CSRF token is refused."""
    tech = login("technician")
    tube = lab.tubes[1]
    answer = tech.client.post("/scan/place", data={"code": tube.barcode, "box": lab.box.barcode})
    assert answer.status_code == 400
    assert place_of(session, tube) is None


def test_printing_on_an_unreachable_printer_is_shown_and_recorded_nowhere(
    login, lab, session, manager
):
    """The printer's refusal is shown on the card in the bench's words, with the label to
    download instead; no label event is written."""
    assert (
        manager.post(
            "/api/v1/printers", json={"name": "Bench", "host": "127.0.0.1", "port": 9}
        ).status_code
        == 201
    )
    tube = lab.tubes[0]
    answer = login("technician").post(
        f"/scan/{tube.barcode}/print", {"printer": "Bench"}, headers=FRAGMENT
    )
    assert answer.status_code == 502 and "Bench is not answering" in text(answer)
    assert f"/scan/{tube.barcode}/label.png?printer=Bench" in text(answer)
    assert "label_printed" not in events(session, tube)


def test_the_box_page_draws_the_map(login, lab):
    """The box page: path, the grid with the stored tube, a legend; the tube highlighted."""
    page = text(
        login("consent_officer").get(f"/boxes/{lab.box.barcode}?tube={lab.tubes[0].barcode}")
    )
    assert "NL-PMC / F-80-01 / Rack A / Plasma 01" in page
    assert "is-highlight" in page and "available, consent given" in page
    assert "Upload a rack scan" not in page  # officers do not change storage


def test_the_box_list_finds_boxes_by_name(login, lab):
    """The box list filters by name or code."""
    page = text(login("technician").get("/boxes?q=spare"))
    assert lab.spare.barcode in page and lab.box.barcode not in page


def test_the_api_and_the_card_take_the_tube_actions_from_one_table(app):
    """Each tube action of the storage table is an API endpoint; the card offers those marked
    for it, beside its Store (the station's decision, which places and moves)."""
    from biobank.storage.actions import TUBE_ACTIONS
    from biobank.web.scan import STORAGE_ACTIONS

    posts = {rule.rule for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}
    assert {f"/api/v1/aliquots/<code>/{a.path}" for a in TUBE_ACTIONS.values()} <= posts
    assert set(STORAGE_ACTIONS) == {
        "store",
        "take_out",
        "put_back",
        "thaw",
        "refreeze",
        "missing",
        "found",
    }
