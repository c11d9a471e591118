"""Many people at one tube: every write path that touches a tube, under real concurrency.

PostgreSQL only (SQLite lets one writer in at a time). The tubes are committed for real by
the ``live`` fixture of the storage concurrency tests, and removed afterwards.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from biobank.custody import audit
from biobank.custody.models import CustodyEvent
from biobank.errors import CLASHED, Conflict
from biobank.samples.models import Aliquot
from biobank.storage import naming, operations
from biobank.storage.models import Container, Position, Thaw
from tests.conftest import PG_URL
from tests.test_storage_concurrency import live  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="real concurrent transactions need PostgreSQL (SQLite has one writer)"
)

WRITERS = 16
ROUNDS = 8


def _one_tube_operations(box: str, rng: random.Random) -> tuple[str, dict]:  # type: ignore[type-arg]
    """One operation of the mix, chosen at random: anything a person may do to a tube."""
    spot = naming.label("letter-number", 9, rng.randint(1, 9), rng.randint(1, 9))
    return rng.choice(
        [
            ("move", {"box": box, "position": spot}),
            ("move", {"box": box, "position": spot}),
            ("take-out", {"reason": "pipetting"}),
            ("take-out", {}),
            ("put-back", {}),
            ("put-back", {"box": box, "position": spot}),
            ("thaw", {}),
            ("refreeze", {}),
            ("missing", {"reason": "not in its place"}),
            ("found", {}),
            ("status", {"status": "blocked", "reason": "query on the label"}),
            ("status", {"status": "available"}),
        ]
    )


def _state_from_log(events: list[CustodyEvent]) -> dict:  # type: ignore[type-arg]
    """What the custody log says about a tube: its place, whether out, thawed, its status."""
    state = {"box_id": None, "position": None, "out": False, "thawed": False, "status": "available"}
    for event in events:
        new = event.new_values or {}
        if "box_id" in new:
            state.update(
                box_id=new["box_id"], position=new["position"], out=new["freezer_id"] is None
            )
        elif new.get("freezer_id", "absent") is None and event.event_type == "unstored":
            state.update(box_id=None, position=None, out=False)
        if event.event_type == "thawed":
            state["thawed"] = True
        if event.event_type == "refrozen":
            state["thawed"] = False
        if "status" in new:
            state["status"] = new["status"]
    return state


def _state_in_tables(session: Session, aliquot_id: int) -> dict:  # type: ignore[type-arg]
    """What the tables say about the same tube."""
    tube = session.get_one(Aliquot, aliquot_id)
    place = session.scalar(select(Position).where(Position.aliquot_id == aliquot_id))
    position = None
    if place is not None:
        box = session.get_one(Container, place.box_id)
        position = naming.label(
            box.box_type.scheme,
            box.box_type.columns,  # type: ignore[union-attr]
            place.row_no,
            place.col_no,
        )
    return {
        "box_id": place.box_id if place else None,
        "position": position if place else None,
        "out": place is not None and place.out_since is not None,
        "thawed": session.get(Thaw, aliquot_id) is not None,
        "status": tube.status,
    }


def test_sixteen_writers_at_one_tube_get_no_server_error_and_the_log_agrees(live):  # noqa: F811
    """16 writers send 8 random tube operations each (moves, take-outs, put-backs, thaws,
    refreezes, missing and found, status changes) to one tube at once: no answer is a 5xx,
    the tube's place, status and thaw agree with its custody log, and its chain verifies."""
    tube = live.tubes[0]
    client = live.app.test_client()
    placed = client.post(
        f"/api/v1/aliquots/{tube.barcode}/place",
        json={"box": live.box.barcode, "position": "A1"},
        headers=live.headers,
    )
    assert placed.status_code == 201, placed.json
    barrier = threading.Barrier(WRITERS)
    outcomes: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        own = live.app.test_client()
        barrier.wait()
        for _ in range(ROUNDS):
            action, body = _one_tube_operations(live.box.barcode, rng)
            try:
                response = own.post(
                    f"/api/v1/aliquots/{tube.barcode}/{action}", json=body, headers=live.headers
                )
                status = response.status_code
                if status == 409 and response.json["message"] == CLASHED:
                    action = f"{action} (clashed)"
            except Exception as exc:  # noqa: BLE001  (a crash the server would answer 500)
                status = 500
                print(action, repr(exc)[:300])
            with lock:
                outcomes[(action, status)] += 1

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    print("writers", WRITERS, "operations", sum(outcomes.values()), dict(outcomes))
    errors = {key: n for key, n in outcomes.items() if key[1] >= 500}
    assert not errors, outcomes
    assert sum(outcomes.values()) == WRITERS * ROUNDS
    with Session(live.engine) as session:
        events = list(
            session.scalars(
                select(CustodyEvent)
                .where(CustodyEvent.aliquot_id == tube.id)
                .order_by(CustodyEvent.id)
            )
        )
        assert _state_from_log(events) == _state_in_tables(session, tube.id)
        assert audit.verify_aliquot(session, tube.id).ok


def _waiting_for_a_lock(engine, application_name: str) -> bool:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND wait_event_type = 'Lock'"
                ),
                {"name": application_name},
            )
        )


