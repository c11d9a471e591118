"""Building a biobank of a given size through the project's own paths.

Patients are registered and consents recorded through their services; samples and aliquots
come in through the CSV import (in a child process, which reports its time and peak RSS);
freezers, shelves, racks and 10×10 boxes are created through the storage service, and the
tubes placed through ``storage.operations.relocate`` (one ``stored`` custody event each).

Every patient gets the same schedule of ~91 aliquots over 12 samples (diagnosis to the end
of consolidation), so a biobank of N aliquots holds about N / 91 patients: a realistic
spread for per-patient operations such as a withdrawal. Two percent of the tubes are
consumed (and so not in a box). Everything random comes from a fixed seed.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from flask import Flask
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import service as consent
from biobank.consent.models import ConsentEntry, ConsentFormVersion, Substudy
from biobank.custody.models import AuditRecord
from biobank.db import get_session, utcnow
from biobank.patients import service as patients
from biobank.patients.models import Patient
from biobank.samples.models import Aliquot
from biobank.samples.numbering import numbering
from biobank.samples.states import IN_HOUSE
from biobank.storage import operations
from biobank.storage import service as storage
from biobank.storage.models import Container, Position

ACTOR = "bench"
SEED = 21
SITE = "NL-PMC"  # every patient is enrolled, every freezer stands, here
BOX_TYPE = "10X10"
BOX_SIZE = 100
BOXES_PER_RACK = 20
RACKS_PER_SHELF = 4
SHELVES_PER_FREEZER = 5
PLACE_CHUNK = 5_000
COMMIT_EVERY = 500
SUBSTUDIES = ("MRD-NGS", "IMMUNO")
FORM = "IF21-BB-2.0-EN"

# timepoint, day after diagnosis, material, [(aliquot type, tubes, mL each or None: cells)]
SCHEDULE: tuple[tuple[str, int, str, tuple[tuple[str, int, str | None], ...]], ...] = (
    (
        "DX",
        0,
        "BM",
        (
            ("MNC-V", 8, None),
            ("PELLET", 4, None),
            ("PLASMA", 4, "0.5"),
            ("DNA", 2, "0.1"),
            ("RNA", 2, "0.05"),
        ),
    ),
    ("DX", 0, "PB", (("MNC-V", 4, None), ("PLASMA", 4, "0.5"), ("BUFFY", 2, "0.2"))),
    ("DX", 0, "CSF", (("CSF-SUP", 2, "0.3"), ("CSF-CELLS", 1, None))),
    ("D8", 8, "PB", (("MNC-V", 2, None), ("PLASMA", 2, "0.5"))),
    ("D15", 15, "BM", (("MNC-V", 4, None), ("PELLET", 2, None), ("PLASMA", 2, "0.5"))),
    ("EOI", 33, "BM", (("MNC-V", 6, None), ("PELLET", 3, None), ("PLASMA", 3, "0.5"))),
    ("EOI", 33, "PB", (("MNC-V", 3, None), ("PLASMA", 3, "0.5"))),
    ("EOI", 33, "CSF", (("CSF-SUP", 2, "0.3"),)),
    ("B1", 60, "BM", (("MNC-V", 4, None), ("PELLET", 2, None), ("PLASMA", 2, "0.5"))),
    ("B1", 60, "PB", (("PLASMA", 4, "0.5"),)),
    ("EOC", 120, "BM", (("MNC-V", 4, None), ("PELLET", 2, None), ("PLASMA", 2, "0.5"))),
    ("B2", 150, "BM", (("MNC-V", 4, None), ("PELLET", 2, None))),
)
PER_PATIENT = sum(n for *_, kinds in SCHEDULE for _, n, _ in kinds)
COLUMNS = (
    "barcode",
    "study_id",
    "timepoint",
    "material",
    "aliquot_type",
    "volume_ml",
    "cell_count",
    "collected_at",
    "received_at",
    "container_code",
    "precentrifugation_delay_hours",
    "precentrifugation_temperature",
    "accession_number",
    "freeze_thaw_count",
    "status",
    "storage",
)
CONTAINERS = {"PB": "PED", "BM": "PED", "CSF": "PPS"}


def patients_for(aliquots: int) -> int:
    """How many patients a biobank of this many aliquots has."""
    return max(1, math.ceil(aliquots / PER_PATIENT))


def tube_code(number: int) -> str:
    """A pre-barcoded 2D tube's own code: unique per number, scattered like real ones."""
    return f"FR{(number * 7_777_777_777 + 1_234_567) % 10**10:010d}"


