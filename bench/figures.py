"""Each figure of the benchmark, measured over the biobank the build made.

A figure whose feature the service does not have yet returns None (the table says
"n/a (feature missing)"), so the benchmark keeps running as domains land.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from decimal import Decimal
from typing import Any

from barcode import Code128
from barcode.writer import SVGWriter
from flask import Flask
from sqlalchemy import MetaData, func, select

from bench import bare
from bench.measure import (
    SEED,
    Client,
    interleaved,
    median,
    percentile,
    random_codes,
    repeat_for,
)
from biobank import clock
from biobank.custody import audit
from biobank.db import get_engine, get_session
from biobank.patients import service as patients
from biobank.patients.models import Patient
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.samples.numbering import numbering
from biobank.storage import service as storage
from biobank.storage.models import BoxType, Container

MISSING = "feature missing"


def has_route(app: Flask, rule: str, method: str = "GET") -> bool:
    """Whether the app answers ``method rule``."""
    return any(r.rule == rule and method in (r.methods or ()) for r in app.url_map.iter_rules())


# --- the scan ------------------------------------------------------------------------------


def scan(
    app: Flask,
    floor: Flask,
    token: str,
    requests: int,
    warmup: int,
    with_floor: bool = True,
    small: Flask | None = None,
) -> dict[str, float]:
    """The scan endpoint and the bare routes, each over random tubes of its own, interleaved;
    with ``small`` (the app on a copy of the biobank at its small size), the scan there too."""
    api = Client(app, token)
    bare_client = floor.test_client()
    if small is not None:
        # The same token works there: the copy was taken after the user was made.
        small_api = Client(small, token)

    def product(code: str) -> float:
        return api.timed("get", f"/api/v1/scan/{code}")

    def bare_route(code: str) -> float:
        started = time.perf_counter_ns()
        response = bare_client.get(f"/scan/{code}")
        elapsed = (time.perf_counter_ns() - started) / 1000
        if response.status_code != 200:
            raise RuntimeError(f"bare scan of {code}: {response.status_code}")
        return elapsed

    def same_work(code: str) -> float:
        started = time.perf_counter_ns()
        response = bare_client.get(f"/scan-same-work/{code}", headers=api.headers)
        elapsed = (time.perf_counter_ns() - started) / 1000
        if response.status_code != 200:
            raise RuntimeError(f"bare scan (same work) of {code}: {response.status_code}")
        return elapsed

    def small_scan(code: str) -> float:
        return small_api.timed("get", f"/api/v1/scan/{code}")

    calls = {
        "scan": product,
        **({"bare": bare_route, "same": same_work} if with_floor else {}),
        **({"small": small_scan} if small is not None else {}),
    }
    # Each side its own random tubes (of its own biobank, for the small one).
    codes = {
        name: random_codes(small if name == "small" else app, requests + warmup, seed=SEED + number)  # type: ignore[arg-type]
        for number, name in enumerate(calls)
    }
    times = interleaved(calls, codes, warmup)
    figures = {"scan_us_p50": median(times["scan"]), "scan_us_p99": percentile(times["scan"], 99)}
    if with_floor:
        figures["bare_scan_us_p50"] = median(times["bare"])
        figures["bare_scan_same_work_us_p50"] = median(times["same"])
    if small is not None:
        figures["scan_us_p50_small"] = median(times["small"])
    return figures


# --- storage -------------------------------------------------------------------------------


def box_map(app: Flask, token: str, requests: int, warmup: int) -> float:
    """p50 of GET /boxes/<code>/map over random full 10×10 boxes, in ms."""
    with app.app_context():
        session = get_session()
        codes = list(
            session.scalars(
                select(Container.barcode)
                .join(BoxType, BoxType.id == Container.box_type_id)
                .where(BoxType.code == "10X10")
                .order_by(Container.id)
            )
        )
        session.rollback()
    rng = random.Random(SEED)
    picks = [rng.choice(codes) for _ in range(requests + warmup)]
    api = Client(app, token)
    for code in picks[:warmup]:
        api.timed("get", f"/api/v1/boxes/{code}/map")
    return median(api.timed("get", f"/api/v1/boxes/{code}/map") for code in picks[warmup:]) / 1000


def _rack(app: Flask) -> str:
    """A new empty SBS96 rack in the first freezer's first shelf."""
    with app.app_context():
        session = get_session()
        storage.load_default_box_types(session, "bench")
        shelf = session.scalar(
            select(Container).where(Container.kind == "shelf").order_by(Container.id)
        )
        if shelf is None:
            raise RuntimeError("the build made no shelf")
        rack = storage.create_box(
            session, "bench", {"box_type": "SBS96", "parent": shelf.barcode}, numbering()
        )
        session.commit()
        return rack.barcode


