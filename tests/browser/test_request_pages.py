"""Sample requests in a real browser: a researcher sees what the sub-study may receive and
asks for material; a manager approves and allocates; the tubes are picked by scanning from
the printable pick list; the manager ships them and prints the manifest."""

from __future__ import annotations

from browser_helpers import log_in, shot
from playwright.sync_api import expect


def test_create_approve_pick_and_ship_a_request(page):
    """The whole road of a request through the pages, each role in its own session."""
    log_in(page, "demo-researcher", "/research")
    assert page.get_by_role("heading", name="What DEMO may receive").is_visible()
    assert page.locator("table.avail td.av strong").count() > 0
    shot(page, "research-availability")
    page.get_by_role("link", name="Ask for material").click()
    page.get_by_label("Title").fill("Plasma for a cfDNA assay")
    page.get_by_label("What the material is for").fill("Validating an MRD assay on plasma.")
    page.get_by_label("From how many patients").fill("2")
    page.get_by_role("group", name="Material").get_by_label("BM").check()
    page.get_by_role("group", name="Aliquot type").get_by_label("PLASMA", exact=True).check()
    page.get_by_role("group", name="Timepoint").get_by_label("DX").check()
    shot(page, "request-form")
    page.get_by_role("button", name="Make the request").click()
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading.startswith("Request RQ") and "submitted" in heading
    number = heading.split()[1]
    page.get_by_role("button", name="Log out").click()

    log_in(page, "demo-manager", f"/requests/{number}")
    assert "Matching now" in page.locator("main").inner_text()
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("button", name="Allocate the tubes").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("allocated")
    shot(page, "request-allocated")
    page.get_by_role("link", name="Pick list").click()
    expect(page.locator("table.pick-list td.code").first).to_be_visible()  # the new page
    codes = page.locator("table.pick-list td.code").all_inner_texts()
    assert len(codes) == 2
    shot(page, "pick-list")
    page.get_by_label("Scan each tube as you take it out").fill("IF-NOT-IN-IT-1")
    page.get_by_label("Scan each tube as you take it out").press("Enter")
    assert page.get_by_role("alert").is_visible()
    for code in codes:
        field = page.get_by_label("Scan each tube as you take it out")
        field.fill(code.lower())  # scanners may send lower case
        field.press("Enter")
        assert page.get_by_role("status").filter(has_text=f"{code} picked").is_visible()
    assert "all tubes picked" in page.get_by_role("status").inner_text()
    page.get_by_role("link", name="Back to the request").click()
    page.get_by_label("Courier").fill("World Courier")
    page.get_by_label("Tracking number").fill("WC-123456")
    page.get_by_label("Coolant").select_option("dry_ice")
    page.get_by_label("Recipient", exact=True).fill("Dr. R. Searcher")
    page.get_by_label("Institution").fill("Demo lab, Utrecht")
    page.get_by_label("Address").fill("Heidelberglaan 25\nUtrecht")
    page.get_by_role("button", name="Ship the picked tubes").click()
    assert "2 tube(s)" in page.get_by_role("status").inner_text()
    expect(page.get_by_role("heading", level=1)).to_contain_text("shipped")
    shot(page, "request-shipped")
    page.get_by_role("link", name="Manifest (printable)").click()
    assert page.get_by_role("heading", name=f"Shipment manifest {number}").is_visible()
    for code in codes:
        assert code in page.locator("main").inner_text()
    shot(page, "manifest")
    page.emulate_media(media="print")
    shot(page, "manifest-print")


def test_a_researcher_sees_the_state_of_their_request(page):
    """A researcher's own requests, with their state, from the availability page."""
    log_in(page, "demo-researcher", "/requests")
    assert page.get_by_role("heading", name="Requests").is_visible()
    page.get_by_role("link", name="New request").is_visible()
    shot(page, "requests-researcher")
    page.goto("/printers")
    assert page.get_by_role("heading", name="Not for your role").is_visible()
