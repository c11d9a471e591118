"""Picking and shipping without dead ends (issue 17, point 3): a tube that cannot go is
dropped from the pick list with a reason and a note; the list says when everything is
picked; the ship form starts from the request (recipient, address, today) with the coolant
its own field; Cancel is kept away from Ship."""

from __future__ import annotations

import datetime as dt

from browser_helpers import log_in, shot
from playwright.sync_api import expect
from sqlalchemy import select

from biobank import clock
from biobank.custody.models import CustodyEvent
from biobank.samples.models import Aliquot


def _request_for_three(page) -> str:  # type: ignore[no-untyped-def]
    log_in(page, "demo-researcher", "/requests/new")
    page.get_by_label("Title").fill("Plasma, three patients")
    page.get_by_label("What the material is for").fill("A pick list with a damaged tube.")
    page.get_by_label("From how many patients").fill("3")
    page.get_by_role("group", name="Material").get_by_label("BM").check()
    page.get_by_role("group", name="Aliquot type").get_by_label("PLASMA", exact=True).check()
    page.get_by_role("group", name="Timepoint").get_by_label("DX").check()
    page.get_by_role("button", name="Make the request").click()
    number = page.get_by_role("heading", level=1).inner_text().split()[1]
    page.get_by_role("button", name="Log out").click()
    log_in(page, "demo-manager", f"/requests/{number}")
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("button", name="Allocate the tubes").click()
    return number


def test_a_damaged_tube_is_dropped_and_the_ship_form_starts_filled(page, live_server):
    """Drop one tube (damaged, with a note), pick the rest: "Everything is picked"; the
    ship form has the requester, their last address and today; Cancel is not beside Ship."""
    number = _request_for_three(page)
    page.get_by_role("link", name="Pick list").click()
    expect(page.locator("table.pick-list td.code").first).to_be_visible()  # the new page
    codes = page.locator("table.pick-list td.code").all_inner_texts()
    assert len(codes) == 3
    damaged = codes[0]
    page.get_by_label(f"Why {damaged} cannot go").select_option("damaged")
    row = page.locator("table.pick-list tr", has_text=damaged)
    row.get_by_label("Note (discrepancy)").fill("cracked cap")
    row.get_by_role("button", name="Drop from the request").click()
    assert f"{damaged} dropped from request {number}" in page.get_by_role("status").inner_text()
    reasons = live_server.call(
        lambda s: [
            e.reason
            for e in s.scalars(
                select(CustodyEvent)
                .join(Aliquot, Aliquot.id == CustodyEvent.aliquot_id)
                .where(Aliquot.barcode == damaged)
            )
        ]
    )
    assert any("damaged: cracked cap" in (r or "") for r in reasons)
    for code in codes[1:]:
        field = page.get_by_label("Scan each tube as you take it out")
        field.fill(code)
        field.press("Enter")
    assert page.locator(".all-picked").inner_text().startswith("✓ Everything is picked")
    shot(page, "pick-list-all-picked")
    page.get_by_role("link", name="Go on to shipping").click()
    assert page.get_by_label("Recipient", exact=True).input_value() != ""
    assert page.get_by_label("Shipped on").get_attribute("type") == "date"
    assert page.get_by_label("Shipped on").input_value() == clock.today().isoformat()
    assert page.get_by_label("Coolant").evaluate("e => e.tagName") == "SELECT"
    ship = page.get_by_role("button", name="Ship the picked tubes").bounding_box()
    cancel = page.get_by_role("button", name="Cancel the request")
    assert not cancel.is_visible()  # folded away, below the steps forward
    page.get_by_text("Cancel the request…").click()
    assert cancel.bounding_box()["y"] > ship["y"] + ship["height"] + 40
    shot(page, "ship-form-prefilled")
    page.get_by_text("Cancel the request…").click()
    if not page.get_by_label("Institution").input_value():
        page.get_by_label("Institution").fill("Demo lab, Utrecht")
        page.get_by_label("Address").fill("Heidelberglaan 25\nUtrecht")
    yesterday = (clock.today() - dt.timedelta(days=1)).isoformat()
    page.get_by_label("Shipped on").fill(yesterday)
    page.get_by_label("Courier").fill("World Courier")
    page.get_by_label("Tracking number").fill("WC-777")
    page.get_by_role("button", name="Ship the picked tubes").click()
    assert "2 tube(s)" in page.get_by_role("status").inner_text()
