"""Two people confirm scans of the same rack into two boxes without rack codes, both asking
to record the code, at once: one box gets it, the other confirm fails whole (PostgreSQL).

Skipped on SQLite, which lets one writer at a time in.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from biobank.db import Base
from biobank.errors import Conflict
from biobank.reference.service import load_defaults
from biobank.samples.service import Numbering
from biobank.storage import reconcile, service
from biobank.storage.models import Container, RackScan

PG_URL = os.environ.get("BIOBANK_TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: SQLite serializes writers")
SCAN = (Path(__file__).parent / "data" / "rack-scans" / "fluidx-with-rack.csv").read_text()
ACK = ["unknown_tubes"]


@pytest.fixture
def scratch():  # type: ignore[no-untyped-def]
    """An engine whose connections work in a schema of their own, dropped afterwards."""
    schema = f"rack_race_{os.getpid()}"
    admin = create_engine(PG_URL)  # type: ignore[arg-type]
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(
        PG_URL,
        pool_size=4,  # type: ignore[arg-type]
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


def test_one_rack_code_is_recorded_for_one_box_only(scratch):
    """Both previews offer FX12345678; confirmed at once, exactly one box records it and the
    other confirm is refused (its scan stays unconfirmed)."""
    numbering = Numbering()
    with Session(scratch) as session:
        load_defaults(session, "setup")
        service.load_default_box_types(session, "setup")
        freezer = service.create_freezer(
            session,
            "setup",
            {"site": "NL-PMC", "name": "F-80-R", "freezer_type": "mechanical-80"},
            numbering,
        )
        boxes = [
            service.create_box(
                session, "setup", {"box_type": "SBS96", "parent": freezer.barcode}, numbering
            )
            for _ in range(2)
        ]
        tokens = [reconcile.preview(session, "setup", box, SCAN)["token"] for box in boxes]
        codes = [box.barcode for box in boxes]
        session.commit()
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def confirm(index: int) -> None:
        with Session(scratch) as session:
            box = session.scalar(select(Container).where(Container.barcode == codes[index]))
            start.wait(10)
            try:
                reconcile.confirm(session, f"w{index}", box, tokens[index], ACK, record_rack=True)
                session.commit()
                outcomes.append("recorded")
            except (Conflict, IntegrityError):
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=confirm, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["recorded", "refused"]
    with Session(scratch) as session:
        racks = list(
            session.scalars(select(Container.external_barcode).where(Container.barcode.in_(codes)))
        )
        assert sorted(racks, key=str) == sorted(["FX12345678", None], key=str)
        confirmed = session.scalars(select(RackScan.confirmed_at)).all()
        assert sum(c is not None for c in confirmed) == 1