def study_id(index: int) -> str:
    """The pseudonym of the bench's patient number ``index``."""
    return f"IF21-B{index:06d}"


@dataclass
class ImportRun:
    """What the child process reported about one CSV import."""

    aliquots: int
    samples: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    start_rss_mb: float


class Tube(NamedTuple):
    """The two things ``relocate`` reads of an aliquot."""

    id: int
    barcode: str


# --- patients and consent ------------------------------------------------------------------

TRIAL_OPENED = dt.date(2022, 12, 15)  # no diagnosis before it is accepted (reference data)


def _diagnosis(rng: random.Random, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=rng.randint(200, (today - TRIAL_OPENED).days))


def add_patients(session: Session, first: int, last: int) -> None:
    """Register patients ``first`` ≤ n < ``last`` through the patients service."""
    rng = random.Random(SEED * 1_000_003 + first)
    today = clock.today()
    for index in range(first, last):
        age = rng.randint(5, 365)
        patients.register(
            session,
            ACTOR,
            {
                "study_id": study_id(index),
                "site": SITE,
                "sex": rng.choice("FM"),
                "diagnosis": "B-ALL" if rng.random() < 0.95 else "B-MPAL",
                "fusion_partner": rng.choice(("AFF1", "AFF1", "MLLT1", "MLLT3", "MLLT10")),
                "diagnosis_date": _diagnosis(rng, today),
                "age_at_diagnosis_days": age,
                "wbc_at_diagnosis": Decimal(rng.randint(5, 600)),
                "day8_blasts_per_ul": None,
                "prednisone_response": rng.choice(("good", "good", "poor")),
            },
        )
        if (index + 1) % COMMIT_EVERY == 0:
            session.commit()
    session.commit()


def ensure_consent_setup(session: Session) -> None:
    """The sub-studies and the form version the bench's consents use."""
    have = set(session.scalars(select(Substudy.code)))
    for code in SUBSTUDIES:
        if code not in have:
            consent.create_substudy(
                session,
                ACTOR,
                {
                    "code": code,
                    "title": f"Bench sub-study {code}",
                    "principal_investigator": "Bench investigator",
                },
            )
    if session.scalar(select(ConsentFormVersion.id).where(ConsentFormVersion.code == FORM)) is None:
        consent.create_form(
            session,
            ACTOR,
            {
                "code": FORM,
                "title": "Interfant-21 biobank consent form",
                "version": "2.0",
                "language": "en",
                "covers": ["storage", "data", *SUBSTUDIES],
            },
        )
    session.commit()


def add_consents(session: Session, first: int, last: int) -> int:
    """Storage, data and one or two sub-studies given, per patient; returns the entries.

    The consent domain records one entry at a time (each checked against the patient's
    log): for thousands of patients the bench writes the same rows, an entry and its audit
    record per component, with one executemany each.
    """
    ensure_consent_setup(session)
    rng = random.Random(SEED * 7 + first)
    substudies = dict(session.execute(select(Substudy.code, Substudy.id)).all())
    form_id = session.scalar(select(ConsentFormVersion.id).where(ConsentFormVersion.code == FORM))
    done = set(session.scalars(select(ConsentEntry.patient_id).distinct()))
    found = session.execute(
        select(Patient.id, Patient.study_id, Patient.diagnosis_date)
        .where(Patient.study_id.in_([study_id(i) for i in range(first, last)]))
        .order_by(Patient.id)
    ).all()
    now = utcnow()
    entries, audits = [], []
    for patient_id, code, diagnosed in found:
        if patient_id in done:
            continue
        signed = min(diagnosed + dt.timedelta(days=2), clock.today())
        components = ["storage", "data", SUBSTUDIES[0]]
        if rng.random() < 0.5:
            components.append(SUBSTUDIES[1])
        signatory = rng.choice(("mother", "father"))
        for component in components:
            substudy_id = substudies.get(component)
            entries.append(
                {
                    "patient_id": patient_id,
                    "substudy_id": substudy_id,
                    "component": "substudy" if substudy_id else component,
                    "decision": "given",
                    "effective_date": signed,
                    "form_version_id": form_id,
                    "signed_by": signatory,
                    "signatory_note": None,
                    "corrects_id": None,
                    "withdrawal_id": None,
                    "reason": None,
                    "recorded_by": ACTOR,
                    "recorded_at": now,
                }
            )
            audits.append(
                {
                    "entity_type": "patient",
                    "entity_key": code,
                    "action": "consent_recorded",
                    "actor": ACTOR,
                    "occurred_at": now,
                    "reason": None,
                    "old_values": None,
                    "new_values": {
                        "component": component,
                        "decision": "given",
                        "effective_date": signed.isoformat(),
                        "form_version": FORM,
                    },
                }
            )
    for start in range(0, len(entries), PLACE_CHUNK):
        session.execute(insert(ConsentEntry), entries[start : start + PLACE_CHUNK])
        session.execute(insert(AuditRecord), audits[start : start + PLACE_CHUNK])
    session.commit()
    return len(entries)


