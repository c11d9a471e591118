"""Fuzz the API from its own OpenAPI document with Schemathesis, on SQLite or PostgreSQL.

    python tests/fuzz/run.py                                  # SQLite, the CI's seeded pass
    python tests/fuzz/run.py --database postgresql+psycopg://postgres@127.0.0.1/test_fuzz
    python tests/fuzz/run.py --examples 100                   # the pre-release run

The database is emptied, migrated and filled with the demo data (a PostgreSQL database's
name must contain "test" or "fuzz": its schema is dropped). The service is served on a real
socket (an ephemeral port unless --port), and Schemathesis runs every operation of the
served document, every phase (examples, coverage, fuzzing, stateful), once per role: the
admin first, then a demo user of each other role, each with its own bearer token. Checks:
no server error, status codes and content types as documented, response bodies and headers
conforming to their schemas, 405 with Allow for undocumented methods.

Prints, per role and in total: operations covered, requests sent (counted by the server),
failures found; exits 1 on any failure, so CI fails on a finding. Reports (JUnit, and a
pytest file reproducing each failure) go to --report-dir.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

ROLES = ("admin", "technician", "researcher", "consent-officer", "manager")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,unsupported_method,"
    "allow_header_conformance"
)
PHASES = "examples,coverage,fuzzing,stateful"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", default="sqlite", help="'sqlite' (a temporary file) or a PostgreSQL URL"
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=5,
        help="examples per operation and phase (default 5: the CI pass)",
    )
    parser.add_argument("--seed", type=int, default=21, help="Schemathesis' random seed")
    parser.add_argument(
        "--roles", default=",".join(ROLES), help=f"comma-separated, of {', '.join(ROLES)}"
    )
    parser.add_argument("--phases", default=PHASES)
    parser.add_argument(
        "--coverage-for",
        default=None,
        metavar="ROLES",
        help="run the coverage phase (thousands of boundary cases per role) "
        "for these roles only (default: every role); CI: admin",
    )
    parser.add_argument("--port", type=int, default=0, help="0: an ephemeral port")
    parser.add_argument(
        "--report-dir", default=None, help="where the reports go (default: a temporary folder)"
    )
    parser.add_argument("--max-failures", type=int, default=None)
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the roles at the same time (faster; their writes then "
        "interleave, so the run is not repeatable: not for CI)",
    )
    return parser.parse_args(argv)


def _reset(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if "test" not in name and "fuzz" not in name:
        sys.exit(f"refusing to empty database {name!r}: its name must contain 'test' or 'fuzz'")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def prepare(url: str) -> tuple[Any, dict[str, str]]:
    """Migrate, load the demo data; the app and the demo users' tokens by role."""
    from biobank import create_app

    if not url.startswith("sqlite"):
        _reset(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(32)})
    runner = app.test_cli_runner()
    for args in (["db", "upgrade"], ["demo", "load"]):
        result = runner.invoke(args=args)
        if result.exit_code != 0:
            sys.exit(f"flask {' '.join(args)} failed:\n{result.output}")
    tokens = {
        line.split()[0].removeprefix("demo-"): line.split()[-1]
        for line in result.output.splitlines()
        if line.startswith("demo-")
    }
    return app, tokens


def known_values(app: Any) -> dict[str, list[Any]]:
    """Codes and ids the demo data holds, by path parameter: the fuzzer uses them half the
    time, so operations reach real objects (and the rules behind the lookup), not 404s."""
    from sqlalchemy import select

    from biobank.consent.models import Substudy, Withdrawal
    from biobank.db import get_session
    from biobank.patients.models import Patient
    from biobank.reference.models import Material, Timepoint
    from biobank.requests.models import SampleRequest
    from biobank.samples.models import Aliquot, Sample
    from biobank.storage.models import Container, Excursion

    with app.app_context():
        session = get_session()

        def first(column: Any, n: int = 30) -> list[Any]:
            return list(session.scalars(select(column).order_by(column).limit(n)))

        codes = (
            first(Aliquot.barcode)
            + first(Sample.barcode, 10)
            + first(Container.barcode)
            + first(Substudy.code)
            + first(Material.code)
            + first(Timepoint.code)
        )
        values = {
            "code": codes,
            "study_id": first(Patient.study_id),
            "number": first(SampleRequest.number),
            "withdrawal_id": [str(i) for i in first(Withdrawal.id)],
            "excursion_id": [str(i) for i in first(Excursion.id)],
        }
        session.close()
    return {name: found for name, found in values.items() if found}


def write_config(path: Path, values: dict[str, list[Any]]) -> None:
    """A Schemathesis config binding path parameters to the demo's values (probability 1/2);
    a 503 (busy: retry, documented on every operation) is an answer, not a server error."""
    lines = ["[checks.not_a_server_error]", 'expected-statuses = ["2xx", "3xx", "4xx", "503"]', ""]
    for name, found in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(found)}", ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in values]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Counter:
    """WSGI middleware counting the requests the server answers, its server errors (5xx but
    the documented 503 "busy") and its 503s, per role (told by the bearer token sent)."""

    def __init__(self, app: Any, roles_by_token: dict[str, str]) -> None:
        self.app = app
        self.roles = {f"Bearer {token}": role for token, role in roles_by_token.items()}
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.busy: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        role = self.roles.get(environ.get("HTTP_AUTHORIZATION", ""), "other")

        def counting_start(status: str, headers: Any, *args: Any) -> Any:
            with self.lock:
                self.requests[role] = self.requests.get(role, 0) + 1
                # 503 is the documented "busy, retry"; any other 5xx is a fault
                failed = status.startswith("5") and not status.startswith("503")
                self.errors[role] = self.errors.get(role, 0) + failed
                self.busy[role] = self.busy.get(role, 0) + status.startswith("503")
            return start_response(status, headers, *args)

        return self.app(environ, counting_start)


