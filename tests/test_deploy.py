"""The production stack (deploy/serve: nginx in front of gunicorn), over real sockets: slow
clients do not take the service down, an oversized body is refused by the proxy.

Runs where nginx is installed (Debian's, /usr/sbin/nginx; CI installs it), on a database of
its own (SQLite, or PostgreSQL when BIOBANK_TEST_DATABASE_URL is set).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.db_helpers import one_tube_biobank, private_database

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="needs nginx (apt-get install nginx)"
)

SLOW_CLIENTS = 16


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """deploy/serve with two gunicorn workers, on a database of its own."""
    tmp = tmp_path_factory.mktemp("deploy")
    databases = private_database(tmp, "deploy")
    url = next(databases)
    data = one_tube_biobank(url)
    port = _free_port()
    log = (tmp / "serve.log").open("w+b")
    process = subprocess.Popen(
        [str(ROOT / "deploy" / "serve"), "--port", str(port), "--workers", "2", "--quiet"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "BIOBANK_DATABASE_URL": url,
            "BIOBANK_SECRET_KEY": "deploy-test-" + "0" * 32,
            # The lock after the free login failures outlasts a slow machine's next attempt.
            "BIOBANK_LOGIN_DELAY_SECONDS": "600",
        },
    )
    try:
        upstream = None
        deadline = time.monotonic() + 120
        while upstream is None:
            assert process.poll() is None, (tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp / "serve.log").read_text()
            found = re.search(rb"gunicorn on 127\.0\.0\.1:(\d+)", (tmp / "serve.log").read_bytes())
            upstream = int(found.group(1)) if found else None
            time.sleep(0.2)
        yield SimpleNamespace(port=port, upstream=upstream, **vars(data))
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        next(databases, None)


def _get(port: int, path: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class SlowClients:
    """Connections that send a request's header one line a second and never finish it."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets = [
            socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)
        ]
        for sock in self.sockets:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: biobank\r\n")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(1.0):
            for sock in self.sockets:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_sixteen_slow_clients_do_not_stop_the_scans(stack):
    """16 connections hold requests open (a header line a second) against nginx in front
    of 2 gunicorn workers: scans still answer 200, each within a second."""
    assert _get(stack.port, f"/api/v1/scan/{stack.barcode}", stack.headers, 60)[0] == 200
    slow = SlowClients(stack.port, SLOW_CLIENTS)
    try:
        time.sleep(1.5)  # every slow request has begun, and trickled
        for _ in range(10):
            status, body = _get(stack.port, f"/api/v1/scan/{stack.barcode}", stack.headers, 1.0)
            assert status == 200
            assert json.loads(body)["barcode"] == stack.barcode
    finally:
        slow.close()


def test_without_the_proxy_the_same_slow_clients_starve_the_workers(stack):
    """The reason for nginx, shown: the same 16 slow connections sent to gunicorn itself
    (its loopback port) hold both sync workers, and a scan gets no answer within a second."""
    assert _get(stack.upstream, f"/api/v1/scan/{stack.barcode}", stack.headers, 60)[0] == 200
    slow = SlowClients(stack.upstream, SLOW_CLIENTS)
    try:
        time.sleep(1.5)
        with pytest.raises(TimeoutError):
            _get(stack.upstream, f"/api/v1/scan/{stack.barcode}", stack.headers, 1.0)
    finally:
        slow.close()


def test_an_oversized_body_is_refused_413_by_the_proxy_in_the_error_shape(stack):
    """A 2 MB body gets 413 from nginx (it never reaches gunicorn), as JSON in the one
    error shape."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/api/v1/patients",
            body=b"{" + b" " * 2_000_000 + b"}",
            headers={**stack.headers, "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413
    assert response.getheader("Server") == "nginx"
    assert body["code"] == 413 and "1 MiB" in body["message"]


def test_the_proxy_passes_the_client_address_the_app_believes(stack):
    """A forged X-Forwarded-For from the client is replaced by nginx: the app (one trusted
    proxy) sees the client's real address, so a guesser cannot pose as another client."""
    assert sys.platform.startswith("linux")  # loopback addresses are 127.0.0.1 here
    for _ in range(5):
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        connection.request("GET", "/login")
        page = connection.getresponse()
        cookie = page.getheader("Set-Cookie").split(";")[0]
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page.read()).group(1)
        connection.request(
            "POST",
            "/login",
            body=f"username=nobody&password=wrong!&csrf_token={token.decode()}".encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": cookie,
                "X-Forwarded-For": f"203.0.113.{_}",
            },
        )
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 401
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    connection.request("GET", "/login")
    page = connection.getresponse()
    cookie = page.getheader("Set-Cookie").split(";")[0]
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.read()).group(1)
    connection.request(
        "POST",
        "/login",
        body=f"username=nobody&password=wrong!&csrf_token={token.decode()}".encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "X-Forwarded-For": "203.0.113.99",
        },
    )
    assert connection.getresponse().status == 429
    connection.close()