# --- samples and aliquots: the CSV import --------------------------------------------------


def inventory_rows(
    diagnosed: dict[str, dt.date], first: int, last: int, limit: int
) -> Iterator[list[str]]:
    """CSV rows of patients ``first`` ≤ n < ``last``, at most ``limit`` of them."""
    made = 0
    for index in range(first, last):
        rng = random.Random(SEED * 1_000_003 + index)
        code = study_id(index)
        tube = index * PER_PATIENT  # the patient's tubes are numbered from here
        for number, (timepoint, day, material, kinds) in enumerate(SCHEDULE):
            collected = dt.datetime.combine(
                diagnosed[code] + dt.timedelta(days=day), dt.time(8 + number % 4, 15), dt.UTC
            )
            hours = rng.randint(1, 20)
            received = collected + dt.timedelta(hours=hours)
            accession = f"ACC-{index:06d}-{number:02d}"
            for kind, tubes, volume in kinds:
                for _ in range(tubes):
                    if made >= limit:
                        return
                    made += 1
                    tube += 1
                    external = rng.random() < 0.3
                    yield [
                        tube_code(tube) if external else "",
                        code,
                        timepoint,
                        material,
                        kind,
                        volume or "",
                        "" if volume else str(rng.choice((1, 2, 5, 10)) * 1_000_000),
                        collected.isoformat(),
                        received.isoformat(),
                        CONTAINERS[material],
                        str(hours),
                        "RT",
                        accession,
                        "0",
                        "consumed" if rng.random() < 0.02 else "available",
                        "N" if kind == "MNC-V" else "D",
                    ]


def write_inventory(session: Session, path: Path, first: int, last: int, limit: int) -> int:
    """Write the inventory file of patients ``first`` ≤ n < ``last``; returns its rows."""
    diagnosed = dict(
        session.execute(
            select(Patient.study_id, Patient.diagnosis_date).where(
                Patient.study_id.in_([study_id(i) for i in range(first, last)])
            )
        ).all()
    )
    session.rollback()
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in inventory_rows(diagnosed, first, last, limit):
            writer.writerow(row)
            rows += 1
    return rows


