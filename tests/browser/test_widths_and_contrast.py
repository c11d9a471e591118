"""Every page at every width from 360 px (issue 17, point 8): no sideways scrolling, no text
under 12 px, and no contrast below 4.5:1 or other WCAG 2 A/AA failure that axe-core (the
npm package, its axe.min.js loaded into the page) finds, for every role's pages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_helpers import log_in, shot
from test_bench_pages import new_patient

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (360, 390, 1024, 1366)

SMALLEST_TEXT = """() => {
  let smallest = [1000, ''];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    if (!el || !el.offsetParent && getComputedStyle(el).position !== 'fixed') continue;
    if (el.closest('.visually-hidden, [aria-hidden=true]')) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < smallest[0]) smallest = [size, el.tagName + '.' + el.className + ': ' + node.textContent.trim().slice(0, 30)];
  }
  return smallest;
}"""

RUN_AXE = """async () => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}});
  return result.violations.map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
}"""


def _pages(made) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {
        "demo-technician": [
            "/",
            "/scan",
            f"/scan?code={made.tubes[0]}",
            f"/scan?box={made.box}&code={made.tubes[1]}",
            "/boxes",
            f"/boxes/{made.box}",
            f"/boxes/{made.box}/rack-scan",
            "/patients",
            f"/patients/{made.study_id}",
            "/requests",
            "/printers/queue",
        ],
        "demo-consent-officer": [
            "/consent",
            f"/patients/{made.study_id}/consent/new",
            f"/patients/{made.study_id}/consent/withdraw",
        ],
        "demo-researcher": ["/research", "/requests/new", "/requests"],
        "demo-manager": ["/printers", "/requests", "/reports"],
        "demo-admin": ["/users", "/users/demo-technician"],
    }


def test_every_page_fits_reads_and_passes_axe_at_every_width(page, live_server):
    """At 360, 390, 1024 and 1366 px: no sideways scroll, text ≥ 12 px, no axe-core WCAG 2
    A/AA violation (contrast ≥ 4.5:1 among them) on every page of every role."""
    if not AXE.exists():
        # CI installs it and sets BIOBANK_REQUIRE_AXE: there a missing axe fails the test.
        assert not os.environ.get("BIOBANK_REQUIRE_AXE"), f"{AXE} is missing"
        pytest.skip("axe-core is not installed: npm ci --prefix tests/browser")
    made = live_server.call(new_patient, 2, 1)
    # Injected by the browser itself into every page of this test: the pages' policy runs no
    # script but the server's files, and axe-core is no file of the server's.
    page.context.add_init_script(path=str(AXE))
    problems: list[str] = []
    for user, urls in _pages(made).items():
        if user != "demo-technician":
            page.get_by_role("button", name="Log out").click()
        log_in(page, user)
        for url in urls:
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 800})
                page.goto(url)
                scroll = page.evaluate("document.documentElement.scrollWidth")
                if scroll > width:
                    problems.append(f"{user} {url} @{width}: scrolls sideways ({scroll}px)")
                size, where = page.evaluate(SMALLEST_TEXT)
                if size < 12:
                    problems.append(f"{user} {url} @{width}: {size}px text ({where})")
                if url == "/scan":
                    look = page.get_by_role("button", name="Look up").bounding_box()
                    if look["x"] + look["width"] > width:
                        problems.append(f"/scan @{width}: the Look up button is cut off")
                if width in (360, 1366):
                    for violation in page.evaluate(RUN_AXE):
                        problems.append(f"{user} {url} @{width}: axe {violation}")
            if url in ("/scan", f"/boxes/{made.box}"):
                shot(page, f"width-1366{url.replace('/', '-').split('?')[0]}")
    assert problems == [], "\n".join(problems)
