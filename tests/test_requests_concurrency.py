"""Requests allocated at the same moment, through real, separately committed transactions:
no tube is ever reserved for two of them.

PostgreSQL only: SQLite lets one writer in at a time, so nothing there can race. The test
commits for real (outside the per-test rolled-back transaction) and removes what it made.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest
from db_helpers import restore_tallies, save_tallies
from sqlalchemy import Integer, delete, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth.service import Asker
from biobank.consent import service as consent
from biobank.custody.models import CustodyEvent
from biobank.db import Base
from biobank.errors import Conflict
from biobank.patients import service as patients
from biobank.requests import allocation, lifecycle
from biobank.requests.models import HELD, RequestAliquot, SampleRequest
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, BarcodeCounter, Sample
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="real concurrent transactions need PostgreSQL (SQLite has one writer)"
)

ACTOR = "test-request-race"
NUMBERING = samples.Numbering()
RACERS = 4
PATIENTS, TUBES_EACH = 6, 2


@pytest.fixture
def committed(engine: Engine) -> Iterator[SimpleNamespace]:
    """Six consented patients with two tubes each and four approved requests that together
    ask for exactly those twelve tubes; all committed, and removed afterwards."""
    import biobank.models  # noqa: F401  (every table known)

    tables = [
        t for t in Base.metadata.sorted_tables if "id" in t.c and isinstance(t.c.id.type, Integer)
    ]
    with engine.connect() as conn:
        highest = {t.name: conn.scalar(select(func.max(t.c.id))) or 0 for t in tables}
        counters = [dict(r._mapping) for r in conn.execute(select(BarcodeCounter.__table__))]
        tallies = save_tallies(conn)
    stamp = time.time_ns() % 10**8
    substudy = f"RACE-{stamp}"
    try:
        with Session(engine, expire_on_commit=False) as session:
            consent.create_substudy(
                session, ACTOR, {"code": substudy, "title": "t", "principal_investigator": "p"}
            )
            consent.create_form(
                session,
                ACTOR,
                {
                    "code": f"ICF-{stamp}",
                    "title": "t",
                    "version": "1",
                    "language": "nl",
                    "covers": ["storage", substudy],
                },
            )
            tubes = []
            for index in range(PATIENTS):
                patient = patients.register(
                    session,
                    ACTOR,
                    {
                        "study_id": f"IF21-RQ-{stamp}-{index}",
                        "site": "NL-PMC",
                        "sex": "F",
                        "diagnosis": "B-ALL",
                        "fusion_partner": "AFF1",
                        "diagnosis_date": clock.today() - dt.timedelta(days=30),
                        "age_at_diagnosis_days": 100,
                        "wbc_at_diagnosis": Decimal(50),
                        "day8_blasts_per_ul": None,
                        "prednisone_response": "good",
                    },
                )
                collected = dt.datetime.now(dt.UTC) - dt.timedelta(days=29)
                sample = samples.register_sample(
                    session,
                    ACTOR,
                    {
                        "study_id": patient.study_id,
                        "timepoint": "DX",
                        "unscheduled_reason": None,
                        "material": "BM",
                        "collected_at": collected,
                        "received_at": collected,
                        "volume_ml": Decimal(2),
                        "container_code": "PED",
                        "precentrifugation_delay_hours": None,
                        "precentrifugation_temperature": None,
                        "accession_number": None,
                        "notes": None,
                    },
                    NUMBERING,
                )
                tubes += samples.split(
                    session,
                    ACTOR,
                    sample,
                    [
                        {"aliquot_type": "PLASMA", "volume_ml": Decimal("0.1")}
                        for _ in range(TUBES_EACH)
                    ],
                    NUMBERING,
                )
                for component in ("storage", substudy):
                    consent.record_consent(
                        session,
                        ACTOR,
                        patient,
                        {
                            "component": component,
                            "decision": "given",
                            "signed_on": clock.today() - dt.timedelta(days=20),
                            "form_version": f"ICF-{stamp}",
                            "signed_by": "mother",
                        },
                    )
            researcher = Asker(0, f"race-researcher-{stamp}", "researcher", substudies=(substudy,))
            manager = Asker(0, f"race-manager-{stamp}", "manager")
            numbers = []
            for _ in range(RACERS):
                request = lifecycle.create(
                    session,
                    researcher,
                    {
                        "substudy": substudy,
                        "title": "race",
                        "purpose": "race",
                        "submit": True,
                        "criteria": {
                            "timepoints": ["DX"],
                            "aliquots_per_patient_timepoint": 2,
                            "patients": PATIENTS * TUBES_EACH // 2 // RACERS + 1,
                        },
                    },
                )
                lifecycle.approve(session, manager, request.number, None)
                numbers.append(request.number)
            session.commit()
        yield SimpleNamespace(numbers=numbers, manager=manager, tube_ids=[t.id for t in tubes])
    finally:
        with engine.begin() as conn:
            # Test data committed only so other connections could see it: the append-only
            # triggers are bypassed to remove it.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for table in reversed(Base.metadata.sorted_tables):
                if table.name in highest:
                    conn.execute(delete(table).where(table.c.id > highest[table.name]))
                    continue
                for fk in table.foreign_keys:
                    parent = fk.column.table.name
                    if parent in highest and fk.column.name == "id":
                        conn.execute(delete(table).where(fk.parent > highest[parent]))
            conn.execute(delete(BarcodeCounter.__table__))
            if counters:
                conn.execute(insert(BarcodeCounter.__table__), counters)
            restore_tallies(conn, tallies)


def test_requests_allocated_at_once_never_share_a_tube(engine, committed):
    """Four allocations released by one barrier, on four connections: each tube is reserved
    for at most one request, every reservation has its row and its one custody event."""
    barrier = threading.Barrier(RACERS)
    outcomes: dict[str, str] = {}

    def allocate(number: str) -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                allocation.allocate(session, committed.manager, number, allow_partial=True)
                session.commit()
                outcomes[number] = "allocated"
            except Conflict as exc:
                session.rollback()
                outcomes[number] = f"409: {exc.message}"

    threads = [threading.Thread(target=allocate, args=(n,)) for n in committed.numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == RACERS, outcomes
    with Session(engine) as session:
        rows = session.execute(
            select(RequestAliquot.aliquot_id, SampleRequest.number)
            .join(SampleRequest, SampleRequest.id == RequestAliquot.request_id)
            .where(SampleRequest.number.in_(committed.numbers), RequestAliquot.state.in_(HELD))
        ).all()
        per_tube = Counter(aliquot_id for aliquot_id, _ in rows)
        assert per_tube and max(per_tube.values()) == 1, per_tube
        reserved = set(
            session.scalars(
                select(Aliquot.id).where(
                    Aliquot.id.in_(committed.tube_ids), Aliquot.status == "reserved"
                )
            )
        )
        assert reserved == set(per_tube)
        events = Counter(
            session.scalars(
                select(CustodyEvent.aliquot_id).where(
                    CustodyEvent.aliquot_id.in_(committed.tube_ids),
                    CustodyEvent.event_type == "reserved",
                )
            )
        )
        assert events == Counter(reserved), "one reservation event per reserved tube"
        won = [n for n, outcome in outcomes.items() if outcome == "allocated"]
        assert len(won) >= 2, outcomes  # the tubes suffice for more than one
        states = dict(
            session.execute(
                select(SampleRequest.number, SampleRequest.state).where(
                    SampleRequest.number.in_(committed.numbers)
                )
            ).all()
        )
        assert {states[n] for n in won} == {"allocated"}
        for number, outcome in outcomes.items():
            if outcome != "allocated":
                assert states[number] == "approved", outcome
        owners = dict(
            session.execute(
                select(Aliquot.id, Sample.patient_id)
                .join(Sample, Sample.id == Aliquot.sample_id)
                .where(Aliquot.id.in_(committed.tube_ids))
            ).all()
        )
        per_request: dict[str, set[int]] = {}
        for aliquot_id, number in rows:
            per_request.setdefault(number, set()).add(owners[aliquot_id])
        assert all(len(p) <= 2 for p in per_request.values()), per_request


def test_a_repeated_race_still_never_shares_a_tube(engine, committed):
    """Two pairs race one after the other: the second pair fights over what the first left."""
    first, second = committed.numbers[:2], committed.numbers[2:]
    for pair in (first, second):
        barrier = threading.Barrier(len(pair))

        def allocate(number: str, barrier: threading.Barrier = barrier) -> None:
            with Session(engine, expire_on_commit=False) as session:
                barrier.wait()
                try:
                    allocation.allocate(session, committed.manager, number, allow_partial=True)
                    session.commit()
                except Conflict:
                    session.rollback()

        threads = [threading.Thread(target=allocate, args=(n,)) for n in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    with Session(engine) as session:
        held = session.scalars(
            select(RequestAliquot.aliquot_id)
            .join(SampleRequest)
            .where(SampleRequest.number.in_(committed.numbers), RequestAliquot.state.in_(HELD))
        ).all()
        assert len(held) == len(set(held)) > 0
