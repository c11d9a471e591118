"""Concurrent storage changes through real, separately committed transactions.

PostgreSQL only: SQLite lets one writer in at a time, so nothing there can race. These
tests commit for real (outside the per-test rolled-back transaction) and remove what they
made afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest
from db_helpers import restore_tallies, save_tallies
from sqlalchemy import Integer, delete, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from biobank import clock, create_app
from biobank.auth import service as auth_service
from biobank.db import Base
from biobank.errors import Conflict
from biobank.patients import service as patients
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, BarcodeCounter
from biobank.storage import operations, service
from biobank.storage.models import Container, Position
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="real concurrent transactions need PostgreSQL (SQLite has one writer)"
)

ACTOR = "test-concurrency"
NUMBERING = samples.Numbering()


def _snapshot(conn) -> dict:  # type: ignore[no-untyped-def]
    import biobank.models  # noqa: F401  (every table known)

    highest = {}
    for table in Base.metadata.sorted_tables:
        if "id" in table.c and isinstance(table.c.id.type, Integer):
            highest[table.name] = (
                conn.scalar(select(table.c.id).order_by(table.c.id.desc()).limit(1)) or 0
            )
    counters = [dict(r._mapping) for r in conn.execute(select(BarcodeCounter.__table__))]
    return {"highest": highest, "counters": counters, "tallies": save_tallies(conn)}


def _restore(engine: Engine, snap: dict) -> None:  # type: ignore[type-arg]
    """Remove every row made since the snapshot (the custody log's triggers are bypassed:
    these rows were test data, committed only so other connections could see them)."""
    highest = snap["highest"]
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in highest:
                conn.execute(delete(table).where(table.c.id > highest[table.name]))
                continue
            for fk in table.foreign_keys:
                if fk.column.table.name in highest and fk.column.name == "id":
                    conn.execute(delete(table).where(fk.parent > highest[fk.column.table.name]))
        counters = BarcodeCounter.__table__
        conn.execute(delete(counters))
        if snap["counters"]:
            conn.execute(insert(counters), snap["counters"])
        restore_tallies(conn, snap["tallies"])


@pytest.fixture
def live(engine: Engine, database_url: str) -> Iterator[SimpleNamespace]:
    """An app on the real engine, a technician's token, a box and ten committed tubes."""
    with engine.connect() as conn:
        snap = _snapshot(conn)
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    try:
        with Session(engine, expire_on_commit=False) as session:
            patient = patients.register(
                session,
                ACTOR,
                {
                    "study_id": f"IF21-RACE-{time.time_ns() % 10**8}",
                    "site": "NL-PMC",
                    "sex": "F",
                    "diagnosis": "B-ALL",
                    "fusion_partner": "AFF1",
                    "diagnosis_date": clock.today(),
                    "age_at_diagnosis_days": 100,
                    "wbc_at_diagnosis": Decimal("50"),
                    "day8_blasts_per_ul": None,
                    "prednisone_response": "good",
                },
            )
            import datetime as dt

            collected = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
            sample = samples.register_sample(
                session,
                ACTOR,
                {
                    "study_id": patient.study_id,
                    "timepoint": "DX",
                    "unscheduled_reason": None,
                    "material": "BM",
                    "collected_at": collected,
                    "received_at": collected + dt.timedelta(hours=1),
                    "volume_ml": Decimal("4"),
                    "container_code": "PED",
                    "precentrifugation_delay_hours": None,
                    "precentrifugation_temperature": None,
                    "accession_number": None,
                    "notes": None,
                },
                NUMBERING,
            )
            tubes = samples.split(
                session,
                ACTOR,
                sample,
                [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.1")} for _ in range(10)],
                NUMBERING,
            )
            freezer = service.create_freezer(
                session,
                ACTOR,
                {
                    "site": "NL-PMC",
                    "name": f"RACE-{time.time_ns() % 10**8}",
                    "freezer_type": "mechanical-80",
                },
                NUMBERING,
            )
            left = service.create_container(
                session,
                ACTOR,
                {"kind": "rack", "name": "Left", "parent": freezer.barcode},
                NUMBERING,
            )
            right = service.create_container(
                session,
                ACTOR,
                {"kind": "rack", "name": "Right", "parent": freezer.barcode},
                NUMBERING,
            )
            box = service.create_box(
                session, ACTOR, {"box_type": "9X9", "parent": left.barcode}, NUMBERING
            )
            user = auth_service.create_user(session, f"race-tech-{time.time_ns()}", "technician")
            token = auth_service.issue_token(session, user)
            session.commit()
        yield SimpleNamespace(
            app=app,
            engine=engine,
            tubes=tubes,
            box=box,
            left=left,
            right=right,
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        app.extensions["biobank.engine"].dispose()
        _restore(engine, snap)


def _race(live, calls):  # type: ignore[no-untyped-def]
    """Send the requests from separate threads at the same moment; returns the responses."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, url, body):  # type: ignore[no-untyped-def]
        client = live.app.test_client()
        barrier.wait()
        results[index] = client.post(url, json=body, headers=live.headers)

    threads = [
        threading.Thread(target=run, args=(i, url, body)) for i, (url, body) in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_eight_placements_into_one_position_one_wins(live):
    """Eight tubes sent to A1 at once: exactly one 201, seven 409, one row in the table."""
    calls = [
        (f"/api/v1/aliquots/{t.barcode}/place", {"box": live.box.barcode, "position": "A1"})
        for t in live.tubes[:8]
    ]
    statuses = sorted(r.status_code for r in _race(live, calls))
    assert statuses == [201] + [409] * 7, statuses
    with Session(live.engine) as session:
        rows = session.scalars(select(Position).where(Position.box_id == live.box.id)).all()
        assert [(p.row_no, p.col_no) for p in rows] == [(1, 1)]


def test_one_tube_sent_to_two_places_at_once_lands_in_one(live):
    """The same tube placed at A1 and B1 simultaneously: one 201, one 409."""
    tube = live.tubes[0]
    calls = [
        (f"/api/v1/aliquots/{tube.barcode}/place", {"box": live.box.barcode, "position": where})
        for where in ("A1", "B1")
    ]
    assert sorted(r.status_code for r in _race(live, calls)) == [201, 409]


def test_the_unique_constraint_decides_when_both_checks_passed(live):
    """Two transactions both see A2 free; the second one's insert waits for the first and
    then fails: a 409 Conflict, never two tubes in one place."""
    first = Session(live.engine, expire_on_commit=False)
    second = Session(live.engine, expire_on_commit=False)
    outcome: dict = {}
    try:
        box1 = first.get(Container, live.box.id)
        operations.place(first, ACTOR, first.get(Aliquot, live.tubes[8].id), box1, "A2")

        def late() -> None:
            box2 = second.get(Container, live.box.id)
            try:
                operations.place(second, ACTOR, second.get(Aliquot, live.tubes[9].id), box2, "A2")
                second.commit()
                outcome["result"] = "placed"
            except Conflict as exc:
                second.rollback()
                outcome["result"] = exc.message

        thread = threading.Thread(target=late)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), outcome  # waiting on the first transaction's insert
        first.commit()
        thread.join(timeout=30)
    finally:
        first.close()
        second.close()
    assert "taken meanwhile" in outcome["result"]


def test_two_racks_moved_into_each_other_at_once_make_no_loop(live):
    """Left into Right and Right into Left at the same time: one moves, one is refused."""
    calls = [
        (f"/api/v1/containers/{live.left.barcode}/move", {"into": live.right.barcode}),
        (f"/api/v1/containers/{live.right.barcode}/move", {"into": live.left.barcode}),
    ]
    statuses = sorted(r.status_code for r in _race(live, calls))
    assert statuses[0] == 200 and statuses[1] in (409, 422), statuses
    with Session(live.engine) as session:
        parents = dict(
            session.execute(
                select(Container.id, Container.parent_id).where(
                    Container.id.in_([live.left.id, live.right.id])
                )
            ).all()
        )
        assert not (
            parents[live.left.id] == live.right.id and parents[live.right.id] == live.left.id
        )