RACK_PATIENT = "IF21-BRACK"


def _new_sample(app: Flask, index: int) -> str:
    """A freshly received 10 mL marrow sample, to split (of a patient of its own, so that
    no other figure meets these tubes)."""
    with app.app_context():
        session = get_session()
        patient = session.scalar(select(Patient).where(Patient.study_id == RACK_PATIENT))
        if patient is None:
            patient = patients.register(
                session,
                "bench",
                {
                    "study_id": RACK_PATIENT,
                    "site": "NL-PMC",
                    "sex": "F",
                    "diagnosis": "B-ALL",
                    "fusion_partner": "AFF1",
                    "diagnosis_date": clock.today() - dt.timedelta(days=100),
                    "age_at_diagnosis_days": 120,
                    "wbc_at_diagnosis": Decimal(50),
                    "day8_blasts_per_ul": None,
                    "prednisone_response": "good",
                },
            )
        collected = dt.datetime.combine(patient.diagnosis_date, dt.time(9), dt.UTC)
        sample = samples.register_sample(
            session,
            "bench",
            {
                "study_id": patient.study_id,
                "timepoint": None,
                "unscheduled_reason": f"bench rack {index}",
                "material": "BM",
                "collected_at": collected,
                "received_at": collected + dt.timedelta(hours=2),
                "volume_ml": Decimal("10.0"),
                "container_code": "PED",
                "precentrifugation_delay_hours": Decimal(2),
                "precentrifugation_temperature": "RT",
                "accession_number": f"RACK-{index}",
                "notes": None,
            },
            numbering(),
        )
        session.commit()
        return sample.barcode


def rack96(app: Flask, token: str, runs: int) -> float | None:
    """p50 of one request splitting a sample into 96 pre-barcoded tubes placed in an SBS96
    rack (positions A01…H12, a custody event per tube), in ms; None if the split request
    cannot place tubes."""
    from biobank.samples.schemas import SplitIn

    if "box" not in SplitIn().fields:
        return None
    api = Client(app, token)
    times = []
    for index in range(runs + 1):
        sample, rack = _new_sample(app, index), _rack(app)
        # The tubes' own codes, unique by the sample's number.
        body = {
            "box": rack,
            "reason": "bench: 96 tubes into a rack",
            "aliquots": [
                {
                    "aliquot_type": "PLASMA",
                    "volume_ml": "0.05",
                    "barcode": f"RK{sample[2:-1]}{n:02d}",
                    "position": f"{'ABCDEFGH'[n // 12]}{n % 12 + 1:02d}",
                }
                for n in range(96)
            ],
        }
        elapsed = api.timed("post", f"/api/v1/samples/{sample}/split", expect=201, json=body)
        if index:  # the first is the warm-up
            times.append(elapsed)
    return median(times) / 1000


# --- reports -------------------------------------------------------------------------------

REPORTS = {
    "completeness": "/api/v1/reports/completeness",
    "inventory": "/api/v1/reports/inventory",
    "fill": "/api/v1/reports/capacity?view=history",
}


def report(app: Flask, token: str, name: str, requests: int, warmup: int) -> float | None:
    """p50 of one whole-trial report as JSON (completeness: the summary of every patient and
    the first page of the matrix; inventory: the last year's months, rows and freeze–thaw
    spread; fill: each freezer's positions used at each month's end, from the custody log),
    in ms; None without the reports."""
    url = REPORTS[name]
    if not has_route(app, url.split("?")[0]):
        return None
    api = Client(app, token)
    for _ in range(warmup):
        api.timed("get", url)
    return median(api.timed("get", url) for _ in range(requests)) / 1000