def test_a_move_in_flight_when_the_tube_is_taken_out_is_refused_not_a_put_back(live):  # noqa: F811
    """A move reads the tube stored while a take-out of it is uncommitted; the take-out
    commits first: the move is refused (taken out) instead of recorded as a put-back."""
    tube = live.tubes[0]
    name = f"move-race-{time.time_ns()}"
    mover = create_engine(PG_URL, connect_args={"application_name": name})  # type: ignore[arg-type]
    try:
        with Session(live.engine, expire_on_commit=False) as session:
            box = session.get_one(Container, live.box.id)
            operations.place(session, "setup", session.get_one(Aliquot, tube.id), box, "A1")
            session.commit()
        outcome: list[object] = []

        def move() -> None:
            with Session(mover, expire_on_commit=False) as session:
                try:
                    operations.move(
                        session,
                        "mover",
                        [
                            operations.Target(
                                session.get_one(Aliquot, tube.id),
                                session.get_one(Container, live.box.id),
                                2,
                                2,
                            )
                        ],
                    )
                    session.commit()
                    outcome.append("moved")
                except Conflict as exc:
                    outcome.append(exc)

        with Session(live.engine) as taker:
            operations.take_out(taker, "taker", taker.get_one(Aliquot, tube.id), "to thaw")
            thread = threading.Thread(target=move)
            thread.start()
            deadline = time.monotonic() + 20
            while not _waiting_for_a_lock(live.engine, name) and thread.is_alive():
                assert time.monotonic() < deadline, "the move never waited for the take-out"
                time.sleep(0.05)
            taker.commit()
        thread.join(timeout=30)
        assert len(outcome) == 1
        assert isinstance(outcome[0], Conflict), outcome
        assert "taken out" in outcome[0].message
        with Session(live.engine) as session:
            kinds = list(
                session.scalars(
                    select(CustodyEvent.event_type)
                    .where(CustodyEvent.aliquot_id == tube.id)
                    .order_by(CustodyEvent.id)
                )
            )
            assert kinds[-1] == "taken_out" and "put_back" not in kinds
            place = session.scalar(select(Position).where(Position.aliquot_id == tube.id))
            assert place is not None and place.out_since is not None
    finally:
        mover.dispose()


def test_bulk_moves_of_overlapping_tubes_in_opposite_orders_never_deadlock_into_a_500(live):  # noqa: F811
    """12 writers move four tubes about in bulk (listed in opposite orders), while others
    take them out, put them back and block them: no 5xx; every tube's place and status
    agree with its custody log, and every chain verifies."""
    tubes = live.tubes[:4]
    client = live.app.test_client()
    for index, tube in enumerate(tubes):
        answer = client.post(
            f"/api/v1/aliquots/{tube.barcode}/place",
            headers=live.headers,
            json={"box": live.box.barcode, "position": f"A{index + 1}"},
        )
        assert answer.status_code == 201, answer.json
    barrier = threading.Barrier(12)
    outcomes: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        own = live.app.test_client()
        barrier.wait()
        for _ in range(ROUNDS):
            chosen = rng.sample(tubes, 3)
            if seed % 3 == 0:
                spots = rng.sample(range(1, 10), 3)
                url, body, action = (
                    "/api/v1/storage/moves",
                    {
                        "moves": [
                            {
                                "aliquot": t.barcode,
                                "box": live.box.barcode,
                                "position": f"{'BC'[seed % 2]}{spot}",
                            }
                            for t, spot in zip(chosen, spots, strict=True)
                        ]
                    },
                    "bulk-move",
                )
            else:
                action, body = _one_tube_operations(live.box.barcode, rng)
                url = f"/api/v1/aliquots/{chosen[0].barcode}/{action}"
            try:
                status = own.post(url, json=body, headers=live.headers).status_code
            except Exception as exc:  # noqa: BLE001  (a crash the server would answer 500)
                status = 500
                print(action, repr(exc)[:300])
            with lock:
                outcomes[(action, status)] += 1

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    print("writers 12 operations", sum(outcomes.values()), dict(outcomes))
    assert not {key: n for key, n in outcomes.items() if key[1] >= 500}, outcomes
    assert sum(outcomes.values()) == 12 * ROUNDS
    with Session(live.engine) as session:
        for tube in tubes:
            events = list(
                session.scalars(
                    select(CustodyEvent)
                    .where(CustodyEvent.aliquot_id == tube.id)
                    .order_by(CustodyEvent.id)
                )
            )
            assert _state_from_log(events) == _state_in_tables(session, tube.id)
            assert audit.verify_aliquot(session, tube.id).ok


def test_a_deadlock_the_server_broke_is_answered_409_with_retry_after(live):  # noqa: F811
    """Two transactions lock two tubes in opposite orders; PostgreSQL aborts one with
    40P01: the service answers it 409 (nothing changed, try again), never a 500."""
    first, second = live.tubes[0].id, live.tubes[1].id
    caught: list[BaseException] = []
    ready = threading.Barrier(2)

    def lock_both(a: int, b: int) -> None:
        with live.engine.connect() as conn, conn.begin():
            try:
                conn.execute(text("SELECT 1 FROM aliquot WHERE id = :id FOR UPDATE"), {"id": a})
                ready.wait()
                conn.execute(text("SELECT 1 FROM aliquot WHERE id = :id FOR UPDATE"), {"id": b})
            except Exception as exc:  # noqa: BLE001  (the one the server chose)
                caught.append(exc)

    threads = [
        threading.Thread(target=lock_both, args=pair) for pair in ((first, second), (second, first))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(caught) == 1
    with live.app.test_request_context("/api/v1/aliquots/X/move", method="POST"):
        response = live.app.make_response(live.app.handle_user_exception(caught[0]))
    assert response.status_code == 409
    assert response.headers["Retry-After"] == "1"
    assert response.json == {"code": 409, "status": "Conflict", "message": CLASHED}
