"""Two officers withdrawing the same consent at the same moment: one wins, one gets a 409.

PostgreSQL only: SQLite lets one writer in at a time, so nothing there can race. The test
commits for real (outside the per-test rolled-back transaction) and removes what it made.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest
from db_helpers import restore_tallies, save_tallies
from sqlalchemy import Integer, delete, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from biobank import clock
from biobank.consent import service, withdrawal
from biobank.consent.models import DestructionTask, Withdrawal
from biobank.db import Base
from biobank.errors import Conflict
from biobank.patients import service as patients
from biobank.patients.models import Patient
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, BarcodeCounter, Sample
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="real concurrent transactions need PostgreSQL (SQLite has one writer)"
)

ACTOR = "test-consent-race"
NUMBERING = samples.Numbering()


@pytest.fixture
def committed(engine: Engine) -> Iterator[SimpleNamespace]:
    """A committed patient with five tubes, storage and sub-study consent; removed afterwards."""
    import biobank.models  # noqa: F401  (every table known)

    tables = [
        t for t in Base.metadata.sorted_tables if "id" in t.c and isinstance(t.c.id.type, Integer)
    ]
    with engine.connect() as conn:
        highest = {t.name: conn.scalar(select(func.max(t.c.id))) or 0 for t in tables}
        counters = [dict(r._mapping) for r in conn.execute(select(BarcodeCounter.__table__))]
        tallies = save_tallies(conn)
    stamp = time.time_ns() % 10**5  # the study id fits on a tube label (14 characters)
    try:
        with Session(engine, expire_on_commit=False) as session:
            patient = patients.register(
                session,
                ACTOR,
                {
                    "study_id": f"IF21-WDR-{stamp}",
                    "site": "NL-PMC",
                    "sex": "F",
                    "diagnosis": "B-ALL",
                    "fusion_partner": "AFF1",
                    "diagnosis_date": clock.today() - dt.timedelta(days=30),
                    "age_at_diagnosis_days": 100,
                    "wbc_at_diagnosis": Decimal("50"),
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
                    "volume_ml": Decimal("2"),
                    "container_code": "PED",
                    "precentrifugation_delay_hours": None,
                    "precentrifugation_temperature": None,
                    "accession_number": None,
                    "notes": None,
                },
                NUMBERING,
            )
            samples.split(
                session,
                ACTOR,
                sample,
                [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.1")} for _ in range(5)],
                NUMBERING,
            )
            substudy = f"RACE-{stamp}"
            service.create_substudy(
                session, ACTOR, {"code": substudy, "title": "t", "principal_investigator": "p"}
            )
            service.create_form(
                session,
                ACTOR,
                {
                    "code": f"ICF-RACE-{stamp}",
                    "title": "t",
                    "version": "1",
                    "language": "nl",
                    "covers": ["storage", substudy],
                },
            )
            for component in ("storage", substudy):
                service.record_consent(
                    session,
                    ACTOR,
                    patient,
                    {
                        "component": component,
                        "decision": "given",
                        "signed_on": clock.today() - dt.timedelta(days=20),
                        "form_version": f"ICF-RACE-{stamp}",
                        "signed_by": "mother",
                    },
                )
            session.commit()
        yield SimpleNamespace(patient_id=patient.id, substudy=substudy)
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


@pytest.mark.parametrize("scope", ["storage", "substudy"])
def test_two_identical_withdrawals_at_once_one_wins(engine, committed, scope):
    """The patient row lock makes the second wait, then see the first: 409, nothing doubled.

    A sub-study withdrawal changes no tube, so only that lock stands between the two.
    """
    scope = committed.substudy if scope == "substudy" else scope
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def withdraw() -> None:
        with Session(engine, expire_on_commit=False) as session:
            patient = session.get(Patient, committed.patient_id)
            barrier.wait()
            try:
                withdrawal.withdraw(
                    session,
                    ACTOR,
                    patient,
                    {"scope": scope, "date": clock.today(), "requested_by": "mother"},
                )
                time.sleep(0.2)  # hold the lock a moment: the other must wait, not slip past
                session.commit()
                outcomes.append("withdrawn")
            except Conflict:
                session.rollback()
                outcomes.append("409")

    threads = [threading.Thread(target=withdraw) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["409", "withdrawn"]
    with Session(engine) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Withdrawal)
                .where(Withdrawal.patient_id == committed.patient_id)
            )
            == 1
        )
        tasks = session.scalar(
            select(func.count())
            .select_from(DestructionTask)
            .join(Withdrawal)
            .where(Withdrawal.patient_id == committed.patient_id)
        )
        statuses = set(
            session.scalars(
                select(Aliquot.status).join(Sample).where(Sample.patient_id == committed.patient_id)
            )
        )
        if scope == "storage":
            assert (tasks, statuses) == (5, {"blocked"})
        else:
            assert (tasks, statuses) == (0, {"available"})


def test_a_release_racing_an_anonymisation_never_releases_on_consent_after_it(engine, committed):
    """A release and an anonymising withdrawal at once: the patient's row lock orders them.
    Either the release comes first (basis consent) or it sees the tubes anonymised and is
    refused (the sub-study takes no anonymised material); never a release on the basis of a
    consent already withdrawn, never a sample half cut."""
    from biobank.consent import gate
    from biobank.consent.models import ReleaseJustification

    with Session(engine) as session:
        tube_ids = list(
            session.scalars(
                select(Aliquot.id).join(Sample).where(Sample.patient_id == committed.patient_id)
            )
        )
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}
    committing: list[dt.datetime] = []

    def release() -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                gate.justify_release(
                    session,
                    ACTOR,
                    tube_ids[:2],
                    committed.substudy,
                    "request",
                    f"RQ-RACE-{committed.patient_id}",
                )
                time.sleep(0.2)
                committing.append(dt.datetime.now(dt.UTC))
                session.commit()
                outcomes["release"] = "released"
            except Conflict:
                session.rollback()
                outcomes["release"] = "409"

    def anonymise() -> None:
        with Session(engine, expire_on_commit=False) as session:
            patient = session.get(Patient, committed.patient_id)
            barrier.wait()
            withdrawal.withdraw(
                session,
                ACTOR,
                patient,
                {
                    "scope": "storage",
                    "date": clock.today(),
                    "requested_by": "mother",
                    "outcome": "anonymise",
                },
            )
            time.sleep(0.2)
            session.commit()
            outcomes["withdrawal"] = "anonymised"

    threads = [threading.Thread(target=release), threading.Thread(target=anonymise)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes["withdrawal"] == "anonymised"
    with Session(engine) as session:
        rows = session.scalars(
            select(ReleaseJustification).where(ReleaseJustification.aliquot_id.in_(tube_ids))
        ).all()
        done = session.scalar(
            select(Withdrawal.recorded_at).where(Withdrawal.patient_id == committed.patient_id)
        )
        assert {
            s.patient_id
            for s in session.scalars(select(Sample).join(Aliquot).where(Aliquot.id.in_(tube_ids)))
        } == {None}
    if outcomes["release"] == "released":
        assert len(rows) == 2 and {r.basis for r in rows} == {"consent"}
        # The withdrawal waited for the release to commit: it saw the release, not the
        # other way round.
        assert done >= committing[0]
    else:
        assert rows == []


def test_two_technicians_closing_one_anonymisation_task_at_once(engine, committed):
    """The task row lock: one closes it (the tube back in use, one unblocked event), the
    other gets a 409."""
    from biobank.consent import anonymise
    from biobank.consent.models import AnonymisationTask
    from biobank.custody.models import CustodyEvent

    with Session(engine, expire_on_commit=False) as session:
        withdrawal.withdraw(
            session,
            ACTOR,
            session.get(Patient, committed.patient_id),
            {
                "scope": "storage",
                "date": clock.today(),
                "requested_by": "mother",
                "outcome": "anonymise",
            },
        )
        session.commit()
        task = session.scalars(
            select(AnonymisationTask)
            .join(Withdrawal)
            .where(Withdrawal.patient_id == committed.patient_id)
        ).first()
        task_id, tube_id = task.id, task.aliquot_id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def close() -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                anonymise.complete_task(session, ACTOR, task_id)
                time.sleep(0.2)
                session.commit()
                outcomes.append("done")
            except Conflict:
                session.rollback()
                outcomes.append("409")

    threads = [threading.Thread(target=close) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["409", "done"]
    with Session(engine) as session:
        assert session.get(Aliquot, tube_id).status == "available"
        assert (
            session.scalar(
                select(func.count())
                .select_from(CustodyEvent)
                .where(CustodyEvent.aliquot_id == tube_id, CustodyEvent.event_type == "unblocked")
            )
            == 1
        )
