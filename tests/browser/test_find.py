"""One search box on every page (issue 17, point 7): a tube code, a study ID or a request
number typed in the header leads straight to its page; nothing found says what it takes."""

from __future__ import annotations

from browser_helpers import log_in, shot
from sqlalchemy import select
from test_bench_pages import new_patient

from biobank.requests.models import SampleRequest


def _find(page, text: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_role("searchbox", name="Find a study ID, barcode or request")
    box.fill(text)
    box.press("Enter")
    page.wait_for_load_state()


def test_the_header_search_finds_tubes_patients_and_requests(page, live_server):
    """From the box list: a tube code opens its card, a study ID its patient; a manager
    finds a request by number; an unknown text is a page saying what the box takes."""
    made = live_server.call(new_patient, 2, 1)
    log_in(page, "demo-technician", "/boxes")
    _find(page, made.tubes[0])
    assert made.tubes[0] in page.locator("article.card").inner_text()
    _find(page, made.study_id.lower())
    assert made.study_id in page.get_by_role("heading", level=1).inner_text()
    _find(page, "NOTHING-LIKE-THIS")
    assert "Nothing found for NOTHING-LIKE-THIS" in page.get_by_role("alert").inner_text()
    shot(page, "find-nothing")
    page.get_by_role("button", name="Log out").click()
    number = live_server.call(
        lambda s: s.scalar(select(SampleRequest.number).order_by(SampleRequest.id))
    )
    log_in(page, "demo-manager", "/printers")
    _find(page, number.lower())
    assert page.get_by_role("heading", level=1).inner_text().startswith(f"Request {number}")
