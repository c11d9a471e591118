"""``python -m bench``: build a biobank of N aliquots, measure it, print and save the figures.

The database is emptied first (a SQLite file of its own by default; with
``--database-url`` any database the service runs on — its tables are dropped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import bare, build, figures, report
from bench.measure import user_token
from biobank import create_app
from biobank.custody.models import CustodyEvent
from biobank.db import make_engine
from biobank.samples.models import Aliquot, Sample

SMALL = 10_000


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--aliquots",
        type=int,
        default=10_000,
        help="size of the biobank (default 10,000; the full run is 1,000,000)",
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: a SQLite file in the temporary folder); EMPTIED first",
    )
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    parser.add_argument(
        "--scan-requests",
        type=int,
        default=3000,
        help="timed scans (each also on the bare route; default 3,000)",
    )
    parser.add_argument(
        "--site-scoped",
        action="store_true",
        help="the technician who scans is limited to the site the tubes are "
        "at (biobank.auth.scope): the scope's cost on every scan",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="few requests and short runs: checks the benchmark works, "
        "in seconds (for CI), not what it measures",
    )
    return parser.parse_args(argv)


def default_url(aliquots: int) -> str:
    """A SQLite file of the benchmark's own, by size."""
    return f"sqlite:///{Path(tempfile.gettempdir()) / f'biobank-bench-{aliquots}.db'}"


