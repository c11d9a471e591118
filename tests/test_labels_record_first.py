"""A label is never printed without its record: the labels go into the printer queue, committed,
before their bytes go to the printer, and are marked printed once it took them
(biobank/labels/printing.py). Whatever fails after that, a label the printer received is on
record (printed, or waiting in the queue), and a label on record but not printed waits in the
queue, where the queue page shows it.

The failures are the database's own: a trigger refusing one write, a constraint checked only
at commit; real TCP listeners stand in for the printers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from web_helpers import FRAGMENT, lab, login  # noqa: F401

from biobank import create_app
from biobank.custody.models import CustodyEvent
from biobank.db import get_session
from biobank.labels import queue, service
from biobank.labels.models import Printer, QueuedLabel
from biobank.labels.network import printer_rule
from biobank.labels.rendering import registry
from biobank.samples.models import Aliquot
from tests.conftest import LOOPBACK_PRINTERS
from tests.db_helpers import one_tube_biobank, private_database
from tests.test_labels_printing import (  # noqa: F401
    FakePrinter,
    register,
    tubes,
    zebra,
)

LABEL_EVENTS = ("label_printed", "label_reprinted")


def on_record(session: Session, printer: FakePrinter, barcode: str) -> tuple[bool, bool, bool]:
    """(the printer received the label, a label event records it, it waits in a printer
    queue), once the rule is checked: a label the printer received is recorded as printed or
    waits in the queue, and one recorded as printed was received."""
    printer.settle()
    received = any(barcode.encode() in job for job in printer.jobs)
    printed = bool(
        session.scalar(
            select(func.count())
            .select_from(CustodyEvent)
            .join(Aliquot, Aliquot.id == CustodyEvent.aliquot_id)
            .where(Aliquot.barcode == barcode, CustodyEvent.event_type.in_(LABEL_EVENTS))
        )
    )
    waiting = barcode in [w.barcode for w in queue.waiting(session)]
    assert printed or waiting or not received, f"{barcode}: printed, and on no record"
    assert received or not printed, f"{barcode}: recorded as printed, and never sent"
    return received, printed, waiting


def refuse(connection: Connection, table: str, verb: str, when: str | None = None) -> None:
    """Make the database refuse a write (a trigger raising, as a constraint would); in the
    test's transaction, so it goes with it."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "CREATE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'refused by the database' USING ERRCODE = 'check_violation'; "
            "END $$"
        )
        condition = f"WHEN ({when}) " if when else ""
        connection.exec_driver_sql(
            f"CREATE TRIGGER refuse_write BEFORE {verb} ON {table} FOR EACH ROW {condition}"
            "EXECUTE FUNCTION refuse_write()"
        )
    else:
        condition = f"WHEN {when} " if when else ""
        connection.exec_driver_sql(
            f"CREATE TRIGGER refuse_write BEFORE {verb} ON {table} FOR EACH ROW {condition}"
            "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"
        )


