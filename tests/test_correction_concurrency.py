"""Correcting a withdrawal while others write the same patient's tubes, through real,
separately committed transactions.

PostgreSQL only: SQLite lets one writer in at a time, so nothing there can race. The
patient, its tubes and its storage withdrawal are committed for real by the ``committed``
fixture of the consent concurrency tests, and removed afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import correction, followup, withdrawal
from biobank.consent.models import DestructionTask, Withdrawal, WithdrawalCorrection
from biobank.custody import audit
from biobank.custody.models import CustodyEvent
from biobank.errors import TRANSACTION_ROLLBACK, Conflict, sqlstate
from biobank.patients.models import Patient
from biobank.samples.models import Aliquot, Sample
from tests.conftest import PG_URL
from tests.test_consent_concurrency import ACTOR, committed  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="real concurrent transactions need PostgreSQL (SQLite has one writer)"
)


def _withdrawn(engine, patient_id: int) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    """Withdraw the patient's storage consent (committed): the withdrawal, its tasks (ids)."""
    with Session(engine, expire_on_commit=False) as session:
        withdrawal.withdraw(
            session,
            ACTOR,
            session.get_one(Patient, patient_id),
            {"scope": "storage", "date": clock.today(), "requested_by": "mother"},
        )
        session.commit()
        wid = session.scalar(select(Withdrawal.id).where(Withdrawal.patient_id == patient_id))
        tasks = list(
            session.scalars(
                select(DestructionTask.id)
                .where(DestructionTask.withdrawal_id == wid)
                .order_by(DestructionTask.id)
            )
        )
    assert wid is not None
    return wid, tasks


def _race(
    engine,
    writers: list[Callable[[Session], None]],  # type: ignore[no-untyped-def]
    delays: list[float],
) -> list[str]:
    """Run each writer in its own session and thread, started together (each after its
    delay), holding its transaction 0.3 s before committing; returns what each was
    answered: "ok", "409" (a refusal, or a clash PostgreSQL broke), or "500: ..."."""
    barrier = threading.Barrier(len(writers))
    outcomes = [""] * len(writers)

    def run(index: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            time.sleep(delays[index])
            try:
                writers[index](session)
                time.sleep(0.3)  # hold the locks: the other must wait, or read around them
                session.commit()
                outcomes[index] = "ok"
            except Conflict:
                session.rollback()
                outcomes[index] = "409"
            except OperationalError as exc:
                session.rollback()
                outcomes[index] = (
                    "409" if sqlstate(exc) in TRANSACTION_ROLLBACK else f"500: {exc!r}"[:300]
                )
            except Exception as exc:  # noqa: BLE001  (what the server would answer 500)
                session.rollback()
                outcomes[index] = f"500: {exc!r}"[:300]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _log_agrees(engine, patient_id: int) -> None:  # type: ignore[no-untyped-def]
    """Every tube of the patient: its status is the one its custody log last set, its
    chain verifies, and no destruction task is both done and cancelled."""
    with Session(engine) as session:
        for tube in session.scalars(
            select(Aliquot).join(Sample).where(Sample.patient_id == patient_id)
        ):
            said = [
                e.new_values["status"]
                for e in session.scalars(
                    select(CustodyEvent)
                    .where(CustodyEvent.aliquot_id == tube.id)
                    .order_by(CustodyEvent.id)
                )
                if e.new_values and "status" in e.new_values
            ]
            assert (said or ["available"])[-1] == tube.status, (tube.barcode, said)
            assert audit.verify_aliquot(session, tube.id).ok
        assert (
            session.scalar(
                select(func.count())
                .select_from(DestructionTask)
                .join(Withdrawal)
                .where(
                    Withdrawal.patient_id == patient_id,
                    DestructionTask.completed_at.is_not(None),
                    DestructionTask.cancelled_at.is_not(None),
                )
            )
            == 0
        )


def test_two_officers_correcting_one_withdrawal_at_once_one_wins(engine, committed):  # noqa: F811
    """Two officers correct the same withdrawal at once: one correction, the other a 409."""
    wid, _ = _withdrawn(engine, committed.patient_id)

    def correct(session: Session) -> None:
        correction.correct(session, ACTOR, wid, "recorded on the wrong patient")

    assert sorted(_race(engine, [correct, correct], [0, 0])) == ["409", "ok"]
    with Session(engine) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(WithdrawalCorrection)
                .where(WithdrawalCorrection.withdrawal_id == wid)
            )
            == 1
        )
        assert set(
            session.scalars(
                select(Aliquot.status).join(Sample).where(Sample.patient_id == committed.patient_id)
            )
        ) == {"available"}
        unblocked = session.scalar(
            select(func.count())
            .select_from(CustodyEvent)
            .join(Aliquot)
            .join(Sample)
            .where(
                Sample.patient_id == committed.patient_id, CustodyEvent.event_type == "unblocked"
            )
        )
        assert unblocked == 5
    _log_agrees(engine, committed.patient_id)