def serve(app: Any, port: int, tokens: dict[str, str]) -> tuple[Any, Counter]:
    """Serve the app on 127.0.0.1 in a thread (threaded server, quiet request log)."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    counter = Counter(app.wsgi_app, {token: role for role, token in tokens.items()})
    app.wsgi_app = counter
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, counter


def schemathesis_command() -> list[str]:
    """The Schemathesis CLI of this Python environment."""
    found = Path(sys.executable).parent / "schemathesis"
    if found.exists():
        return [str(found)]
    if shutil.which("schemathesis"):
        return ["schemathesis"]
    sys.exit("schemathesis is not installed: pip install -e '.[test]'")


def phases_for(role: str, args: argparse.Namespace) -> str:
    """The phases a role's run takes: all asked for, less coverage if it is not for this role."""
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if args.coverage_for is not None and role not in args.coverage_for.split(","):
        phases = [p for p in phases if p != "coverage"]
    return ",".join(phases)


def fuzz_role(
    base: str, role: str, token: str, args: argparse.Namespace, reports: Path, config: Path
) -> dict[str, Any]:
    """One Schemathesis run with one role's token; its operations, failures and exit code."""
    junit = reports / f"{role}.junit.xml"
    command = [
        *schemathesis_command(),
        "--config-file",
        str(config),
        "run",
        f"{base}/api/openapi.json",
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        phases_for(role, args),
        "--max-examples",
        str(args.examples),
        "--seed",
        str(args.seed),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "60",
        "--report",
        "junit,pytest",
        "--report-junit-path",
        str(junit),
        "--report-pytest-path",
        str(reports / f"{role}_failures.py"),
        "--output-truncate",
        "true",
    ]
    if args.max_failures:
        command += ["--max-failures", str(args.max_failures)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, cwd=reports
    )  # its cache folder (.schemathesis) goes there
    (reports / f"{role}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    text = done.stdout + done.stderr
    return {
        "role": role,
        "exit": done.returncode,
        "seconds": time.monotonic() - started,
        "operations": _operations(junit),
        "failures": _failures(text),
        "output": text,
    }


def _operations(junit: Path) -> int:
    if not junit.exists():
        return 0
    names = re.findall(r'<testcase name="([^"]+)"', junit.read_text("utf-8"))
    return len({n for n in names if n.split(" ")[0] in {"GET", "POST", "PUT", "PATCH", "DELETE"}})


def _failures(text: str) -> int:
    # Schemathesis' summary names each distinct failure under "FAILURES"; count its "- "
    # headings per operation, or fall back to its "N failures" figure.
    match = re.search(r"(\d+) (?:unique )?failures?\b", text)
    return int(match.group(1)) if match else 0


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzing; 0 if nothing was found."""
    args = parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = set(roles) - set(ROLES)
    if unknown:
        sys.exit(f"unknown roles: {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="biobank-fuzz-"))
    url = f"sqlite:///{workdir / 'fuzz.db'}" if args.database == "sqlite" else args.database
    reports = Path(args.report_dir) if args.report_dir else workdir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    app, tokens = prepare(url)
    config = reports / "schemathesis.toml"
    write_config(config, known_values(app))
    server, counter = serve(app, args.port, tokens)
    base = f"http://127.0.0.1:{server.server_port}"
    database = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    print(
        f"fuzzing {base} on {database}: roles {', '.join(roles)}; {args.examples} examples "
        f"per operation, seed {args.seed}, phases {args.phases}"
        f"{' (in parallel)' if args.parallel else ''}; reports in {reports}",
        flush=True,
    )

    def run(role: str) -> dict[str, Any]:
        result = fuzz_role(base, role, tokens[role], args, reports, config)
        result["requests"] = counter.requests.get(role, 0)
        status = "ok" if result["exit"] == 0 else f"FAILED (exit {result['exit']})"
        print(
            f"  {role:16} {result['operations']:4} operations  {result['requests']:7,} "
            f"requests  {result['failures']:3} failures  {result['seconds']:6.0f} s  "
            f"{phases_for(role, args):35} {status}",
            flush=True,
        )
        if result["exit"] != 0:
            print(_summary(result["output"]), flush=True)
        return result

    try:
        if args.parallel:
            with ThreadPoolExecutor(len(roles)) as pool:
                results = list(pool.map(run, roles))
        else:
            results = [run(role) for role in roles]
    finally:
        server.shutdown()
    failed = [r for r in results if r["exit"] != 0]
    server_errors = sum(counter.errors.values())
    total = {
        "database": database,
        "seed": args.seed,
        "examples": args.examples,
        "phases": args.phases,
        "roles": {
            r["role"]: {k: r[k] for k in ("operations", "requests", "failures", "seconds", "exit")}
            for r in results
        },
        "operations": max((r["operations"] for r in results), default=0),
        "requests": sum(counter.requests.values()),
        "failures": sum(r["failures"] for r in results),
        "server_errors": server_errors,
        "busy_503": sum(counter.busy.values()),
        "failed_runs": len(failed),
    }
    (reports / "summary.json").write_text(json.dumps(total, indent=2), encoding="utf-8")
    print(
        f"total on {database}: {total['operations']} operations, {total['requests']:,} "
        f"requests, {total['failures']} failures, {server_errors} server errors "
        f"({total['busy_503']} answers 503 busy)",
        flush=True,
    )
    return 1 if failed or server_errors else 0


def _summary(output: str) -> str:
    start = output.find("FAILURES")
    return output[start : start + 20_000] if start >= 0 else output[-5_000:]


if __name__ == "__main__":
    sys.exit(main())
