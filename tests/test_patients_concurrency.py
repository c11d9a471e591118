"""Concurrent clinical writers on PostgreSQL: the risk rule runs once per patient at a time,
so the history gets one entry per change, never two.

Real connections, each committing its own transaction, in a throwaway schema. Skipped on
SQLite, which lets one writer at a time in.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from biobank import clock
from biobank.db import Base
from biobank.patients import service as patients
from biobank.patients.models import Patient, RiskGroupChange
from biobank.reference.service import load_defaults

PG_URL = os.environ.get("BIOBANK_TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: SQLite serializes writers")
THREADS = 6


@pytest.fixture
def scratch():  # type: ignore[no-untyped-def]
    """An engine whose connections work in a schema of their own, dropped afterwards."""
    schema = f"risk_race_{os.getpid()}"
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


def _patient(engine, **values) -> str:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        load_defaults(session, "setup")
        patient = patients.register(
            session,
            "setup",
            {
                "study_id": "IF21-NL-950",
                "site": "NL-PMC",
                "sex": "M",
                "diagnosis": "B-ALL",
                "fusion_partner": "AFF1",
                "diagnosis_date": clock.today() - dt.timedelta(days=60),
                "age_at_diagnosis_days": 300,
                "wbc_at_diagnosis": Decimal("50"),
                "day8_blasts_per_ul": None,
                "prednisone_response": "good",
                **values,
            },
        )
        session.commit()
        return patient.study_id


def _race(engine, study_id: str, act) -> list[BaseException]:  # type: ignore[no-untyped-def]
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            start.wait(10)
            with Session(engine) as session:
                patient = patients.get_patient(
                    session, study_id, with_history=True, for_update=True
                )
                act(session, patient, number)
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return failures


def test_concurrent_mrd_results_escalate_once(scratch):
    """Six EOI results ≥ 1% (different methods' repeats) at once: one MR→HR entry."""
    study_id = _patient(scratch)

    def record(session, patient, number):  # type: ignore[no-untyped-def]
        patients.record_mrd(
            session,
            f"w{number}",
            patient,
            {
                "timepoint": "EOI",
                "value_percent": Decimal(2 + number),
                "method": ("PCR", "FLOW", "NGS")[number % 3] if number < 3 else f"M{number}",
                "measured_on": clock.today() - dt.timedelta(days=20),
            },
        )

    assert _race(scratch, study_id, record) == []
    with Session(scratch) as session:
        history = list(session.scalars(select(RiskGroupChange).order_by(RiskGroupChange.id)))
        assert [(h.previous, h.risk_group) for h in history] == [(None, "MR"), ("MR", "HR")]
        assert session.scalar(select(Patient.risk_group)) == "HR"


def test_concurrent_day8_results_confirm_a_provisional_group_once(scratch):
    """Six writers enter the same good day-8 count: MR becomes definite in one entry."""
    study_id = _patient(scratch, age_at_diagnosis_days=100, prednisone_response="unknown")

    def update(session, patient, number):  # type: ignore[no-untyped-def]
        patients.update_clinical(
            session, f"w{number}", patient, {"day8_blasts_per_ul": 100 + number}, "day-8 count"
        )

    assert _race(scratch, study_id, update) == []
    with Session(scratch) as session:
        history = list(session.scalars(select(RiskGroupChange).order_by(RiskGroupChange.id)))
        assert [(h.risk_group, h.provisional) for h in history] == [("MR", True), ("MR", False)]