@pytest.mark.parametrize("first", ["technician", "officer"])
def test_a_correction_racing_a_destruction_keeps_status_and_log_agreed(
    engine,
    committed,  # noqa: F811
    first,
):
    """A correction and a technician's reporting two blocked tubes destroyed, either
    first: each tube is destroyed or back in use, never both, and its log says the same."""
    wid, tasks = _withdrawn(engine, committed.patient_id)

    def correct(session: Session) -> None:
        correction.correct(session, ACTOR, wid, "recorded on the wrong patient")

    def destroy(session: Session) -> None:
        for task_id in tasks[:2]:
            followup.complete_task(session, ACTOR, task_id)

    delays = [0.0, 0.1] if first == "technician" else [0.1, 0.0]
    outcomes = _race(engine, [destroy, correct], delays)
    # The technician first: both done, the correction finds two tubes already destroyed.
    # The officer first: the tasks are cancelled before the technician's turn, a 409.
    assert outcomes == (["ok", "ok"] if first == "technician" else ["409", "ok"]), outcomes
    _log_agrees(engine, committed.patient_id)
    with Session(engine) as session:
        statuses = list(
            session.scalars(
                select(Aliquot.status)
                .join(Sample)
                .where(Sample.patient_id == committed.patient_id)
                .order_by(Aliquot.id)
            )
        )
    destroyed = 2 if outcomes[0] == "ok" else 0
    assert sorted(statuses) == sorted(["destroyed"] * destroyed + ["available"] * (5 - destroyed))


def test_a_correction_racing_a_new_withdrawal_leaves_one_consistent_state(
    engine,  # noqa: F811
    committed,
):
    """A correction and a second storage withdrawal of the same patient at once: the
    patient lock orders them; the tubes end as the consent then in force says, and agree
    with their log."""
    wid, _ = _withdrawn(engine, committed.patient_id)

    def correct(session: Session) -> None:
        correction.correct(session, ACTOR, wid, "recorded on the wrong patient")

    def withdraw(session: Session) -> None:
        withdrawal.withdraw(
            session,
            ACTOR,
            session.get_one(Patient, committed.patient_id),
            {"scope": "storage", "date": clock.today(), "requested_by": "mother"},
        )

    outcomes = _race(engine, [correct, withdraw], [0.0, 0.05])
    assert not [o for o in outcomes if o.startswith("500")], outcomes
    _log_agrees(engine, committed.patient_id)
    with Session(engine) as session:
        statuses = set(
            session.scalars(
                select(Aliquot.status).join(Sample).where(Sample.patient_id == committed.patient_id)
            )
        )
    assert statuses == (
        {"blocked"}
        if outcomes == ["ok", "ok"]
        else {"available"}
        if outcomes[0] == "ok"
        else {"blocked"}
    ), outcomes