# --- consent, requests ---------------------------------------------------------------------


def withdrawal_impact(app: Flask, token: str, requests: int, warmup: int) -> float:
    """p50 of the dry run of a storage withdrawal, for random patients, in ms."""
    with app.app_context():
        session = get_session()
        study_ids = list(
            session.scalars(
                select(Patient.study_id)
                .where(Patient.study_id != RACK_PATIENT)
                .order_by(Patient.id)
            )
        )
        session.rollback()
    rng = random.Random(SEED)
    picks = [rng.choice(study_ids) for _ in range(requests + warmup)]
    api = Client(app, token)
    body = {
        "scope": "storage",
        "date": clock.today().isoformat(),
        "requested_by": "mother",
        "reason": "bench: what would a withdrawal do",
    }

    def dry_run(study_id: str) -> float:
        return api.timed(
            "post", f"/api/v1/patients/{study_id}/consent/withdrawals?dry_run=true", json=body
        )

    for study_id in picks[:warmup]:
        dry_run(study_id)
    return median(dry_run(study_id) for study_id in picks[warmup:]) / 1000


def availability(app: Flask, token: str | None, requests: int, warmup: int) -> float | None:
    """p50 of a researcher's availability matrix over every aliquot, in ms; None without
    the requests domain."""
    if token is None or not has_route(app, "/api/v1/requests/availability"):
        return None
    api = Client(app, token)
    for _ in range(warmup):
        api.timed("get", "/api/v1/requests/availability")
    return median(api.timed("get", "/api/v1/requests/availability") for _ in range(requests)) / 1000


# --- custody -------------------------------------------------------------------------------


def custody_verify(app: Flask, seconds: float) -> tuple[float, int]:
    """Events per second of ``custody verify`` over every chain (median of the runs), and
    how many events there are."""
    checked = 0

    def once() -> float:
        nonlocal checked
        with app.app_context():
            session = get_session()
            started = time.perf_counter()
            result = audit.verify_all(session)
            elapsed = time.perf_counter() - started
            session.rollback()
        if not result.ok:
            raise RuntimeError(f"custody verify found a broken chain: {result.broken}")
        checked = result.checked
        return result.checked / elapsed

    return median(repeat_for(seconds, 3, once)), checked


# --- labels --------------------------------------------------------------------------------


def labels(app: Flask, count: int, seconds: float) -> dict[str, float]:
    """Labels rendered per second: ZPL and SVG through the default aliquot template at the
    resolution it is laid out for (Code 128 cryovial: 300 dpi), and python-barcode alone
    drawing the same codes' SVG."""
    from biobank.labels.rendering import registry
    from biobank.labels.service import aliquot_labels

    codes = list(dict.fromkeys(random_codes(app, count, seed=SEED + 1)))
    with app.app_context():
        session = get_session()
        items = [data for _, data in aliquot_labels(session, codes)]
        session.rollback()
        template = registry().get(None, "aliquot")
    assert template.svg is not None
    dpi = template.dpis[-1]
    module = template.svg.module
    options = {
        "module_width": module,
        "module_height": template.svg.barcode_box[3],
        "quiet_zone": 10 * module,
        "write_text": False,
        "margin_top": 0,
        "margin_bottom": 0,
        "compress": True,
        "with_doctype": False,
    }

    def once(action: Any) -> float:
        started = time.perf_counter()
        action()
        return len(items) / (time.perf_counter() - started)

    actions = {
        "labels_zpl_per_s": lambda: template.render("zpl", dpi, items),
        "labels_svg_per_s": lambda: template.render("svg", dpi, items),
        "bare_svg_per_s": lambda: [
            Code128(item["barcode"], writer=SVGWriter()).render(options) for item in items
        ],
    }
    rates: dict[str, list[float]] = {key: [] for key in actions}
    for action in actions.values():
        once(action)  # warm-up
    # Round after round, each kind once: a busy moment of the machine hits all alike.
    started = time.perf_counter()
    while min(map(len, rates.values())) < 3 or time.perf_counter() - started < seconds * 3:
        for key, action in actions.items():
            rates[key].append(once(action))
    return {key: median(values) for key, values in rates.items()}


