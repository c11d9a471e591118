"""Requests without dead ends (issue 17, points 5 and 7): the whole filter becomes the
request, a request for more patients than have material says so to researcher and manager,
next steps and criteria read as words, and "Allocate the N available" is offered on the
request page instead of a page whose only link goes home."""

from __future__ import annotations

from browser_helpers import log_in, shot
from playwright.sync_api import expect


def test_the_filter_becomes_the_request_and_a_shortfall_is_said_and_offered(page):
    """A 0.2 mL minimum survives into the request; 40 patients asked, fewer available: a
    warning for both roles; the manager allocates what there is from the request page."""
    log_in(page, "demo-researcher", "/research?min_volume_ml=0.2")
    page.get_by_role("link", name="Ask for material").click()
    assert page.get_by_label("Minimum volume per tube (mL, optional)").input_value() == "0.2"
    page.get_by_label("Title").fill("Forty patients of plasma")
    page.get_by_label("What the material is for").fill("More than there is.")
    page.get_by_label("From how many patients").fill("40")
    page.get_by_role("group", name="Material").get_by_label("BM").check()
    page.get_by_role("group", name="Aliquot type").get_by_label("PLASMA", exact=True).check()
    page.get_by_role("group", name="Timepoint").get_by_label("DX").check()
    page.get_by_role("button", name="Make the request").click()
    number = page.get_by_role("heading", level=1).inner_text().split()[1]
    criteria = page.locator("dl.criteria").inner_text()
    assert "At least this volume per tube (mL)" in criteria and "0.2" in criteria
    assert "min_volume_ml" not in criteria and "aliquot types" not in criteria
    warning = page.locator(".short-warning").inner_text()
    assert "40 patient(s) asked for" in warning
    assert "Waiting for a biobank manager" in page.locator(".next-words").inner_text()
    shot(page, "request-short-researcher")
    page.get_by_role("button", name="Log out").click()
    log_in(page, "demo-manager", f"/requests/{number}")
    assert "40 patient(s) asked for" in page.locator(".short-warning").inner_text()
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("button", name="Allocate the tubes").click()  # all or nothing: refused
    assert page.get_by_role("alert").filter(has_text="Not allocated").is_visible()
    assert page.url.endswith(f"/requests/{number}")
    offer = page.get_by_role("button", name="Allocate the ").filter(has_text="available")
    offer.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("allocated")
    shot(page, "request-partial-allocated")
