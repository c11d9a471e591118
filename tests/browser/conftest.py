"""Browser tests: Debian's Chromium driven by Playwright against the app served on a real
localhost port, one browser and one server for the whole session.

The server cannot share the per-test rolled-back transaction of the other tests, so it gets
a database of its own, built with `db upgrade` and `demo load`: a fresh SQLite file, or on
PostgreSQL (BIOBANK_TEST_DATABASE_URL set) a database named after the test database with
``_browser`` appended, created and dropped here. Skipped only when /usr/bin/chromium is
absent (CI installs it).
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, SCAN_TIMINGS, LiveServer
from db_helpers import private_database
from flask import got_request_exception
from werkzeug.serving import make_server

from biobank import create_app


def _closing_at_once(app: Any) -> Any:
    """The app with every answer read whole and its iterator closed before werkzeug writes it.

    When a browser drops a connection, werkzeug's development server can raise while draining
    the socket and skip closing the answer's iterator; a static file then stays open until
    the garbage collector finds it, and its ResourceWarning fails whichever test runs then.
    """

    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        answer = app(environ, start_response)
        try:
            return list(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()

    return wsgi


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with the demo data, served by werkzeug on an ephemeral localhost port."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    database = private_database(tmp_path_factory.mktemp("browser"), "browser")
    url = next(database)
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "browser-tests",
            "SESSION_COOKIE_SECURE": False,
            "PRINTER_TIMEOUT": 1.0,
            # Fake printers listen on 127.0.0.1 (the demo printer at port 9).
            "PRINTER_NETWORKS": "127.0.0.0/8",
            "PRINTER_PORTS": "1-65535",
        }
    )
    with app.app_context():
        runner = app.test_cli_runner()
        for args in (["db", "upgrade"], ["demo", "load"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, result.output
    server = LiveServer(app, "")
    got_request_exception.connect(
        lambda _sender, exception, **_kw: server.errors.append(repr(exception)), app, weak=False
    )
    httpd = make_server("127.0.0.1", 0, _closing_at_once(app), threaded=True)
    server.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    thread.join(timeout=10)
    httpd.server_close()
    app.extensions["biobank.engine"].dispose()
    next(database, None)


@pytest.fixture(scope="session")
def chromium(live_server: LiveServer) -> Iterator[Any]:
    """One headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    driver = sync_playwright().start()
    browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    yield browser
    browser.close()
    driver.stop()


@pytest.fixture
def page(chromium: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; script errors and server errors fail
    the test."""
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    script_errors: list[str] = []
    tab.on("pageerror", lambda error: script_errors.append(str(error)))
    # A script or handler the Content-Security-Policy blocked is a page that does not work.
    tab.on(
        "console",
        lambda message: (
            script_errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    seen = len(live_server.errors)
    yield tab
    context.close()
    assert script_errors == [], script_errors
    assert live_server.errors[seen:] == [], live_server.errors[seen:]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how long a scan takes from Enter to the card on screen."""
    if not SCAN_TIMINGS:
        return
    terminalreporter.write_sep("-", "scan station: Enter → card on screen")
    for shown in sorted({kind for kind, _, _ in SCAN_TIMINGS}):
        page_ms = [ms for kind, ms, _ in SCAN_TIMINGS if kind == shown]
        trip_ms = [ms for kind, _, ms in SCAN_TIMINGS if kind == shown]
        terminalreporter.write_line(
            f"{shown}: {len(page_ms)} scans; in the page (performance.now, Enter to painted): "
            f"median {statistics.median(page_ms):.0f} ms, max {max(page_ms):.0f} ms; around "
            f"Playwright's key press: median {statistics.median(trip_ms):.0f} ms, "
            f"max {max(trip_ms):.0f} ms"
        )