# --- FHIR ---------------------------------------------------------------------------------


def fhir_specimen_page(app: Flask, token: str, requests: int, warmup: int) -> float | None:
    """p50 of GET /fhir/Specimen?_count=100 at random places of the whole biobank (each page
    after a random tube's id, as a client following next links gets it), in ms; None
    without the FHIR API."""
    if not has_route(app, "/fhir/Specimen"):
        return None
    with app.app_context():
        session = get_session()
        last = session.scalar(select(func.max(Aliquot.id))) or 1
        session.rollback()
    rng = random.Random(SEED)
    cursors = [rng.randrange(1, max(2, last - 100)) for _ in range(requests + warmup)]
    api = Client(app, token)
    for cursor in cursors[:warmup]:
        api.timed("get", f"/fhir/Specimen?_count=100&_cursor=aliquot-{cursor}")
    return (
        median(
            api.timed("get", f"/fhir/Specimen?_count=100&_cursor=aliquot-{cursor}")
            for cursor in cursors[warmup:]
        )
        / 1000
    )


def fhir_export(app: Flask, limit: int | None = None) -> float | None:
    """Resources per second of the bulk export (Specimens, as ``fhir export`` writes them,
    into a scratch folder), over the first ``limit`` Specimens or all of them."""
    import tempfile
    from pathlib import Path

    try:
        from biobank.fhir import export as bulk
        from biobank.fhir.access import SYSTEM
        from biobank.fhir.resources import Settings
    except ImportError:
        return None
    with app.app_context(), tempfile.TemporaryDirectory() as folder:
        session = get_session()
        settings = Settings.from_config(app.config)
        written = 0
        started = time.perf_counter()
        with (Path(folder) / "Specimen.ndjson").open("wb") as handle:
            for resource in bulk.specimens_of(session, SYSTEM, settings):
                handle.write(bulk.line(resource))
                written += 1
                if limit is not None and written >= limit:
                    break
        elapsed = time.perf_counter() - started
        session.rollback()
    return written / elapsed


# --- the bare insert -----------------------------------------------------------------------

INSERT_COLUMNS = (
    "barcode",
    "barcode_source",
    "sample_id",
    "aliquot_type_id",
    "volume_ml",
    "volume_remaining_ml",
    "cell_count",
    "sprec_code",
    "freeze_thaw_count",
    "status",
    "created_at",
)


def bare_insert(app: Flask, rows: int, chunk: int = 50_000) -> float:
    """Rows per second of the driver's executemany of the imported aliquot rows (as the
    database keeps them) into a scratch table of the same shape, in one transaction that
    is rolled back."""
    columns = ", ".join(INSERT_COLUMNS)
    with app.app_context():
        engine = get_engine()
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                bare.scratch_table(MetaData()).create(connection)
                last, inserted, spent = 0, 0, 0.0
                while inserted < rows:
                    batch = connection.exec_driver_sql(
                        f"SELECT id, {columns} FROM aliquot WHERE id > {int(last)} "
                        f"ORDER BY id LIMIT {int(min(chunk, rows - inserted))}"
                    ).all()
                    if not batch:
                        break
                    last = batch[-1][0]
                    values = [tuple(row[1:]) for row in batch]
                    started = time.perf_counter()
                    bare.insert_rows(connection, values, INSERT_COLUMNS)
                    spent += time.perf_counter() - started
                    inserted += len(values)
            finally:
                transaction.rollback()
    return inserted / spent


def count_of(app: Flask, what: Any) -> int:
    """How many rows a model's table has."""
    with app.app_context():
        session = get_session()
        count = session.scalar(select(func.count()).select_from(what)) or 0
        session.rollback()
    return count
