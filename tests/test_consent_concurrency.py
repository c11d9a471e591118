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
    not PG_URL, reason="real concurrent transactions need PostgreSQL (SQLite has one writer)")

ACTOR = "test-consent-race"
NUMBERING = samples.Numbering()


@pytest.fixture
def committed(engine: Engine) -> Iterator[SimpleNamespace]:
    """A committed patient with five tubes, storage and sub-study consent; removed afterwards."""
    import biobank.models  # noqa: F401  (every table known)

    tables = [t for t in Base.metadata.sorted_tables
              if "id" in t.c and isinstance(t.c.id.type, Integer)]
    with engine.connect() as conn:
        highest = {t.name: conn.scalar(select(func.max(t.c.id))) or 0 for t in tables}
        counters = [dict(r._mapping) for r in conn.execute(select(BarcodeCounter.__table__))]
    stamp = time.time_ns() % 10**8
    try:
        with Session(engine, expire_on_commit=False) as session:
            patient = patients.register(session, ACTOR, {
                "study_id": f"IF21-WDR-{stamp}", "site": "NL-PMC", "sex": "F",
                "diagnosis": "B-ALL", "fusion_partner": "AFF1",
                "diagnosis_date": clock.today() - dt.timedelta(days=30),
                "age_at_diagnosis_days": 100, "wbc_at_diagnosis": Decimal("50"),
                "day8_blasts_per_ul": None, "prednisone_response": "good"})
            collected = dt.datetime.now(dt.UTC) - dt.timedelta(days=29)
            sample = samples.register_sample(session, ACTOR, {
                "study_id": patient.study_id, "timepoint": "DX", "unscheduled_reason": None,
                "material": "BM", "collected_at": collected, "received_at": collected,
                "volume_ml": Decimal("2"), "container_code": "PED",
                "precentrifugation_delay_hours": None, "precentrifugation_temperature": None,
                "accession_number": None, "notes": None}, NUMBERING)
            samples.split(session, ACTOR, sample, [
                {"aliquot_type": "PLASMA", "volume_ml": Decimal("0.1")} for _ in range(5)],
                NUMBERING)
            substudy = f"RACE-{stamp}"
            service.create_substudy(session, ACTOR, {"code": substudy, "title": "t",
                                                     "principal_investigator": "p"})
            service.create_form(session, ACTOR, {
                "code": f"ICF-RACE-{stamp}", "title": "t", "version": "1", "language": "nl",
                "covers": ["storage", substudy]})
            for component in ("storage", substudy):
                service.record_consent(session, ACTOR, patient, {
                    "component": component, "decision": "given",
                    "signed_on": clock.today() - dt.timedelta(days=20),
                    "form_version": f"ICF-RACE-{stamp}", "signed_by": "mother"})
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
                withdrawal.withdraw(session, ACTOR, patient, {
                    "scope": scope, "date": clock.today(), "requested_by": "mother"})
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
        assert session.scalar(select(func.count()).select_from(Withdrawal)
                              .where(Withdrawal.patient_id == committed.patient_id)) == 1
        tasks = session.scalar(select(func.count()).select_from(DestructionTask)
                               .join(Withdrawal)
                               .where(Withdrawal.patient_id == committed.patient_id))
        statuses = set(session.scalars(select(Aliquot.status).join(Sample)
                                       .where(Sample.patient_id == committed.patient_id)))
        if scope == "storage":
            assert (tasks, statuses) == (5, {"blocked"})
        else:
            assert (tasks, statuses) == (0, {"available"})
