"""``python -m bench.load``: the scan endpoint under load, served by the production stack,
next to the bare route served the same way.

Each app is served by ``deploy/serve`` (nginx in front of gunicorn's ``WORKERS`` sync
workers, as the README's "Running in production" deploys it; ``--no-proxy``: gunicorn
alone, with deploy/gunicorn.conf.py) on 127.0.0.1 only, warmed up, then driven for
``--duration`` seconds from another process: wrk (Debian's ``wrk``) when it is installed,
else a bounded Python load generator
(processes with keep-alive ``http.client`` connections). Both stop by themselves. Reported:
throughput, p50/p99 latency, errors, and each worker's peak RSS (VmHWM).

The database is the one ``python -m bench --database-url URL`` built (it is not emptied
here); an empty one is built first with ``--aliquots``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import build, report
from bench.measure import percentile, random_codes, user_token
from biobank import create_app
from biobank.db import get_session
from biobank.samples.models import Aliquot

ROOT = Path(__file__).resolve().parent.parent
WARMUP_SECONDS = 3
TARGET_SHARE = 0.5  # of the bare route's throughput
TARGET_RSS_MB = 150


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--database-url",
        required=True,
        help="a database `python -m bench` built (PostgreSQL for the issue)",
    )
    parser.add_argument(
        "--aliquots",
        type=int,
        default=10_000,
        help="build this many aliquots first if the database is empty",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument(
        "--connections", type=int, default=16, help="concurrent client connections (default 16)"
    )
    parser.add_argument("--duration", type=int, default=30, help="seconds per app (default 30)")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk if installed)",
    )
    parser.add_argument(
        "--no-proxy", action="store_true", help="serve with gunicorn alone, without nginx in front"
    )
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One app served on 127.0.0.1 by deploy/serve (nginx → gunicorn), or by gunicorn alone
    with the same settings, started and stopped by us."""

    def __init__(self, app: str, env: dict[str, str], workers: int, proxy: bool = True) -> None:
        self.port = free_port()
        if proxy:
            command = [
                str(ROOT / "deploy" / "serve"),
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--quiet",
                "--app",
                app,
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "deploy/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                app,
            ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, path: str, headers: dict[str, str], seconds: float = 60) -> None:
        """Wait until the server answers ``path`` with 200."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "the server stopped: "
                    + (self.process.stderr.read().decode() if self.process.stderr else "")
                )
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", path, headers=headers)
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer {path} within {seconds} s")

    def _gunicorn_pid(self) -> int | None:
        """gunicorn's master: the process itself, or deploy/serve's child that is."""
        pid = self.process.pid
        for candidate in [str(pid), *_children(pid)]:
            try:
                command = Path(f"/proc/{candidate}/cmdline").read_bytes()
            except OSError:
                continue
            if b"gunicorn" in command:
                return int(candidate)
        return None

    def worker_rss_mb(self) -> list[float]:
        """Peak RSS (VmHWM) of each gunicorn worker, in MB."""
        master = self._gunicorn_pid()
        if master is None:
            return []
        children = _children(master)
        peaks = []
        for child in children:
            try:
                status = Path(f"/proc/{child}/status").read_text()
            except OSError:
                continue
            found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if found:
                peaks.append(round(int(found.group(1)) / 1024, 1))
        return peaks

    def stop(self) -> None:
        """Stop the server (graceful, then forced): serve stops nginx and gunicorn."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


# --- load generators -------------------------------------------------------------------------

_WRK_SCRIPT = """
local paths = {%(paths)s}
local headers = {%(headers)s}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], headers)
end
"""


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    port: int, paths: list[str], headers: dict[str, str], seconds: int, connections: int
) -> dict[str, Any]:
    """Drive the server with wrk; throughput, latency percentiles and errors."""
    script = _WRK_SCRIPT % {
        "paths": ", ".join(_lua(p) for p in paths),
        "headers": ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in headers.items()),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            [
                "wrk",
                "--threads",
                "2",
                "--connections",
                str(connections),
                "--duration",
                f"{seconds}s",
                "--timeout",
                "10s",
                "--latency",
                "--script",
                handle.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(handle.name)
    return parse_wrk(output)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """wrk's summary as numbers."""
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))", output, re.MULTILINE))
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = {
        kind: int(n)
        for kind, n in zip(
            ("connect", "read", "write", "timeout"),
            sockets.groups() if sockets else (0,) * 4,
            strict=True,
        )
    }
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return {
        "requests": requests,
        "throughput_rps": float(rate.group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        # A read error is the server closing a kept-alive connection (sync workers
        # close after each answer): wrk reconnects; it is not a failed request.
        "errors": errors
        + socket_errors["connect"]
        + socket_errors["timeout"]
        + socket_errors["write"],
        "socket_errors": socket_errors,
    }


def _python_client(
    args: tuple[int, list[str], dict[str, str], float, int],
) -> tuple[list[float], int, int]:
    """One client process: requests until the deadline; latencies (ms), count, errors."""
    port, paths, headers, deadline, seed = args
    rng = random.Random(seed)
    times: list[float] = []
    errors = 0
    connection: http.client.HTTPConnection | None = None
    while time.time() < deadline:
        path = paths[rng.randrange(len(paths))]
        started = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException):
            errors += 1
            if connection is not None:
                connection.close()
            connection = None
            continue
        times.append((time.perf_counter() - started) * 1000)
    return times, len(times), errors


def _started(_index: int) -> None:
    time.sleep(0.2)


