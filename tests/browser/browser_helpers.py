"""What the browser tests share: the live server's handle, logging in, screenshots, and
the scan timings collected for the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DEMO_PASSWORD = "demo-password"
# Enter → card (or box map) on screen, per scan: (what was shown, ms measured in the page,
# ms around Playwright's key press).
SCAN_TIMINGS: list[tuple[str, float, float]] = []


@dataclass
class LiveServer:
    """The app served on localhost, and what went wrong inside it."""

    app: Flask
    url: str
    errors: list[str] = field(default_factory=list)

    def call(self, function: Any, *args: Any) -> Any:
        """Run ``function(session, *args)`` in the server's database and commit."""
        from biobank.db import get_session

        with self.app.app_context():
            session = get_session()
            result = function(session, *args)
            session.commit()
            return result


def log_in(tab: Any, username: str, then: str = "/") -> None:
    """Log in through the login form, as a person would."""
    tab.goto(f"/login?next={then}")
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Password").fill(DEMO_PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(f"**{then}")


def shot(tab: Any, name: str) -> None:
    """Save a screenshot of the whole page as tests/artifacts/<name>.png."""
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def withdraw_storage(page: Any, study_id: str) -> None:
    """As the demo consent officer, record a storage withdrawal through the form (the
    mother asked; today), and land on the withdrawal's page."""
    log_in(page, "demo-consent-officer", f"/patients/{study_id}/consent/withdraw")
    page.get_by_label("What is withdrawn").select_option("storage")
    page.get_by_label("Asked for by").select_option("mother")
    page.get_by_role("button", name="Show the impact").click()
    page.get_by_role("button", name="Confirm the withdrawal").click()
    page.wait_for_url("**/consent/withdrawals/*")
