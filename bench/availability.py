"""Time availability over many aliquots: ``python -m bench.availability --aliquots 100000``.

Builds a scratch SQLite database (never the app's) with 160 patients, a consent log with
withdrawals and corrections, MRD results and the given number of aliquots, inserted in bulk
with Core (the API would take hours), then times ``availability.count`` for a few filters.

Its tubes sit in ~2,200 samples whatever their number, where a biobank has one sample per
~8 tubes: a million of them here make ~7,000 (sample, type) groups, not ~330,000 as in
``python -m bench``'s biobank. Counting from the tubes (filters on volume or freeze–thaw
cycles) costs per group, so these timings understate it at scale: ~100 ms here against
~400 ms of CPU there, for the same million tubes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import biobank.models  # noqa: F401  (every table)
from biobank.consent.models import ConsentEntry, ConsentFormVersion, Substudy, Withdrawal
from biobank.db import Base, make_engine
from biobank.patients.models import MrdResult, Patient
from biobank.reference.models import AliquotType, Material, Site, Timepoint
from biobank.reference.service import load_defaults
from biobank.requests import availability
from biobank.samples.models import Aliquot, Sample

ACTOR = "bench"
STATUSES = (
    ["available"] * 85
    + ["reserved"] * 3
    + ["shipped"] * 4
    + ["consumed"] * 6
    + ["destroyed", "blocked"]
)
TYPES_FOR = {
    "BM": ["MNC-V", "PELLET", "PLASMA", "DNA"],
    "PB": ["MNC-V", "PLASMA", "PELLET"],
    "CSF": ["CSF-SUP", "CSF-CELLS"],
}


def populate(engine: Engine, aliquots: int, patients: int = 160, seed: int = 21) -> None:
    """Fill an empty database: reference data, patients, consent, samples, aliquots."""
    rng = random.Random(seed)
    Base.metadata.create_all(engine)
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    with Session(engine) as session:
        load_defaults(session, ACTOR)
        session.flush()
        site = session.scalar(select(Site.id))
        materials = dict(session.execute(select(Material.code, Material.id)).all())
        kinds = dict(session.execute(select(AliquotType.code, AliquotType.id)).all())
        timepoints = dict(session.execute(select(Timepoint.code, Timepoint.id)).all())
        substudy = Substudy(code="DEMO", title="bench", principal_investigator="bench")
        form = ConsentFormVersion(
            code="F1", title="f", version="1", language="en", covers=["storage", "DEMO"]
        )
        session.add_all([substudy, form])
        session.flush()
        patient_rows = [
            {
                "study_id": f"IF21-B-{i:04d}",
                "site_id": site,
                "sex": rng.choice("FM"),
                "diagnosis": "B-MPAL" if rng.random() < 0.08 else "B-ALL",
                "fusion_partner": "AFF1",
                "diagnosis_date": today - dt.timedelta(days=400),
                "age_at_diagnosis_days": rng.randint(10, 360),
                "prednisone_response": "good",
                "risk_group": rng.choice(("MR", "MR", "HR")),
                "created_at": now,
            }
            for i in range(patients)
        ]
        patient_ids = list(
            session.scalars(
                insert(Patient).returning(Patient.id, sort_by_parameter_order=True), patient_rows
            )
        )
        entries, mrd = [], []
        for pid in patient_ids:
            signed = today - dt.timedelta(days=rng.randint(30, 390))
            for component, substudy_id, chance in (
                ("storage", None, 0.95),
                ("substudy", substudy.id, 0.75),
            ):
                if rng.random() < chance:
                    entries.append(
                        {
                            "patient_id": pid,
                            "component": component,
                            "substudy_id": substudy_id,
                            "decision": "given",
                            "effective_date": signed,
                            "form_version_id": form.id,
                            "signed_by": "mother",
                            "recorded_by": ACTOR,
                            "recorded_at": now,
                        }
                    )
            for code in ("EOI", "B1"):
                if rng.random() < 0.7:
                    mrd.append(
                        {
                            "patient_id": pid,
                            "timepoint_id": timepoints[code],
                            "value_percent": Decimal(str(rng.choice((0.001, 0.005, 0.02, 0.5, 3)))),
                            "method": "PCR",
                            "actor": ACTOR,
                            "recorded_at": now,
                        }
                    )
        session.execute(insert(ConsentEntry), entries)
        session.execute(insert(MrdResult), mrd)
        # A few sub-study withdrawals, so the rule has more than one entry per component.
        for pid in rng.sample(patient_ids, max(1, patients // 20)):
            withdrawal = Withdrawal(
                patient_id=pid,
                scope="substudy",
                substudy_id=substudy.id,
                withdrawn_on=today - dt.timedelta(days=10),
                requested_by="mother",
                recorded_by=ACTOR,
            )
            session.add(withdrawal)
            session.flush()
            session.add(
                ConsentEntry(
                    patient_id=pid,
                    component="substudy",
                    substudy_id=substudy.id,
                    decision="withdrawn",
                    effective_date=withdrawal.withdrawn_on,
                    signed_by="mother",
                    withdrawal_id=withdrawal.id,
                    recorded_by=ACTOR,
                )
            )
        sample_rows = []
        for pid in patient_ids:
            for tp in ("DX", "D8", "D15", "EOI", "B1", "EOC"):
                for material in ("BM", "PB", "CSF") if tp in ("DX", "EOI") else ("BM", "PB"):
                    collected = now - dt.timedelta(days=rng.randint(31, 390))
                    sample_rows.append(
                        {
                            "barcode": f"SM{len(sample_rows):09d}",
                            "patient_id": pid,
                            "timepoint_id": timepoints[tp],
                            "material_id": materials[material],
                            "collected_at": collected,
                            "received_at": collected,
                            "volume_ml": Decimal(4),
                            "volume_remaining_ml": Decimal(0),
                            "container_code": "PED",
                            "created_at": now,
                        }
                    )
        samples = list(
            zip(
                session.scalars(
                    insert(Sample).returning(Sample.id, sort_by_parameter_order=True), sample_rows
                ),
                (r["material_id"] for r in sample_rows),
                strict=True,
            )
        )
        by_material = {v: k for k, v in materials.items()}
        batch: list[dict[str, object]] = []
        for number in range(aliquots):
            sample_id, material_id = samples[rng.randrange(len(samples))]
            volume = Decimal(rng.choice(("0.1", "0.25", "0.5", "1.0")))
            batch.append(
                {
                    "barcode": f"IF{number:010d}",
                    "barcode_source": "issued",
                    "sample_id": sample_id,
                    "aliquot_type_id": kinds[rng.choice(TYPES_FOR[by_material[material_id]])],
                    "volume_ml": volume,
                    "volume_remaining_ml": volume,
                    "freeze_thaw_count": rng.choice((0, 0, 0, 1, 2)),
                    "status": rng.choice(STATUSES),
                    "created_at": now,
                }
            )
            if len(batch) == 20_000:
                session.execute(insert(Aliquot), batch)
                batch = []
        if batch:
            session.execute(insert(Aliquot), batch)
        session.commit()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


FILTER_SETS = {
    "no filter": {},
    "HR, ≥0.25 mL, ≤1 thaw": {"risk_groups": ["HR"], "min_volume_ml": "0.25", "max_freeze_thaw": 1},
    "BM at DX+EOI, MRD-negative at EOI": {
        "materials": ["BM"],
        "timepoints": ["DX", "EOI"],
        "mrd_status": "negative",
        "mrd_timepoint": "EOI",
    },
}


def time_availability(engine: Engine, runs: int = 7) -> dict[str, float]:
    """Median milliseconds of ``availability.count`` per filter set (after one warm-up)."""
    timings = {}
    with Session(engine) as session:
        substudy = session.scalar(select(Substudy).where(Substudy.code == "DEMO"))
        assert substudy is not None
        for name, criteria in FILTER_SETS.items():
            filters = availability.resolve(session, criteria)
            availability.count(session, substudy, filters)
            spent = []
            for _ in range(runs):
                start = time.perf_counter()
                availability.count(session, substudy, filters)
                spent.append((time.perf_counter() - start) * 1000)
            timings[name] = statistics.median(spent)
    return timings


def main() -> None:
    """Build the scratch database and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aliquots", type=int, default=100_000)
    parser.add_argument("--database", help="SQLite file (default: a temporary one)")
    args = parser.parse_args()
    path = Path(args.database or Path(tempfile.mkdtemp()) / "bench.db")
    fresh = not path.exists()
    engine = make_engine(f"sqlite:///{path}")
    if fresh:
        start = time.perf_counter()
        populate(engine, args.aliquots)
        print(f"built {path} with {args.aliquots} aliquots in {time.perf_counter() - start:.1f} s")
    for name, ms in time_availability(engine).items():
        print(f"availability ({name}): {ms:.1f} ms")


if __name__ == "__main__":
    main()
