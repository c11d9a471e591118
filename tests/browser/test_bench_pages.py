"""The bench pages in a real browser: log in, scan a tube, place tubes by scanning, a rack
scan, a withdrawal that turns a tube red. Each test brings its own patient, tubes and box
(made through the services in the live server's database) on top of the demo data."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from browser_helpers import SCAN_TIMINGS, log_in, shot
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import service as consent
from biobank.patients import service as patients
from biobank.samples import service as samples
from biobank.storage import operations
from biobank.storage import service as storage
from biobank.storage.models import Container

ACTOR = "browser-fixture"
NUMBERING = samples.Numbering()
FORM = "IF21-BB-2.0-EN"  # a demo consent form covering storage, data and DEMO
_serial = itertools.count(1)


def new_patient(
    session: Session, tubes: int = 4, stored: int = 1, consented: bool = True
) -> SimpleNamespace:
    """A patient with storage and DEMO consent (unless not ``consented``), ``tubes`` plasma
    tubes, the first ``stored`` of them in a new empty 9×9 box in the demo freezer."""
    n = next(_serial)
    diagnosed = clock.today() - dt.timedelta(days=120)
    patient = patients.register(
        session,
        ACTOR,
        {
            "study_id": f"IF21-BR-{time.time_ns() % 10**9:09d}-{n}",
            "site": "NL-PMC",
            "sex": "M",
            "diagnosis": "B-ALL",
            "fusion_partner": "AFF1",
            "diagnosis_date": diagnosed,
            "age_at_diagnosis_days": 200,
            "wbc_at_diagnosis": Decimal("80"),
            "day8_blasts_per_ul": None,
            "prednisone_response": "good",
        },
    )
    collected = dt.datetime.combine(diagnosed, dt.time(9), dt.UTC)
    sample = samples.register_sample(
        session,
        ACTOR,
        {
            "study_id": patient.study_id,
            "timepoint": "DX",
            "unscheduled_reason": None,
            "material": "BM",
            "collected_at": collected,
            "received_at": collected + dt.timedelta(hours=3),
            "volume_ml": Decimal("3"),
            "container_code": "PED",
            "precentrifugation_delay_hours": Decimal("3"),
            "precentrifugation_temperature": "RT",
            "accession_number": None,
            "notes": None,
        },
        NUMBERING,
    )
    made = samples.split(
        session,
        ACTOR,
        sample,
        [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.2")} for _ in range(tubes)],
        NUMBERING,
    )
    for component in ("storage", "data", "DEMO") if consented else ():
        consent.record_consent(
            session,
            ACTOR,
            patient,
            {
                "component": component,
                "decision": "given",
                "signed_on": diagnosed,
                "form_version": FORM,
                "signed_by": "mother",
            },
        )
    rack = session.scalar(select(Container).where(Container.kind == "rack").order_by(Container.id))
    box = storage.create_box(
        session,
        ACTOR,
        {"box_type": "9X9", "parent": rack.barcode, "name": f"Browser {patient.study_id[-6:]}"},
        NUMBERING,
    )
    for index, tube in enumerate(made[:stored]):
        operations.place(session, ACTOR, tube, box, f"A{index + 1}")
    return SimpleNamespace(
        study_id=patient.study_id,
        tubes=[t.barcode for t in made],
        box=box.barcode,
        box_name=box.name,
    )


def scan(tab: Any, code: str) -> float:
    """Scan a code as a keyboard-wedge scanner does; wait for the card; the page's timing."""
    tab.evaluate("document.getElementById('scan-timing').removeAttribute('data-ms')")
    field = tab.get_by_label("Scan a tube or a box")
    field.fill(code)
    started = time.perf_counter()
    field.press("Enter")
    timing = tab.wait_for_selector("#scan-timing[data-ms]", state="attached")
    round_trip = (time.perf_counter() - started) * 1000
    measured = float(timing.get_attribute("data-ms"))
    result = tab.locator("#scan-result > .scan-result")
    kind, box = result.get_attribute("data-kind"), result.get_attribute("data-box")
    shown = {
        "aliquot": "tube card" + (" with the open box's map" if box else ""),
        "box": "box map",
    }.get(kind or "", "refusal (unknown code)")
    SCAN_TIMINGS.append((shown, measured, round_trip))
    return measured


def test_logging_in_and_out(page):
    """The front page is the login form; a wrong password is refused; the right one leads to
    the home page of the role; logging out ends the session."""
    page.goto("/")
    shot(page, "login")
    page.get_by_label("Username").fill("demo-technician")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "Unknown username or wrong password."
    log_in(page, "demo-technician")
    assert page.get_by_role("link", name="Scan station").is_visible()
    shot(page, "home-technician")
    page.get_by_role("button", name="Log out").click()
    page.goto("/scan")
    assert "/login" in page.url


