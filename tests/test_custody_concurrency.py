"""Concurrent writers on PostgreSQL never fork or break a custody chain.

Real connections, each committing its own transactions, in a throwaway schema (so the
append-only log needs no cleaning: the schema is dropped). Skipped on SQLite, which lets
one writer at a time in and so cannot interleave appends.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from biobank import clock
from biobank.custody import audit
from biobank.custody.models import CustodyEvent
from biobank.custody.service import record_event, record_events
from biobank.db import Base
from biobank.patients import service as patients
from biobank.reference.service import load_defaults
from biobank.samples import service as samples

PG_URL = os.environ.get("BIOBANK_TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: SQLite serializes writers")
THREADS = 6
ROUNDS = 15


@pytest.fixture
def scratch():  # type: ignore[no-untyped-def]
    """An engine whose connections work in a schema of their own, dropped afterwards."""
    schema = f"custody_race_{os.getpid()}"
    admin = create_engine(PG_URL)  # type: ignore[arg-type]
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(
        PG_URL,
        pool_size=THREADS + 2,  # type: ignore[arg-type]
        connect_args={"options": f"-csearch_path={schema}"},
    )
    with engine.begin() as conn:
        Base.metadata.create_all(conn)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _tubes(engine) -> tuple[list[int], int]:  # type: ignore[no-untyped-def]
    """Three committed aliquots of one sample."""
    with Session(engine, expire_on_commit=False) as session:
        load_defaults(session, "setup")
        patient = patients.register(
            session,
            "setup",
            {
                "study_id": "IF21-NL-900",
                "site": "NL-PMC",
                "sex": "M",
                "diagnosis": "B-ALL",
                "fusion_partner": "AFF1",
                "diagnosis_date": clock.today() - dt.timedelta(days=30),
                "age_at_diagnosis_days": 100,
                "wbc_at_diagnosis": Decimal("50"),
                "day8_blasts_per_ul": None,
                "prednisone_response": "good",
            },
        )
        collected = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        sample = samples.register_sample(
            session,
            "setup",
            {
                "study_id": patient.study_id,
                "timepoint": "DX",
                "unscheduled_reason": None,
                "material": "BM",
                "collected_at": collected,
                "received_at": collected,
                "volume_ml": Decimal("3"),
                "container_code": "PED",
                "precentrifugation_delay_hours": None,
                "precentrifugation_temperature": None,
                "accession_number": None,
                "notes": None,
            },
            samples.Numbering(),
        )
        made = samples.split(
            session,
            "setup",
            sample,
            [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.5")} for _ in range(3)],
            samples.Numbering(),
        )
        session.commit()
        return [a.id for a in made], sample.id


def test_concurrent_appends_to_the_same_chains_stay_one_line(scratch):
    """Six writers, each committing 15 times: single events, bulk events over the same
    tubes in random order, and sample events. Every chain verifies; no event shares a
    predecessor; nobody deadlocks or fails."""
    aliquot_ids, sample_id = _tubes(scratch)
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        rng = random.Random(number)
        try:
            start.wait(10)
            for round_ in range(ROUNDS):
                with Session(scratch) as session:
                    shuffled = rng.sample(aliquot_ids, len(aliquot_ids))
                    if round_ % 3 == 0:
                        record_event(
                            session,
                            f"w{number}",
                            "checked",
                            aliquot_id=shuffled[0],
                            new_values={"round": round_},
                        )
                    elif round_ % 3 == 1:
                        record_events(
                            session,
                            [{"event_type": "checked", "aliquot_id": a} for a in shuffled],
                            f"w{number}",
                        )
                    else:
                        record_event(session, f"w{number}", "noted", sample_id=sample_id)
                        record_event(session, f"w{number}", "checked", aliquot_id=shuffled[-1])
                    session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with Session(scratch) as session:
        total = session.scalar(select(func.count()).select_from(CustodyEvent))
        distinct = session.scalar(select(func.count(func.distinct(CustodyEvent.prev_hash))))
        result = audit.verify_all(session)
    # setup: received + 3 aliquoted + split; per writer 5 × 1 + 5 × 3 + 5 × 2 events.
    assert total == 5 + THREADS * 30
    assert distinct == total
    assert result.ok, result.broken
    assert result.checked == total
