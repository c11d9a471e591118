"""The withdrawal form (issue 17, point 4): nobody is assumed to have asked, the day is
today where the biobank is, the impact is one table by box (tube, type, box, position) that
prints as the destruction pick list, and Confirm stays in view."""

from __future__ import annotations

from browser_helpers import log_in, shot, withdraw_storage
from test_bench_pages import new_patient

from biobank import clock


def test_the_withdrawal_form_starts_neutral_and_shows_the_impact_by_box(page, live_server):
    """No signer preselected; today's date; after the preview every tube is a row under its
    box with its type and position; Confirm visible without scrolling at 1366×768."""
    made = live_server.call(new_patient, 3, 2)
    page.set_viewport_size({"width": 1366, "height": 768})
    log_in(page, "demo-consent-officer", f"/patients/{made.study_id}/consent/withdraw")
    assert page.get_by_label("Asked for by").input_value() == ""
    assert page.get_by_label("Withdrawn on").input_value() == clock.today().isoformat()
    page.get_by_label("What is withdrawn").select_option("storage")
    page.get_by_label("Asked for by").select_option("legal_guardian")
    page.get_by_role("button", name="Show the impact").click()
    table = page.locator("table.impact-table")
    box_rows = table.locator("tbody", has_text=made.box_name)
    assert box_rows.locator("tr.group").inner_text().endswith(made.box_name)
    first = box_rows.locator("tr", has_text=made.tubes[0])
    cells = first.locator("td").all_inner_texts()
    assert cells[:4] == [made.tubes[0], "PLASMA", made.box_name, "A1"]
    assert "blocked" in cells[4] and "to destroy" in cells[4]
    assert table.locator("td.code", has_text=made.tubes[0]).count() == 1  # once, not twice
    confirm = page.get_by_role("button", name="Confirm the withdrawal")
    box = confirm.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 768, "Confirm is off screen"
    assert page.get_by_role("button", name="Print the destruction pick list").is_visible()
    shot(page, "withdrawal-impact-by-box")


def test_a_withdrawal_entered_in_error_is_corrected_from_its_page(page, live_server):
    """Recorded, then corrected with a reason: the page says so, the tubes are back in use and
    the correction form is gone."""
    made = live_server.call(new_patient, 2, 1)
    withdraw_storage(page, made.study_id)
    page.get_by_text("Entered in error? Correct this withdrawal").click()
    page.get_by_label("Why it was entered in error").fill("recorded on the wrong patient")
    page.get_by_role("button", name="Correct the withdrawal").click()
    status = page.get_by_role("status").first
    said = status.inner_text()
    assert "entered in error" in said and "2 tube(s) back in use" in said
    assert page.get_by_text("Corrected as entered in error", exact=True).is_visible()
    assert page.get_by_role("button", name="Correct the withdrawal").count() == 0
    assert all(
        cell == "cancelled"
        for cell in page.locator("table.list")
        .first.locator("tbody td:nth-child(2)")
        .all_inner_texts()
    )
    shot(page, "withdrawal-corrected")