@pytest.mark.parametrize("answer", ["acknowledge", "report destroyed"])
@pytest.mark.parametrize("first", ["recipient", "officer"])
def test_a_correction_racing_a_recall_answer_cancels_only_unanswered_notices(
    engine, committed, first, answer
):  # noqa: F811
    """A correction and the recipient's answer to the recall of a shipped tube, either
    first: the notice is answered or cancelled, never both; the loser a 409; the tube's
    status and its log agree."""
    from biobank.consent import gate
    from biobank.consent.models import RecallNotice
    from biobank.samples import service as samples

    with Session(engine, expire_on_commit=False) as session:
        tube = session.scalars(
            select(Aliquot)
            .join(Sample)
            .where(Sample.patient_id == committed.patient_id)
            .order_by(Aliquot.id)
        ).first()
        assert tube is not None
        gate.justify_release(
            session,
            ACTOR,
            [tube.id],
            committed.substudy,
            "request",
            f"RQ-RECALL-{committed.patient_id}",
        )
        samples.change_status(session, ACTOR, tube, "reserved")
        samples.change_status(session, ACTOR, tube, "shipped")
        session.commit()
    wid, _ = _withdrawn(engine, committed.patient_id)
    with Session(engine) as session:
        notice_id = session.scalar(select(RecallNotice.id).where(RecallNotice.withdrawal_id == wid))
    assert notice_id is not None

    def correct(session: Session) -> None:
        correction.correct(session, ACTOR, wid, "recorded on the wrong patient")

    def respond(session: Session) -> None:
        if answer == "acknowledge":
            followup.acknowledge_recall(session, ACTOR, notice_id)
        else:
            followup.report_recall_destroyed(session, ACTOR, notice_id)

    delays = [0.0, 0.1] if first == "recipient" else [0.1, 0.0]
    outcomes = _race(engine, [respond, correct], delays)
    assert outcomes == (["ok", "ok"] if first == "recipient" else ["409", "ok"]), outcomes
    _log_agrees(engine, committed.patient_id)
    with Session(engine) as session:
        notice = session.get_one(RecallNotice, notice_id)
        kinds = set(
            session.scalars(
                select(CustodyEvent.event_type).where(
                    CustodyEvent.aliquot_id == tube.id, CustodyEvent.event_type.like("recall_%")
                )
            )
        )
        status = session.get_one(Aliquot, tube.id).status
    if first == "recipient":
        assert (notice.acknowledged_at is not None, notice.cancelled_at) == (True, None)
        assert "recall_cancelled" not in kinds
        assert status == ("destroyed" if answer == "report destroyed" else "shipped")
    else:
        assert (notice.cancelled_at is not None, notice.acknowledged_at) == (True, None)
        assert (kinds, status) == ({"recall_cancelled"}, "shipped")


@pytest.mark.parametrize("first", ["technician", "officer"])
def test_a_correction_racing_a_take_out_of_a_blocked_tube(engine, committed, first):  # noqa: F811
    """A correction and a technician's taking a blocked tube out of its box, either first:
    both done; the tube is back in use and out, as its custody log says."""
    from biobank.samples import service as samples
    from biobank.storage import operations
    from biobank.storage import service as storage
    from biobank.storage.models import Container
    from tests.test_tube_contention import _state_from_log, _state_in_tables

    with Session(engine, expire_on_commit=False) as session:
        numbering = samples.Numbering()
        freezer = storage.create_freezer(
            session,
            ACTOR,
            {
                "site": "NL-PMC",
                "name": f"RACE-{time.time_ns() % 10**8}",
                "freezer_type": "mechanical-80",
            },
            numbering,
        )
        rack = storage.create_container(
            session, ACTOR, {"kind": "rack", "name": "Left", "parent": freezer.barcode}, numbering
        )
        box = storage.create_box(
            session, ACTOR, {"box_type": "9X9", "parent": rack.barcode}, numbering
        )
        tube = session.scalars(
            select(Aliquot)
            .join(Sample)
            .where(Sample.patient_id == committed.patient_id)
            .order_by(Aliquot.id)
        ).first()
        assert tube is not None
        operations.place(session, ACTOR, tube, box, "A1")
        session.commit()
    wid, _ = _withdrawn(engine, committed.patient_id)

    def correct(session: Session) -> None:
        correction.correct(session, ACTOR, wid, "recorded on the wrong patient")

    def take_out(session: Session) -> None:
        operations.take_out(session, ACTOR, session.get_one(Aliquot, tube.id), "to check")

    delays = [0.0, 0.1] if first == "technician" else [0.1, 0.0]
    assert _race(engine, [take_out, correct], delays) == ["ok", "ok"]
    _log_agrees(engine, committed.patient_id)
    with Session(engine) as session:
        events = list(
            session.scalars(
                select(CustodyEvent)
                .where(CustodyEvent.aliquot_id == tube.id)
                .order_by(CustodyEvent.id)
            )
        )
        state = _state_in_tables(session, tube.id)
        assert _state_from_log(events) == state
        assert (state["status"], state["out"]) == ("available", True)
        assert session.get_one(Container, box.id).id == state["box_id"]