def run_python(
    port: int, paths: list[str], headers: dict[str, str], seconds: int, connections: int
) -> dict[str, Any]:
    """Drive the server from ``connections`` processes for ``seconds``."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(connections) as pool:
        # Every client process started and its imports done before the clock starts: on a
        # busy machine spawning 16 of them can take longer than the run itself.
        pool.map(_started, range(connections), chunksize=1)
        deadline = time.time() + seconds
        started = time.time()
        results = pool.map(
            _python_client, [(port, paths, headers, deadline, n) for n in range(connections)]
        )
        elapsed = time.time() - started
    times = [t for result in results for t in result[0]]
    return {
        "requests": len(times),
        "throughput_rps": len(times) / elapsed,
        # None: no request finished (the warm-up, on a machine so busy that starting the
        # client processes took all of it).
        "p50_ms": percentile(times, 50) if times else None,
        "p99_ms": percentile(times, 99) if times else None,
        "errors": sum(result[2] for result in results),
    }


# --- the run ---------------------------------------------------------------------------------


def ensure_built(url: str, aliquots: int) -> int:
    """The database's aliquots; an empty database is built first."""
    app = create_app({"DATABASE_URL": url})
    try:
        with app.app_context():
            session = get_session()
            have = session.scalar(select(func.count()).select_from(Aliquot)) or 0
            session.rollback()
    except Exception:  # noqa: BLE001 - no schema yet: build it below
        have = 0
    app.extensions["biobank.engine"].dispose()
    if have:
        return have
    from bench.cli import prepare

    app = prepare(url)
    with tempfile.TemporaryDirectory(prefix="biobank-load-") as work:
        build.grow(
            app,
            url,
            Path(work),
            aliquots,
            lambda message: print(message, file=sys.stderr, flush=True),
        )
    app.extensions["biobank.engine"].dispose()
    return aliquots


def measure(
    label: str,
    app_spec: str,
    env: dict[str, str],
    path_of: Any,
    codes: list[str],
    headers: dict[str, str],
    args: argparse.Namespace,
    client: str,
) -> dict[str, Any]:
    """Serve one app, warm it up, drive it, read its workers' memory, stop it."""
    server = Server(app_spec, env, args.workers, proxy=not args.no_proxy)
    try:
        server.wait_ready(path_of(codes[0]), headers)
        paths = [path_of(code) for code in codes]
        drive = run_wrk if client == "wrk" else run_python
        drive(server.port, paths, headers, WARMUP_SECONDS, args.connections)
        print(f"driving {label} for {args.duration} s ({client})", file=sys.stderr, flush=True)
        result = drive(server.port, paths, headers, args.duration, args.connections)
        result["worker_peak_rss_mb"] = server.worker_rss_mb()
        result["max_worker_rss_mb"] = max(result["worker_peak_rss_mb"], default=None)
    finally:
        server.stop()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Serve and drive both apps; the figures and the targets' verdicts."""
    url = args.database_url
    aliquots = ensure_built(url, args.aliquots)
    app = create_app({"DATABASE_URL": url})
    token = user_token(app, "bench-load", "technician")
    codes = random_codes(app, 5000, seed=99)
    app.extensions["biobank.engine"].dispose()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    secret = os.environ.get("BIOBANK_SECRET_KEY") or "bench-load-" + "0" * 32
    product_env = {"BIOBANK_DATABASE_URL": url, "BIOBANK_SECRET_KEY": secret}
    scan = measure(
        "the scan endpoint",
        "wsgi:app",
        product_env,
        lambda code: f"/api/v1/scan/{code}",
        codes,
        {"Authorization": f"Bearer {token}"},
        args,
        client,
    )
    floor = measure(
        "the bare route",
        "bench.bare:make_app()",
        {"BENCH_DATABASE_URL": url, "BIOBANK_DATABASE_URL": url},
        lambda code: f"/scan/{code}",
        codes,
        {},
        args,
        client,
    )
    share = scan["throughput_rps"] / floor["throughput_rps"]
    return {
        "database": make_url(url).get_backend_name(),
        "aliquots": aliquots,
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
        "client": client,
        "served_by": "gunicorn" if args.no_proxy else "nginx → gunicorn (deploy/serve)",
        "scan": scan,
        "bare": floor,
        "throughput_share": share,
        "targets": {
            "throughput_share": share >= TARGET_SHARE,
            "errors": scan["errors"] == 0,
            "worker_rss": (scan["max_worker_rss_mb"] or 0) <= TARGET_RSS_MB,
        },
        "machine": report.machine(),
        "command": "python -m bench.load " + " ".join(sys.argv[1:]),
    }


def table(found: dict[str, Any]) -> str:
    """The figures side by side."""
    lines = [f"{'':<24} {'scan':>12} {'bare':>12}", "-" * 50]
    for key, unit in (
        ("throughput_rps", "req/s"),
        ("p50_ms", "ms"),
        ("p99_ms", "ms"),
        ("errors", ""),
        ("max_worker_rss_mb", "MB"),
    ):
        scan, bare = found["scan"][key], found["bare"][key]
        lines.append(
            f"{key + (' (' + unit + ')' if unit else ''):<24} {scan:>12,.1f} {bare:>12,.1f}"
        )
    verdicts = found["targets"]
    lines.append("")
    lines.append(
        f"throughput {found['throughput_share']:.0%} of the bare route's (target ≥ "
        f"{TARGET_SHARE:.0%}): {'met' if verdicts['throughput_share'] else 'MISSED'}"
    )
    lines.append(
        f"errors {found['scan']['errors']} (target 0): {'met' if verdicts['errors'] else 'MISSED'}"
    )
    lines.append(
        f"peak RSS per worker {found['scan']['worker_peak_rss_mb']} MB (target ≤ "
        f"{TARGET_RSS_MB}): {'met' if verdicts['worker_rss'] else 'MISSED'}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the load test; print the table; write the JSON file if asked."""
    args = parse(argv)
    found = run(args)
    print(table(found))
    if args.out:
        args.out.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