def run_import(database_url: str, path: Path) -> ImportRun:
    """Import a file in a child process (``python -m bench.child``): its time and peak RSS."""
    env = {**os.environ, "BIOBANK_DATABASE_URL": database_url}
    result = subprocess.run(
        [sys.executable, "-m", "bench.child", "import", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the import failed:\n{result.stdout}\n{result.stderr}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return ImportRun(**report)


# --- storage: freezers, shelves, racks, boxes, and the tubes in them ----------------------


class Shelving:
    """Creates the containers boxes go into, as they are needed, through the service."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.numbering = numbering()
        self.made: dict[tuple[int, ...], Container] = {}

    def _child(
        self, key: tuple[int, ...], parent: Container | None, kind: str, name: str
    ) -> Container:
        if key in self.made:
            return self.made[key]
        query = select(Container).where(Container.name == name)
        query = (
            query.where(Container.parent_id == parent.id)
            if parent
            else query.where(Container.kind == "freezer")
        )
        found = self.session.scalar(query)
        if found is None:
            if parent is None:
                found = storage.create_freezer(
                    self.session,
                    ACTOR,
                    {"site": SITE, "name": name, "freezer_type": "mechanical-80", "room": "B.01"},
                    self.numbering,
                )
            else:
                found = storage.create_container(
                    self.session,
                    ACTOR,
                    {"kind": kind, "name": name, "parent": parent.barcode},
                    self.numbering,
                )
        self.made[key] = found
        return found

    def rack_for(self, box_index: int) -> Container:
        """The rack box number ``box_index`` goes into (made with its shelf and freezer)."""
        rack_no = box_index // BOXES_PER_RACK
        shelf_no = rack_no // RACKS_PER_SHELF
        freezer_no = shelf_no // SHELVES_PER_FREEZER
        freezer = self._child((freezer_no,), None, "freezer", f"F-80-{freezer_no + 1:02d}")
        shelf = self._child(
            (freezer_no, shelf_no), freezer, "shelf", f"Shelf {shelf_no % SHELVES_PER_FREEZER + 1}"
        )
        return self._child(
            (freezer_no, shelf_no, rack_no),
            shelf,
            "rack",
            f"Rack {'ABCD'[rack_no % RACKS_PER_SHELF]}",
        )


def store_tubes(session: Session) -> int:
    """Put every in-house tube without a place into new 10×10 boxes; returns how many."""
    shelving = Shelving(session)
    boxes = (
        session.scalar(select(func.count()).select_from(Container).where(Container.kind == "box"))
        or 0
    )
    placed = 0
    while True:
        tubes = [
            Tube(*row)
            for row in session.execute(
                select(Aliquot.id, Aliquot.barcode)
                .outerjoin(Position, Position.aliquot_id == Aliquot.id)
                .where(Position.id.is_(None), Aliquot.status.in_(IN_HOUSE))
                .order_by(Aliquot.id)
                .limit(PLACE_CHUNK)
            )
        ]
        if not tubes:
            break
        targets = []
        for start in range(0, len(tubes), BOX_SIZE):
            rack = shelving.rack_for(boxes)
            box = storage.create_box(
                session, ACTOR, {"box_type": BOX_TYPE, "parent": rack.barcode}, shelving.numbering
            )
            boxes += 1
            for n, tube in enumerate(tubes[start : start + BOX_SIZE]):
                aliquot: Any = tube  # relocate reads only .id and .barcode: a Tube will do
                targets.append(operations.Target(aliquot, box, n // 10 + 1, n % 10 + 1))
        operations.relocate(session, ACTOR, targets, "bench: initial storage", unplaced_only=True)
        session.commit()
        placed += len(tubes)
    return placed


@dataclass
class Growth:
    """What one step of building added, and what the import measured."""

    patients: int
    aliquots: int
    placed: int
    imported: ImportRun | None
    seconds: dict[str, float]


def grow(
    app: Flask, database_url: str, workdir: Path, aliquots: int, progress: Any = print
) -> Growth:
    """Add patients, consents, samples, aliquots, boxes and places up to ``aliquots``."""
    timings: dict[str, float] = {}
    with app.app_context():
        session = get_session()
        have = session.scalar(select(func.count()).select_from(Aliquot)) or 0
        first = session.scalar(select(func.count()).select_from(Patient)) or 0
        session.rollback()
        wanted = aliquots - have
        if wanted <= 0:
            return Growth(0, 0, 0, None, timings)
        last = first + patients_for(wanted)
        started = time.perf_counter()
        add_patients(session, first, last)
        timings["patients"] = time.perf_counter() - started
        progress(f"  {last - first} patients registered ({timings['patients']:.1f} s)")
        started = time.perf_counter()
        add_consents(session, first, last)
        timings["consents"] = time.perf_counter() - started
        progress(f"  consents recorded ({timings['consents']:.1f} s)")
        path = workdir / f"inventory-{first}-{last}.csv"
        rows = write_inventory(session, path, first, last, wanted)
        session.close()
    progress(f"  importing {rows} aliquots ({path.name}) in a child process")
    imported = run_import(database_url, path)
    path.unlink()
    timings["import"] = imported.seconds
    progress(
        f"  imported {imported.aliquots} aliquots in {imported.samples} samples "
        f"({imported.seconds:.1f} s, peak RSS {imported.peak_rss_mb:.0f} MB)"
    )
    with app.app_context():
        session = get_session()
        storage.load_default_box_types(session, ACTOR)
        session.commit()
        started = time.perf_counter()
        placed = store_tubes(session)
        timings["storage"] = time.perf_counter() - started
        progress(f"  {placed} tubes stored in boxes ({timings['storage']:.1f} s)")
    return Growth(last - first, imported.aliquots, placed, imported, timings)
