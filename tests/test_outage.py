"""The database goes away and comes back: every route answers 503 with Retry-After and the
error shape meanwhile (never 401, never 500), and the service recovers by itself.

PostgreSQL through a fault-injecting TCP proxy (``tests/faultproxy.py``): the app's engine
connects to the proxy, the test cuts, stalls and restores the line. The shared server is
never stopped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy.engine import make_url

from biobank import create_app
from tests.conftest import PG_URL
from tests.faultproxy import FaultProxy
from tests.test_storage_concurrency import live  # noqa: F401  (the fixture)

behind_a_proxy = pytest.mark.skipif(not PG_URL, reason="a PostgreSQL server behind a TCP proxy")

CLIENTS = 4


@pytest.fixture
def proxied(live):  # type: ignore[no-untyped-def]  # noqa: F811
    """The live fixture's data, served by an app whose database line runs through a proxy."""
    url = make_url(PG_URL)  # type: ignore[arg-type]
    proxy = FaultProxy((url.host or "127.0.0.1", url.port or 5432))
    app = create_app(
        {
            "DATABASE_URL": url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False
            ),
            "TESTING": True,
            "DATABASE_CONNECT_TIMEOUT": 2.0,
            # An unhandled error is answered 500 as in production, not raised.
            "PROPAGATE_EXCEPTIONS": False,
        }
    )
    live.proxy, live.outage_app = proxy, app
    try:
        yield live
    finally:
        proxy.close()
        app.extensions["biobank.engine"].dispose()


def _routes(live) -> list[tuple[str, str, dict | None]]:  # type: ignore[no-untyped-def,type-arg]
    """What the clients keep sending: the scan, a token check, a list, a write, a page and
    the health check."""
    tube = live.tubes[0].barcode
    return [
        ("get", f"/api/v1/scan/{tube}", None),
        ("get", f"/api/v1/scan/{live.box.barcode}", None),
        ("get", "/api/v1/me", None),
        ("get", "/api/v1/freezers", None),
        ("post", f"/api/v1/aliquots/{tube}/status", {"status": "available"}),
        ("get", "/health", None),
    ]


@behind_a_proxy
def test_a_cut_and_a_stall_are_answered_503_and_the_service_recovers_alone(proxied):
    """Four clients loop over the scan, /me, a list, a write and /health while the line to
    PostgreSQL is cut for 1.5 s and then stalled for 1.5 s: every answer is 2xx, 409 or 503
    (503s with Retry-After and the error shape), none 401 or 500; after each restore the
    service answers 200 again by itself within 5 s."""
    live = proxied
    routes = _routes(live)
    phase = ["before"]
    outcomes: Counter[tuple[str, int]] = Counter()
    last_ok: dict[str, float] = {}
    bad: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(offset: int) -> None:
        client = live.outage_app.test_client()
        index = offset
        while not stop.is_set():
            method, url, body = routes[index % len(routes)]
            index += 1
            try:
                response = getattr(client, method)(url, json=body, headers=live.headers)
                status = response.status_code
                if status == 503 and (
                    response.headers.get("Retry-After") is None
                    or response.json.get("code") != 503
                    or not response.json.get("message")
                ):
                    bad.append(f"{url}: 503 without Retry-After or the error shape")
            except Exception as exc:  # noqa: BLE001  (what a server would answer 500)
                status = 500
                bad.append(f"{url}: {exc!r}"[:300])
            with lock:
                outcomes[(phase[0], status)] += 1
                if status < 400:
                    last_ok[phase[0]] = time.monotonic()

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    recovery: dict[str, float] = {}
    try:
        time.sleep(1.0)
        for fault in ("cut", "stall"):
            phase[0] = fault
            getattr(live.proxy, fault)()
            time.sleep(1.5)
            restored = time.monotonic()
            phase[0] = f"after {fault}"
            live.proxy.restore()
            while f"after {fault}" not in last_ok:
                assert time.monotonic() - restored < 5, f"no success within 5 s of the {fault}"
                time.sleep(0.01)
            recovery[fault] = last_ok[f"after {fault}"] - restored
            time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    print(
        "outcomes",
        dict(outcomes),
        "recovery (s)",
        {fault: round(seconds, 3) for fault, seconds in recovery.items()},
    )
    assert not bad, bad[:5]
    statuses = {status for _, status in outcomes}
    assert statuses <= {200, 409, 503}, outcomes
    assert outcomes[("cut", 503)] > 0, outcomes  # the cut was seen, and answered 503
    assert outcomes[("before", 200)] > 0 and outcomes[("after stall", 200)] > 0


@behind_a_proxy
def test_a_database_that_refuses_connections_is_a_503_on_the_scan_not_a_401(proxied):
    """The line is cut before the scan's first statement: the scan (which checks its token
    in its own statement) answers 503 with Retry-After, not 'unauthenticated'."""
    live = proxied
    live.outage_app.extensions["biobank.engine"].dispose()
    live.proxy.cut()
    client = live.outage_app.test_client()
    for url in (f"/api/v1/scan/{live.tubes[0].barcode}", "/api/v1/me", "/health"):
        response = client.get(url, headers=live.headers)
        assert response.status_code == 503, (url, response.status_code, response.json)
        assert response.headers["Retry-After"]
        assert response.json["code"] == 503 and "database" in response.json["message"]
    live.proxy.restore()
    assert (
        client.get(f"/api/v1/scan/{live.tubes[0].barcode}", headers=live.headers).status_code == 200
    )


def test_a_sqlite_file_that_cannot_be_opened_is_a_503(tmp_path):
    """SQLite: the database file's folder is gone (an unmounted volume): /health, the scan
    and the token check answer 503 with Retry-After, never 500 or 401."""
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'gone' / 'biobank.db'}",
            "TESTING": True,
            "PROPAGATE_EXCEPTIONS": False,
        }
    )
    client = app.test_client()
    headers = {"Authorization": "Bearer bbk_whatever"}
    for url in ("/health", "/api/v1/scan/IF00000017X", "/api/v1/me"):
        response = client.get(url, headers=headers)
        assert response.status_code == 503, (url, response.status_code, response.json)
        assert response.headers["Retry-After"] == "1"
        assert "database" in response.json["message"]
    app.extensions["biobank.engine"].dispose()
