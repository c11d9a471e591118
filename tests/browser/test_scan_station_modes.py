"""The scan station never moves a tube by surprise (issue 17, point 1): with a box open a
tube without a place goes in, anything else is asked first (Enter yes, Esc leave), a tube
that does not fit is refused with the reason, every change names from and to and can be
undone; tones and a full-width status band; one consent-aware status on card and map."""

from __future__ import annotations

from browser_helpers import log_in, shot
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_bench_pages import ACTOR, NUMBERING, new_patient, scan

from biobank.custody.models import CustodyEvent
from biobank.reference.models import AliquotType
from biobank.samples.models import Aliquot
from biobank.storage import operations
from biobank.storage import service as storage
from biobank.storage.models import Container, Position


def _in_ln2(session: Session) -> str:
    """A demo viable-cell tube stored in the liquid-nitrogen tank."""
    return session.scalar(
        select(Aliquot.barcode)
        .join(Position, Position.aliquot_id == Aliquot.id)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
        .where(AliquotType.code == "MNC-V", Aliquot.status == "available")
        .order_by(Aliquot.id.desc())
    )


def _place(session: Session, code: str) -> tuple[str, str | None] | None:
    """Where a tube is now: (box barcode, position label), or None."""
    aliquot = session.scalar(select(Aliquot).where(Aliquot.barcode == code))
    where = operations.position_of(session, aliquot)
    if where is None:
        return None
    box = session.get(Container, where.box_id)
    return box.barcode, storage.labellers(session, {box.id})[box.id](where.row_no, where.col_no)


def _events(session: Session, code: str) -> list[tuple[str, str | None]]:
    aliquot = session.scalar(select(Aliquot).where(Aliquot.barcode == code))
    return [
        (e.event_type, e.reason)
        for e in session.scalars(
            select(CustodyEvent)
            .where(CustodyEvent.aliquot_id == aliquot.id)
            .order_by(CustodyEvent.id)
        )
    ]


def _second_box(session: Session, name: str) -> str:
    rack = session.scalar(select(Container).where(Container.kind == "rack").order_by(Container.id))
    return storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": name}, NUMBERING
    ).barcode


def _band(page) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    band = page.locator(".station-status")
    return band.get_attribute("class"), band.inner_text()


def test_a_tube_recorded_elsewhere_is_asked_about_esc_leaves_it(page, live_server):
    """Box B open, a tube stored in box A scanned: nothing moves; the question names both
    places; Esc leaves it where it was, with no event recorded."""
    made = live_server.call(new_patient, 3, 1)  # tube 0 at A1 of its box
    other = live_server.call(_second_box, f"Other {made.box[-5:]}")
    before = live_server.call(_events, made.tubes[0])
    log_in(page, "demo-technician", "/scan")
    scan(page, other)
    scan(page, made.tubes[0])
    cls, words = _band(page)
    assert "cue-ask" in cls
    assert f"is at A1 of {made.box_name}" in words and f"A1 of Other {made.box[-5:]}" in words
    assert live_server.call(_place, made.tubes[0]) == (made.box, "A1")
    assert page.locator("#station").get_attribute("data-last-tone") == "ask"
    shot(page, "station-ask-move")
    page.keyboard.press("Escape")
    page.locator(".station-status.cue-look").wait_for()
    assert live_server.call(_place, made.tubes[0]) == (made.box, "A1")
    assert live_server.call(_events, made.tubes[0]) == before
    assert page.locator("table.boxmap").get_attribute("data-box") == other


def test_enter_moves_it_naming_from_and_to_and_undo_moves_it_back(page, live_server):
    """Enter answers yes: "moved from A1 of <box> to A1 of <other>"; Alt+Z undoes it as a
    move back (two move events, nothing deleted)."""
    made = live_server.call(new_patient, 3, 1)
    other = live_server.call(_second_box, f"Dest {made.box[-5:]}")
    log_in(page, "demo-technician", "/scan")
    scan(page, other)
    scan(page, made.tubes[0])
    page.get_by_label("Scan a tube or a box").press("Enter")
    done = page.get_by_role("status").filter(has_text="moved from")
    done.wait_for()
    assert (
        f"{made.tubes[0]} moved from A1 of {made.box_name} to A1 of Dest {made.box[-5:]}"
        in done.inner_text()
    )
    assert live_server.call(_place, made.tubes[0]) == (other, "A1")
    assert "cue-ok" in _band(page)[0]
    shot(page, "station-moved-with-undo")
    page.keyboard.press("Alt+z")
    page.get_by_role("status").filter(has_text="Undone").wait_for()
    assert live_server.call(_place, made.tubes[0]) == (made.box, "A1")
    kinds = [kind for kind, _ in live_server.call(_events, made.tubes[0])]
    assert kinds[-2:] == ["moved", "moved"]
    assert live_server.call(_events, made.tubes[0])[-1][1] == "undone at the scan station"


