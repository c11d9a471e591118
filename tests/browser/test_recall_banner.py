"""Recalls (issue 17, point 6): one notice per tube and request however many withdrawals
touch the tube, shown as a banner on top of the researcher's and manager's pages until it
is acknowledged."""

from __future__ import annotations

from browser_helpers import log_in, shot
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import withdrawal
from biobank.patients.models import Patient
from biobank.requests.models import RequestAliquot, SampleRequest
from biobank.samples.models import Aliquot, Sample


def _withdraw_twice(session: Session) -> tuple[str, list[str]]:
    """The demo's shipped request: its first tube's patient withdraws DEMO, then storage."""
    request = session.scalar(
        select(SampleRequest).where(SampleRequest.state == "shipped").order_by(SampleRequest.id)
    )
    tube = session.scalar(
        select(Aliquot)
        .join(RequestAliquot, RequestAliquot.aliquot_id == Aliquot.id)
        .where(RequestAliquot.request_id == request.id)
        .order_by(Aliquot.id)
    )
    patient = session.scalar(
        select(Patient)
        .join(Sample, Sample.patient_id == Patient.id)
        .where(Sample.id == tube.sample_id)
    )
    for scope in ("DEMO", "storage"):
        withdrawal.withdraw(
            session,
            "browser-fixture",
            patient,
            {
                "scope": scope,
                "date": clock.today(),
                "requested_by": "legal_guardian",
                "reason": f"browser test: {scope}",
            },
        )
    codes = list(
        session.scalars(
            select(Aliquot.barcode)
            .join(RequestAliquot, RequestAliquot.aliquot_id == Aliquot.id)
            .join(Sample, Sample.id == Aliquot.sample_id)
            .where(RequestAliquot.request_id == request.id, Sample.patient_id == patient.id)
        )
    )
    return request.number, codes


def test_two_withdrawals_of_one_shipped_tube_make_one_banner_line_until_acknowledged(
    page, live_server
):
    """Two withdrawals touch the same shipped tube: the researcher's home page carries one
    banner line per tube; the request lists it once with one Acknowledge; once acknowledged
    the banner is gone."""
    number, codes = live_server.call(_withdraw_twice)
    log_in(page, "demo-researcher", "/research")
    banner = page.locator(".recall-banner")
    assert banner.is_visible()
    assert banner.bounding_box()["y"] < 300, "the banner is on top of the page"
    for code in codes:
        assert banner.inner_text().count(code) == 1
    shot(page, "recall-banner")
    page.goto(f"/requests/{number}")
    rows = page.locator("section[aria-labelledby=recall-title] tbody tr")
    assert rows.count() == len(codes)
    for code in codes:
        row = page.locator("section[aria-labelledby=recall-title] tbody tr", has_text=code)
        assert row.get_by_role("button", name="Acknowledge").count() == 1
        row.get_by_role("button", name="Acknowledge").click()
    assert page.locator(".recall-banner").count() == 0
    page.get_by_role("button", name="Log out").click()
    log_in(page, "demo-manager", "/requests")
    assert page.locator(".recall-banner").count() == 0
