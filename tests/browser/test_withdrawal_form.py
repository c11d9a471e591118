"""The withdrawal form (issue 17, point 4): nobody is assumed to have asked, the day is
today where the biobank is, the impact is one table by box (tube, type, box, position) that
prints as the destruction pick list, and Confirm stays in view."""

from __future__ import annotations

from biobank import clock
from browser_helpers import log_in, shot
from test_bench_pages import new_patient


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