def test_a_tube_without_a_place_goes_in_at_once(page, live_server):
    """An unplaced tube scanned with its box open is stored at the next free place."""
    made = live_server.call(new_patient, 3, 1)
    log_in(page, "demo-technician", "/scan")
    scan(page, made.box)
    scan(page, made.tubes[1])
    page.get_by_role("status").filter(has_text=f"{made.tubes[1]} stored: A2 of").wait_for()
    assert live_server.call(_place, made.tubes[1]) == (made.box, "A2")
    assert page.locator("#station").get_attribute("data-last-tone") == "ok"


def test_a_missing_tube_asks_found_here(page, live_server):
    """A tube marked missing is not found by an ordinary scan: the station asks first."""
    made = live_server.call(new_patient, 3, 1)

    def lose(session: Session) -> None:
        tube = session.scalar(select(Aliquot).where(Aliquot.barcode == made.tubes[0]))
        operations.mark_missing(session, ACTOR, tube, "not at A1")

    live_server.call(lose)
    log_in(page, "demo-technician", "/scan")
    scan(page, made.box)
    scan(page, made.tubes[0])
    cls, words = _band(page)
    assert "cue-ask" in cls and "recorded missing. Found here" in words
    status = live_server.call(
        lambda s: s.scalar(select(Aliquot.status).where(Aliquot.barcode == made.tubes[0]))
    )
    assert status == "missing"
    page.get_by_role("button", name="Yes, found here").click()
    page.get_by_role("status").filter(has_text="found").wait_for()
    assert (
        live_server.call(
            lambda s: s.scalar(select(Aliquot.status).where(Aliquot.barcode == made.tubes[0]))
        )
        == "available"
    )


def test_a_tube_that_does_not_fit_the_box_is_refused_until_a_manager_allows_mixing(
    page, live_server
):
    """A viable-cell tube from liquid nitrogen scanned into a −80 °C plasma box: refused
    with the reason, a red band and the refusal tone; once a manager lets the box mix, the
    station asks instead."""
    made = live_server.call(new_patient, 2, 1)  # a plasma tube at A1
    tube = live_server.call(_in_ln2)
    where = live_server.call(_place, tube)
    log_in(page, "demo-technician", "/scan")
    scan(page, made.box)
    scan(page, tube)
    alert = page.get_by_role("alert")
    assert "holds Plasma" in alert.inner_text() and "manager" in alert.inner_text()
    assert "cue-error" in _band(page)[0]
    assert page.locator("#station").get_attribute("data-last-tone") == "error"
    assert live_server.call(_place, tube) == where
    shot(page, "station-refused-mismatch")

    def allow(session: Session) -> None:
        from biobank.storage import station  # new with the mixing rule

        box = session.scalar(select(Container).where(Container.barcode == made.box))
        station.allow_mixing(session, "demo-manager", box, True, "pilot: mixed box")

    live_server.call(allow)
    scan(page, tube)
    assert "cue-ask" in _band(page)[0]
    assert live_server.call(_place, tube) == where


def test_looking_up_never_moves_and_the_tone_can_be_muted(page, live_server):
    """Without a box open a scan only shows the card; the mute button silences the tones
    (kept across pages)."""
    made = live_server.call(new_patient, 2, 1)
    log_in(page, "demo-technician", "/scan")
    scan(page, made.tubes[0])
    assert page.locator("#station").get_attribute("data-last-tone") == "look"
    page.get_by_role("button", name="Sound on").click()
    assert page.get_by_role("button", name="Sound off").get_attribute("aria-pressed") == "true"
    scan(page, "NOT-A-TUBE-42")
    assert page.locator("#station").get_attribute("data-last-tone") == "muted"
    page.reload()
    assert page.get_by_role("button", name="Sound off").is_visible()


def test_one_consent_aware_status_on_card_and_map(page, live_server):
    """A tube with no storage consent on record is "do not use" on its card's badge and its
    map cell: never a green "available" beside "Do not use"."""
    made = live_server.call(new_patient, 2, 1, False)
    log_in(page, "demo-technician", "/scan")
    scan(page, made.tubes[0])
    card = page.locator("article.card")
    assert card.locator(".consent-no").is_visible()
    badge = card.locator(".card-head .badge")
    assert "st-available" not in badge.get_attribute("class")
    assert badge.inner_text() == "do not use: no consent"
    assert "cue-warn" in _band(page)[0]
    scan(page, made.box)
    cell = page.locator(f'.cell[data-barcode="{made.tubes[0]}"]')
    assert "st-available" not in cell.get_attribute("class")
    assert "NO USE" in cell.inner_text()
    shot(page, "station-no-consent")