def test_scanning_a_tube_shows_its_card_and_its_keys_work(page, live_server):
    """Scan (code + Enter): the card at once, consent in green with the reason, location
    and events; Alt+T reaches Thaw from the keyboard; the input keeps the focus."""
    made = live_server.call(new_patient)
    log_in(page, "demo-technician", "/scan")
    assert page.evaluate("document.activeElement.id") == "scan-code"
    for code in made.tubes[:1] * 8:  # repeated scans: the timing of a warm station
        scan(page, code)
    card = page.locator("article.card")
    assert made.tubes[0] in card.inner_text() and made.study_id in card.inner_text()
    assert card.locator(".consent-ok").inner_text().startswith("✓")
    assert "A1" in card.inner_text() and made.box_name in card.inner_text()
    assert page.evaluate("document.activeElement.id") == "scan-code"
    shot(page, "scan-card")
    page.keyboard.press("Alt+t")
    assert page.evaluate("document.activeElement.id") == "thaw-reason"
    page.keyboard.type("assay")
    page.keyboard.press("Enter")
    page.get_by_role("status").filter(has_text="thawed").wait_for()
    assert "thawed" in page.locator(".flags").inner_text()
    assert page.get_by_role("button", name="Refreeze").is_visible()


def test_a_wrong_code_is_shown_plainly(page, live_server):
    """An unknown code: an alert in words, and the input turns red (no sound)."""
    log_in(page, "demo-technician", "/scan")
    scan(page, "NOT-A-TUBE-42")
    alert = page.get_by_role("alert")
    assert "not a code this biobank knows" in alert.inner_text()
    assert "cue-error" in page.locator("#scan-form").get_attribute("class")
    shot(page, "scan-unknown-code")


def test_placing_tubes_into_a_box_by_scanning(page, live_server):
    """Scan a box: its map opens. Scan tubes: each goes to the next free place, highlighted.
    Click a free place, scan: the tube goes there."""
    made = live_server.call(new_patient)
    log_in(page, "demo-technician", "/scan")
    scan(page, made.box)
    assert page.locator("table.boxmap").is_visible()
    assert page.locator(".cell.is-target").get_attribute("data-position") == "A2"
    scan(page, made.tubes[1])
    assert (
        page.locator(f'.cell[data-barcode="{made.tubes[1]}"]').get_attribute("data-position")
        == "A2"
    )
    assert "is-highlight" in page.locator(f'.cell[data-barcode="{made.tubes[1]}"]').get_attribute(
        "class"
    )
    page.locator('.cell.free[data-position="E5"]').click()
    assert page.locator(".cell.is-target").get_attribute("data-position") == "E5"
    scan(page, made.tubes[2])
    assert page.get_by_role("status").filter(has_text=f"{made.tubes[2]} stored: E5").is_visible()
    shot(page, "box-map-placing")
    page.locator(f'.cell[data-barcode="{made.tubes[2]}"]').click()
    page.locator(".cell.is-picked").wait_for()
    page.locator('.cell.free[data-position="I9"]').click()
    page.get_by_role("status").filter(
        has_text=f"{made.tubes[2]} moved from E5 of {made.box_name} to I9"
    ).wait_for()
    page.goto(f"/boxes/{made.box}")
    shot(page, "box-page")
    assert (
        page.locator(f'.cell[data-barcode="{made.tubes[2]}"]').get_attribute("data-position")
        == "I9"
    )


def test_uploading_a_rack_scan_and_confirming_it(page, live_server, tmp_path):
    """The scan is shown as a coloured grid first: a match, a moved tube, a missing one, an
    unknown and an unreadable code; the unknown tube and the unread well must be ticked as
    seen before the confirm goes through; confirming applies the moves."""
    made = live_server.call(new_patient, 4, 2)  # A1 and A2 stored
    scan_file = tmp_path / "rack.csv"
    scan_file.write_text(
        f"Rack,Position,Tube\n{made.box},A1,{made.tubes[0]}\n"
        f"{made.box},B1,{made.tubes[2]}\n{made.box},C1,FX99999999\n"
        f"{made.box},C2,NO READ\n"
    )
    log_in(page, "demo-technician", f"/boxes/{made.box}/rack-scan")
    page.get_by_label("The rack scanner's CSV file").set_input_files(str(scan_file))
    page.get_by_role("button", name="Compare with the box").click()
    for position, finding in (
        ("A1", "match"),
        ("B1", "moved"),
        ("A2", "missing"),
        ("C1", "unknown"),
        ("C2", "unreadable"),
    ):
        cell = page.locator(f'.rackmap .cell[title^="{position}:"]')
        assert f"rk-{finding}" in cell.get_attribute("class"), position
    shot(page, "rack-scan-preview")
    page.get_by_role("button", name="Confirm the scan").click()  # the browser asks first
    assert page.get_by_role("button", name="Confirm the scan").is_visible()
    page.get_by_label("not registered in the biobank").check()
    page.get_by_label("could not be read by the scanner").check()
    page.get_by_role("button", name="Confirm the scan").click()
    assert "1 tube(s) moved" in page.get_by_role("status").inner_text()
    assert (
        page.locator(f'.cell[data-barcode="{made.tubes[2]}"]').get_attribute("data-position")
        == "B1"
    )
    shot(page, "rack-scan-confirmed")