def allow(connection: Connection) -> None:
    """Take ``refuse``'s trigger away again."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("DROP FUNCTION refuse_write() CASCADE")
    else:
        connection.exec_driver_sql("DROP TRIGGER refuse_write")


# Each write of a print, refused: (table, verb, condition).
REFUSED = {
    "queue row": ("label_queue", "INSERT", None),
    "print job": ("print_job", "INSERT", None),
    "label event": (
        "custody_event",
        "INSERT",
        "NEW.event_type IN ('label_printed', 'label_reprinted')",
    ),
    "printed mark": ("label_queue", "UPDATE", "NEW.printed_at IS NOT NULL"),
}


@pytest.mark.parametrize(
    ("refused", "outcome"),
    [
        # Refused before anything is on record: nothing sent.
        ("queue row", (False, False, False)),
        # On record, refused before the send: nothing sent, the label waits.
        ("print job", (False, False, True)),
        # Refused after the printer took the label: it waits in the queue.
        ("label event", (True, False, True)),
        ("printed mark", (True, False, True)),
    ],
)
def test_whichever_write_the_database_refuses_a_label_received_is_on_record(
    refused, outcome, tech, tubes, zebra, register, session, connection
):
    """The database refuses one of a print's writes: the answer is its 409 (never a 500),
    and a label the printer received waits in the printer queue; one not sent has no event."""
    register("Zebra-Lab-7", zebra.port)
    refuse(connection, *REFUSED[refused])
    response = tech.post(
        "/api/v1/print-jobs", json={"printer": "Zebra-Lab-7", "barcodes": [tubes[0].barcode]}
    )
    assert response.status_code == 409, response.json
    assert on_record(session, zebra, tubes[0].barcode) == outcome


def test_a_label_whose_record_failed_prints_from_the_queue_once_the_database_takes_it(
    tech, tubes, zebra, register, session, connection
):
    """The label's event refused after the printer took it: the label waits; printed from
    the queue once the database takes the event, it is recorded once and leaves the queue."""
    register("Zebra-Lab-7", zebra.port)
    refuse(connection, *REFUSED["label event"])
    code = tubes[0].barcode
    body = {"printer": "Zebra-Lab-7", "barcodes": [code]}
    assert tech.post("/api/v1/print-jobs", json=body).status_code == 409
    allow(connection)
    printer = service.get_printer(session, "Zebra-Lab-7")
    assert (
        queue.print_waiting(session, "t", printer, registry(), timeout=2, rule=printer_rule()) == 1
    )
    assert on_record(session, zebra, code) == (True, True, False)
    assert len(zebra.jobs) == 2  # the first, unrecorded, and the one from the queue


def test_printing_a_tube_whose_label_waits_for_that_printer_prints_that_label(
    tech, tubes, zebra, register, session
):
    """A tube queued for a printer, then printed on it: one label, one event, and the
    waiting label is the one printed (it names the job and leaves the queue)."""
    register("Zebra-Lab-7", zebra.port)
    printer = service.get_printer(session, "Zebra-Lab-7")
    code = tubes[0].barcode
    queue.enqueue(session, "t", printer, [code])
    session.commit()
    response = tech.post("/api/v1/print-jobs", json={"printer": "Zebra-Lab-7", "barcodes": [code]})
    assert response.status_code == 201, response.json
    assert on_record(session, zebra, code) == (True, True, False)
    [row] = session.scalars(select(QueuedLabel).where(QueuedLabel.printer_id == printer.id))
    assert row.print_job_id == response.json["id"] and len(zebra.jobs) == 1


def test_a_box_label_whose_record_failed_waits_in_the_queue_and_prints_from_it(
    tech, session, zebra, register, connection
):
    """A box label (recorded in the box's audit trail): its audit record refused after the
    printer took it, it waits in the queue; printed from there, it is recorded."""
    from biobank.custody.service import audit_trail
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage

    storage.load_default_box_types(session, "setup")
    freezer = storage.create_freezer(
        session,
        "setup",
        {"site": "NL-PMC", "name": "F-80-10", "freezer_type": "mechanical-80"},
        Numbering(),
    )
    box = storage.create_box(
        session, "setup", {"box_type": "9X9", "parent": freezer.barcode}, Numbering()
    )
    session.commit()
    register("Zebra-Lab-7", zebra.port)
    refuse(connection, "audit_record", "INSERT", "NEW.action = 'label_printed'")
    body = {"printer": "Zebra-Lab-7", "barcodes": [box.barcode], "kind": "box"}
    assert tech.post("/api/v1/print-jobs", json=body).status_code == 409
    zebra.settle()
    assert [job for job in zebra.jobs if box.barcode.encode() in job]
    [waiting] = queue.waiting(session)
    assert (waiting.barcode, waiting.kind) == (box.barcode, "box")
    allow(connection)
    printer = service.get_printer(session, "Zebra-Lab-7")
    assert (
        queue.print_waiting(session, "t", printer, registry(), timeout=2, rule=printer_rule()) == 1
    )
    assert queue.waiting(session) == []
    assert [r.action for r in audit_trail(session, "container", box.barcode)][-1:] == [
        "label_printed"
    ]


def test_at_the_scan_station_a_label_whose_record_failed_is_listed_in_the_queue(
    login, lab, session, manager, zebra, connection
):
    """Printed from the scan station, the label's event refused after the printer took it:
    never a 500, and the printer queue page lists the label."""
    assert (
        manager.post(
            "/api/v1/printers", json={"name": "Bench", "host": "127.0.0.1", "port": zebra.port}
        ).status_code
        == 201
    )
    refuse(connection, *REFUSED["label event"])
    tech = login("technician")
    tube = lab.tubes[0]
    answer = tech.post(f"/scan/{tube.barcode}/print", {"printer": "Bench"}, headers=FRAGMENT)
    assert answer.status_code == 409
    assert on_record(session, zebra, tube.barcode) == (True, False, True)
    page = tech.get("/printers/queue").get_data(as_text=True)
    assert "Bench: 1 label(s) waiting" in page and tube.barcode in page


# --- the commit itself fails, on a database of its own (real commits) ----------------------


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A database of its own with one tube and a technician's token, and an app on it whose
    requests commit for real."""
    database = private_database(tmp_path_factory.mktemp("record"), "record")
    url = next(database)
    made = one_tube_biobank(url)
    made.app = create_app({"DATABASE_URL": url, "TESTING": True, **LOOPBACK_PRINTERS})
    made.engine = made.app.extensions["biobank.engine"]
    yield made
    made.engine.dispose()
    next(database, None)


@pytest.fixture
def listening(own: Any, zebra: FakePrinter) -> str:  # noqa: F811
    """The listening printer, registered on that database: its name."""
    with own.app.app_context():
        session = get_session()
        printer: Printer = service.register_printer(
            session,
            "setup",
            {
                "name": f"Zebra-{zebra.port}",
                "host": "127.0.0.1",
                "port": zebra.port,
                "dpi": 300,
                "template": None,
                "site": None,
            },
            registry(),
            printer_rule(),
        )
        session.commit()
        return printer.name


@contextmanager
def refused_at_commit(engine: Engine) -> Iterator[None]:
    """A constraint the database checks only at commit, which a label event breaks: every
    statement of a print succeeds, and its commit fails (PostgreSQL: a deferred constraint
    trigger; SQLite: a deferred foreign key, which a trigger on the label event breaks)."""
    undo: list[str]
    if engine.dialect.name == "postgresql":
        make = [
            "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation'; END $$",
            "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON custody_event "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "WHEN (NEW.event_type IN ('label_printed', 'label_reprinted')) "
            "EXECUTE FUNCTION refuse_at_commit()",
        ]
        undo = ["DROP FUNCTION refuse_at_commit() CASCADE"]
    else:
        make = [
            "CREATE TABLE commit_gate_parent (id INTEGER PRIMARY KEY)",
            "CREATE TABLE commit_gate (parent INTEGER REFERENCES commit_gate_parent (id) "
            "DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER refuse_at_commit AFTER INSERT ON custody_event "
            "WHEN NEW.event_type IN ('label_printed', 'label_reprinted') "
            "BEGIN INSERT INTO commit_gate VALUES (-1); END",
        ]
        undo = [
            "DROP TRIGGER refuse_at_commit",
            "DROP TABLE commit_gate",
            "DROP TABLE commit_gate_parent",
        ]
    with engine.begin() as conn:
        for statement in make:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in undo:
                conn.exec_driver_sql(statement)


def test_a_commit_failing_after_the_printer_took_the_label_leaves_the_label_on_record(
    own: Any,
    zebra: FakePrinter,  # noqa: F811
    listening: str,
) -> None:
    """Regression: the print's commit fails after the printer took the label (a constraint
    checked at commit, broken by the label event). It was printed and on no record; now the
    answer is still the commit's 409, and the label waits in the printer queue."""
    with refused_at_commit(own.engine):
        response = own.app.test_client().post(
            "/api/v1/print-jobs",
            json={"printer": listening, "barcodes": [own.barcode]},
            headers=own.headers,
        )
    assert response.status_code == 409, response.json
    with Session(own.engine) as session:
        assert on_record(session, zebra, own.barcode) == (True, False, True)
