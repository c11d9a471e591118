"""A 150 MB body against a real server: refused with 413, and the worker's memory stays put.

Before the limit, a 150 MB JSON body to /consent/check (any role) grew a worker from 100 to
400 MB, never given back. The server here is a real one in its own process (Werkzeug's,
threaded, on an ephemeral port), so its resident memory is measured apart from the tests'.
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
SERVER = textwrap.dedent("""
    import sys
    from werkzeug.serving import WSGIRequestHandler, make_server
    from biobank import create_app
    from biobank.auth import service
    from biobank.db import get_session

    app = create_app({"DATABASE_URL": sys.argv[1], "SECRET_KEY": "k" * 64})
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    with app.app_context():
        session = get_session()
        token = service.issue_token(session, service.create_user(session, "big", "technician",
                                                                 substudies=[], sites=[]))
        session.commit()

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    print(server.server_port, token, flush=True)
    server.serve_forever()
""")

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads a process's resident memory from /proc"
)


@pytest.fixture
def server(tmp_path):  # type: ignore[no-untyped-def]
    """A real server in its own process, on SQLite; yields (pid, port, token)."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, f"sqlite:///{tmp_path / 'm.db'}"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        port, token = process.stdout.readline().split()  # type: ignore[union-attr]
        yield process.pid, int(port), token
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]


def memory_mb(pid: int, which: str) -> float:
    """A process's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{which}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {which}")


def post_big(port: int, token: str, megabytes: int, chunked: bool) -> int:
    """POST a valid JSON body of about ``megabytes`` MB to /consent/check, sending until the
    server answers (one that refuses does not read the rest); the status it answered."""
    prefix, piece, suffix = (
        b'{"substudy": "DEMO", "barcodes": [',
        b'"' + b"X" * (MB - 4) + b'", ',
        b'"X"]}',
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        head = (
            "POST /api/v1/consent/check HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        )
        size = len(prefix) + megabytes * len(piece) + len(suffix)
        head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"

        def framed(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data

        frames = [framed(suffix) + (b"0\r\n\r\n" if chunked else b"")]
        frames += [framed(piece)] * megabytes
        pending = (head + "\r\n").encode() + framed(prefix)
        answer = b""
        while b"\r\n" not in answer:
            wanted = [sock] if pending or frames else []
            readable, writable, _ = select.select([sock], wanted, [], 60)
            if readable:
                try:
                    received = sock.recv(4096)
                except ConnectionResetError:
                    break
                if not received:
                    break
                answer += received
            elif writable:
                if not pending:
                    pending = frames.pop()
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    pending, frames = b"", []
            else:
                raise AssertionError("the server neither read nor answered for 60 s")
    assert answer, "the server closed the connection without answering"
    return int(answer.split()[1])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_150_mb_body_is_refused_and_memory_stays_put(server, chunked):
    """413 in answer to 150 MB of JSON; the server's memory, now and at its peak, grows by
    less than 30 MB (the body is never held: before, it peaked 150 MB and more higher)."""
    pid, port, token = server
    warm_up = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/consent/check",
        data=b'{"substudy": "DEMO", "barcodes": ["IF1"]}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError):  # first request, lazy imports: a 4xx
        urllib.request.urlopen(warm_up, timeout=60)
    before, peak_before = memory_mb(pid, "VmRSS"), memory_mb(pid, "VmHWM")
    assert post_big(port, token, 150, chunked) == 413
    assert memory_mb(pid, "VmRSS") - before < 30
    assert memory_mb(pid, "VmHWM") - peak_before < 30