def test_a_withdrawal_with_its_impact_turns_the_tube_red(page, live_server):
    """The officer sees the impact first (nothing written), confirms, and the tube's card
    and box map turn red: blocked, consent withdrawn."""
    made = live_server.call(new_patient, 3, 2)
    log_in(page, "demo-consent-officer", f"/patients/{made.study_id}")
    assert page.locator(".consent-line.consent-ok").is_visible()
    shot(page, "patient")
    page.get_by_role("link", name="Record a withdrawal").click()
    page.get_by_label("What is withdrawn").select_option("storage")
    page.get_by_label("Withdrawn on").fill(clock.today().isoformat())
    page.get_by_label("Asked for by").select_option("mother")
    page.get_by_role("button", name="Show the impact").click()
    assert "3 tube(s) blocked" in page.get_by_role("status").inner_text()
    shot(page, "withdrawal-preview")
    page.get_by_role("button", name="Confirm the withdrawal").click()
    assert "actions outstanding" in page.locator("main").inner_text()
    shot(page, "withdrawal-recorded")
    page.goto("/scan")
    scan(page, made.tubes[0])
    card = page.locator("article.card")
    assert card.locator(".consent-no").is_visible()
    assert "withdrawn" in card.locator(".consent-no").inner_text()
    assert card.locator(".badge.st-blocked").inner_text() == "blocked"
    shot(page, "scan-card-withdrawn")
    scan(page, made.box)
    assert "cs-no" in page.locator(f'.cell[data-barcode="{made.tubes[0]}"]').get_attribute("class")
    page.goto("/consent")
    assert made.study_id in page.locator("main").inner_text()
    shot(page, "consent-desk")


def test_the_station_on_a_lab_tablet(chromium, live_server):
    """Portrait tablet: the card and the box map stack and stay usable."""
    made = live_server.call(new_patient, 2, 2)
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 800, "height": 1280}, has_touch=True
    )
    tab = context.new_page()
    try:
        log_in(tab, "demo-technician", "/scan")
        scan(tab, made.box)
        scan(tab, made.tubes[0])
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 800, f"the page scrolls sideways ({width}px)"
        shot(tab, "tablet-scan")
    finally:
        context.close()


def test_pages_other_roles_see(page):
    """A manager's printers page and a researcher refused the scan station (a page, not
    JSON)."""
    log_in(page, "demo-manager", "/printers")
    assert page.get_by_role("heading", name="Label printers").is_visible()
    shot(page, "printers")
    page.get_by_role("button", name="Log out").click()
    log_in(page, "demo-researcher")
    page.goto("/scan")
    assert page.get_by_role("heading", name="Not for your role").is_visible()


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.name || e.id)"""


def test_every_form_field_has_a_label(page, live_server):
    """On every page of every role, each visible form field has a label (screen readers,
    and tapping the label on a tablet)."""
    made = live_server.call(new_patient, 2, 1)
    pages = {
        "demo-technician": [
            "/",
            "/scan",
            f"/scan?code={made.tubes[0]}",
            f"/scan?box={made.box}&code={made.tubes[1]}",
            "/boxes",
            f"/boxes/{made.box}/rack-scan",
            "/patients",
            f"/patients/{made.study_id}",
            "/requests",
        ],
        "demo-consent-officer": [
            "/consent",
            f"/patients/{made.study_id}/consent/new",
            f"/patients/{made.study_id}/consent/withdraw",
        ],
        "demo-researcher": ["/research", "/requests/new"],
        "demo-manager": ["/printers", "/requests"],
    }
    for user, urls in pages.items():
        log_in(page, user)
        for url in urls:
            page.goto(url)
            assert page.evaluate(UNLABELLED) == [], url
        page.get_by_role("button", name="Log out").click()