def empty_database(url: str) -> None:
    """Start from nothing: delete the SQLite file, or drop PostgreSQL's public schema."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def prepare(url: str) -> Any:
    """An empty database with the schema (Alembic) and the reference data; the app on it."""
    empty_database(url)
    app = create_app({"DATABASE_URL": url})
    runner = app.test_cli_runner()
    for command in (["db", "upgrade"], ["reference", "load"]):
        result = runner.invoke(args=command)
        if result.exit_code != 0:
            raise RuntimeError(f"flask {' '.join(command)} failed: {result.output}")
    return app


def analyze(app: Any) -> None:
    """PostgreSQL: fresh planner statistics after the bulk load (autovacuum would gather them
    within minutes on a live server; the benchmark measures right away)."""
    engine = app.extensions["biobank.engine"]
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


def keep_small_copy(app: Any, url: str) -> Any:
    """A SQLite biobank at its small size is copied aside, so that the scan at both sizes is
    timed in the same minutes, interleaved; its app (None on other databases: there the
    small size is measured before the biobank grows)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    engine = app.extensions["biobank.engine"]
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    copy = Path(parsed.database).with_suffix(".small.db")
    for suffix in ("", "-wal", "-shm"):
        Path(str(copy) + suffix).unlink(missing_ok=True)
    shutil.copyfile(parsed.database, copy)
    return create_app({"DATABASE_URL": f"sqlite:///{copy}"})


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, measure, and return the figures."""
    url = args.database_url or default_url(args.aliquots)
    smoke = args.smoke
    scans = 200 if smoke else args.scan_requests
    warmup = 20 if smoke else 300
    seconds = 0.2 if smoke else 3.0
    http_runs = 10 if smoke else 100

    app = prepare(url)
    floor = bare.make_app(url)
    found: dict[str, Any] = {
        "aliquots": args.aliquots,
        "database": make_url(url).get_backend_name(),
        "scan_token_sites": [build.SITE] if args.site_scoped else [],
    }
    notes: dict[str, str] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="biobank-bench-") as work:
        small = min(args.aliquots, SMALL)
        log(f"building {small:,} aliquots")
        first = build.grow(app, url, Path(work), small, log)
        analyze(app)
        sites = [build.SITE] if args.site_scoped else None
        tech = user_token(app, "bench-tech", "technician", sites=sites)
        small_app = keep_small_copy(app, url)
        if small_app is None:
            log("measuring the scan at the small size")
            found["scan_us_p50_small"] = figures.scan(
                app, floor, tech, scans, warmup, with_floor=False
            )["scan_us_p50"]
        step = first
        if args.aliquots > small:
            log(f"building up to {args.aliquots:,} aliquots")
            step = build.grow(app, url, Path(work), args.aliquots, log)
            analyze(app)
    found["build_seconds"] = round(time.perf_counter() - started, 1)
    # What the build left in this process is no server's state: keep the collector off it.
    gc.collect()
    gc.freeze()
    imported = step.imported
    assert imported is not None
    found["import_aliquots_per_s"] = imported.aliquots / imported.seconds
    found["import_peak_rss_mb"] = round(imported.peak_rss_mb, 1)
    found["import_rows"] = imported.aliquots
    # On a busy machine the wall clock waits for other processes; the CPU time does not.
    found["import_aliquots_per_cpu_s"] = imported.aliquots / imported.cpu_seconds

    log("measuring the scan" + (" (and at the small size, on its copy)" if small_app else ""))
    found.update(figures.scan(app, floor, tech, scans, warmup, small=small_app))
    found["scan_ratio"] = found["scan_us_p50"] / found["bare_scan_us_p50"]
    found["scan_ratio_same_work"] = found["scan_us_p50"] / found["bare_scan_same_work_us_p50"]
    log("measuring the bare insert")
    found["bare_insert_rows_per_s"] = figures.bare_insert(app, imported.aliquots)
    log("measuring the box map")
    found["box_map_ms"] = figures.box_map(app, tech, http_runs * 2, warmup // 10)
    log("measuring rack registration")
    found["rack96_register_ms"] = figures.rack96(app, tech, 3 if smoke else 15)
    if found["rack96_register_ms"] is None:
        notes["rack96_register_ms"] = figures.MISSING
    log("measuring the withdrawal dry run")
    officer = user_token(app, "bench-officer", "consent_officer")
    found["withdrawal_impact_ms"] = figures.withdrawal_impact(
        app, officer, http_runs, warmup // 30 + 1
    )
    log("measuring availability")
    researcher = (
        user_token(app, "bench-researcher", "researcher", [build.SUBSTUDIES[0]])
        if figures.has_route(app, "/api/v1/requests/availability")
        else None
    )
    found["availability_ms"] = figures.availability(app, researcher, http_runs // 2 + 1, 3)
    if found["availability_ms"] is None:
        notes["availability_ms"] = figures.MISSING
    log("measuring the reports")
    manager = user_token(app, "bench-manager", "manager")
    for name in figures.REPORTS:
        key = f"report_{name}_ms"
        found[key] = figures.report(app, manager, name, 3 if smoke else 20, 1 if smoke else 3)
        if found[key] is None:
            notes[key] = figures.MISSING
    log("measuring custody verification")
    found["custody_verify_events_per_s"], found["custody_events"] = figures.custody_verify(
        app, seconds * 3
    )
    log("measuring the FHIR Specimen page and the export")
    found["fhir_specimen_page_ms"] = figures.fhir_specimen_page(app, tech, http_runs, warmup // 10)
    found["fhir_export_resources_per_s"] = figures.fhir_export(app, 5_000 if smoke else None)
    for key in ("fhir_specimen_page_ms", "fhir_export_resources_per_s"):
        if found[key] is None:
            notes[key] = figures.MISSING
    log("measuring labels")
    found.update(figures.labels(app, 200 if smoke else 1000, seconds))
    found["samples"] = figures.count_of(app, Sample)
    found["aliquots_in_database"] = figures.count_of(app, Aliquot)
    found["events_in_database"] = figures.count_of(app, CustodyEvent)
    found["machine"] = report.machine()
    found["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    found["command"] = "python -m bench " + " ".join(sys.argv[1:])
    found["targets"] = report.verdicts(found)
    found["notes"] = notes
    found["smoke"] = smoke
    app.extensions["biobank.engine"].dispose()
    floor.extensions["bench.engine"].dispose()
    if small_app is not None:
        small_app.extensions["biobank.engine"].dispose()
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write the JSON file if asked."""
    args = parse(argv)
    if args.aliquots < 100:
        print("--aliquots: at least 100", file=sys.stderr)
        return 2
    os.environ.setdefault("BIOBANK_SESSION_COOKIE_SECURE", "false")
    found = run(args)
    print(report.table(found, found["notes"]))
    if found["scan_token_sites"]:
        print(f"scans with a token limited to {', '.join(found['scan_token_sites'])}")
    if args.out:
        args.out.write_text(json.dumps(found, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"figures written to {args.out}")
    return 0
