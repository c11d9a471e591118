"""Lists that sort and export (issue 17, point 7): a click on a column's name sorts the
list, "Download this list as CSV" gives the rows through the safe CSV writer, and the box
page prints a map with full barcodes, the date and who printed it."""

from __future__ import annotations

import csv
import io

from browser_helpers import log_in, shot, withdraw_storage
from test_bench_pages import new_patient


def test_lists_sort_export_and_the_box_map_prints_whole(page, live_server):
    """Boxes sort by a column both ways; the CSV has the listed boxes; the printed box page
    carries each tube's full barcode, the date and the user."""
    made = live_server.call(new_patient, 2, 1)
    log_in(page, "demo-technician", "/boxes")
    page.get_by_role("button", name="Taken").click()
    taken = [int(t) for t in page.locator("table.list tbody tr td:nth-child(4)").all_inner_texts()]
    assert taken == sorted(taken)
    page.get_by_role("button", name="Taken").click()
    again = [int(t) for t in page.locator("table.list tbody tr td:nth-child(4)").all_inner_texts()]
    assert again == sorted(taken, reverse=True)
    href = page.get_by_role("link", name="Download this list as CSV").get_attribute("href")
    got = page.request.get(href)
    assert got.status == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(got.text())))
    assert made.box in {row["barcode"] for row in rows}
    page.goto(f"/patients?q={made.study_id}")
    patients = page.request.get(
        page.get_by_role("link", name="Download this list as CSV").get_attribute("href")
    )
    assert made.study_id in patients.text()
    page.goto(f"/boxes/{made.box}")
    user = page.locator(".who strong").inner_text()
    page.emulate_media(media="print")
    printed = page.locator("main").inner_text()
    assert made.tubes[0] in printed  # the whole barcode, not its last 5 characters
    line = page.locator(".printed-by").inner_text()
    assert " printed 20" in line and line.endswith(f" by {user}"), line
    shot(page, "box-map-print")


def _csv_behind(page, link_name: str, nth: int = 0) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    href = page.get_by_role("link", name=link_name).nth(nth).get_attribute("href")
    got = page.request.get(href)
    assert got.status == 200 and got.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(got.text())))


def test_every_list_of_the_consent_desk_exports_as_csv(page, live_server):
    """The desk's lists download as CSV: the withdrawal just recorded is in them, and its
    tubes in the destruction tasks."""
    made = live_server.call(new_patient, 2, 1)
    withdraw_storage(page, made.study_id)
    page.goto("/consent")
    assert page.get_by_role("link", name="Download this list as CSV").count() == 4
    outstanding = _csv_behind(page, "Download this list as CSV", 0)
    assert made.study_id in {row["study_id"] for row in outstanding}
    tasks = _csv_behind(page, "Download this list as CSV", 2)
    assert set(made.tubes) <= {row["barcode"] for row in tasks}
    every = _csv_behind(page, "Download every withdrawal as CSV")
    assert made.study_id in {row["study_id"] for row in every}


def test_the_requests_list_exports_as_csv(page, live_server):
    """The manager's requests list, as listed, in the CSV."""
    log_in(page, "demo-manager", "/requests")
    requests = _csv_behind(page, "Download this list as CSV")
    listed = page.locator("table.list tbody tr td:first-child").all_inner_texts()
    assert [row["number"] for row in requests] == listed
