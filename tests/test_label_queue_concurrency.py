"""Two technicians at one printer queue at once, through real, separately committed
transactions: no label printed twice or lost, and the queue, the print jobs and the tubes'
custody events agree.

PostgreSQL only: SQLite lets one writer in at a time, so nothing there can race. The tubes
are committed for real by the ``committed`` fixture of the consent concurrency tests, and
removed afterwards (the printer and its queue with them). A real TCP listener stands in for
the printer.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.custody.models import CustodyEvent
from biobank.labels import queue, service
from biobank.labels.models import Printer, PrintJob, QueuedLabel
from biobank.labels.network import rule_from
from biobank.labels.rendering import registry
from biobank.samples.models import Aliquot, Sample
from tests.conftest import LOOPBACK_PRINTERS, PG_URL
from tests.test_consent_concurrency import ACTOR, committed  # noqa: F401  (the fixture)
from tests.test_correction_concurrency import _race
from tests.test_labels_printing import FakePrinter

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="real concurrent transactions need PostgreSQL (SQLite has one writer)"
)

RULE = rule_from(LOOPBACK_PRINTERS)


@pytest.fixture
def bench(engine, committed, app) -> Iterator[tuple[int, list[str], FakePrinter]]:  # noqa: F811
    """A listening printer with the patient's five tubes' labels queued (committed): the
    printer's id, the tubes' barcodes, the printer."""
    zebra = FakePrinter()
    try:
        with Session(engine, expire_on_commit=False) as session:
            with app.app_context():
                template = registry().get(None, "aliquot").name
            printer = Printer(
                name=f"Race-{time.time_ns()}",
                host="127.0.0.1",
                port=zebra.port,
                dpi=300,
                template=template,
                created_by=ACTOR,
            )
            session.add(printer)
            codes = list(
                session.scalars(
                    select(Aliquot.barcode)
                    .join(Sample)
                    .where(Sample.patient_id == committed.patient_id)
                    .order_by(Aliquot.id)
                )
            )
            queue.enqueue(session, ACTOR, printer, codes)
            session.commit()
        yield printer.id, codes, zebra
    finally:
        zebra.close()


def _print(app, printer_id: int):  # type: ignore[no-untyped-def]
    def run(session: Session) -> None:
        with app.app_context():
            queue.print_waiting(
                session,
                ACTOR,
                session.get_one(Printer, printer_id),
                registry(),
                timeout=5,
                rule=RULE,
            )

    return run


def _print_now(app, printer_id: int, code: str):  # type: ignore[no-untyped-def]
    def run(session: Session) -> None:
        with app.app_context():
            service.print_aliquot_labels(
                session,
                ACTOR,
                session.get_one(Printer, printer_id),
                [code],
                registry(),
                timeout=5,
                rule=RULE,
            )

    return run


def _remove(queue_ids: list[int]):  # type: ignore[no-untyped-def]
    def run(session: Session) -> None:
        for queue_id in queue_ids:
            queue.remove(session, ACTOR, queue_id)

    return run


def _agrees(
    engine,
    printer_id: int,
    codes: list[str],  # type: ignore[no-untyped-def]
    zebra: FakePrinter,
) -> tuple[set[str], set[str]]:
    """Each label printed at most once: sent once, one label event naming the job the queue
    row names; a label taken out was neither sent nor recorded. Returns the barcodes
    printed and those taken out."""
    with Session(engine) as session:
        rows = session.execute(
            select(QueuedLabel, Aliquot.barcode)
            .join(Aliquot, QueuedLabel.aliquot_id == Aliquot.id)
            .where(QueuedLabel.printer_id == printer_id)
        ).all()
        assert sorted(code for _, code in rows) == sorted(codes)  # none lost, none doubled
        sent = Counter(code for job in zebra.jobs for code in codes if code.encode() in job)
        printed, removed = set(), set()
        for row, code in rows:
            events = session.execute(
                select(CustodyEvent.event_type, CustodyEvent.new_values).where(
                    CustodyEvent.aliquot_id == row.aliquot_id,
                    CustodyEvent.event_type.like("label_%"),
                )
            ).all()
            if row.printed_at is not None:
                printed.add(code)
                assert sent[code] == 1, (code, sent)
                assert [(kind, values["print_job"]) for kind, values in events] == [
                    ("label_printed", row.print_job_id)
                ]
                assert session.get_one(PrintJob, row.print_job_id).printer_id == printer_id
            else:
                assert row.cancelled_at is not None, code  # nothing still waiting
                removed.add(code)
                assert (sent[code], events) == (0, [])
    return printed, removed


def test_two_technicians_printing_one_queue_at_once_print_each_label_once(engine, app, bench):
    """Two technicians print the same printer's queue at once: every label sent once."""
    printer_id, codes, zebra = bench
    outcomes = _race(engine, [_print(app, printer_id), _print(app, printer_id)], [0, 0])
    assert outcomes == ["ok", "ok"], outcomes
    zebra.wait_for(1)
    time.sleep(0.2)  # a second job, were there one, read to its end
    assert _agrees(engine, printer_id, codes, zebra) == (set(codes), set())
    assert len(zebra.jobs) == 1


@pytest.mark.parametrize("first", ["queue", "bench"])
def test_a_tube_printed_at_the_bench_while_another_prints_its_printers_queue(
    engine, app, bench, first
):
    """A tube whose label waits for a printer is printed on it at the bench while another
    technician prints that printer's queue, either first: every label sent once; the bench
    print printed the tube, or (the queue printed it first) is a 409."""
    printer_id, codes, zebra = bench
    delays = [0.0, 0.1] if first == "queue" else [0.1, 0.0]
    outcomes = _race(
        engine, [_print(app, printer_id), _print_now(app, printer_id, codes[0])], delays
    )
    assert outcomes == (["ok", "409"] if first == "queue" else ["ok", "ok"]), outcomes
    zebra.settle()
    assert _agrees(engine, printer_id, codes, zebra) == (set(codes), set())
    assert len(zebra.jobs) == (1 if first == "queue" else 2)


@pytest.mark.parametrize("first", ["printing", "removing"])
def test_printing_a_queue_while_another_removes_its_labels(engine, app, bench, first):
    """One technician prints the queue while another takes the same labels out, either
    first: each label is printed or taken out, never both, never lost; the loser a 409."""
    printer_id, codes, zebra = bench
    with Session(engine) as session:
        ids = list(
            session.scalars(
                select(QueuedLabel.id)
                .where(QueuedLabel.printer_id == printer_id)
                .order_by(QueuedLabel.id)
            )
        )
    delays = [0.0, 0.1] if first == "printing" else [0.1, 0.0]
    outcomes = _race(engine, [_print(app, printer_id), _remove(ids[:2])], delays)
    time.sleep(0.3)  # a job, were there one, read to its end
    printed, removed = _agrees(engine, printer_id, codes, zebra)
    if first == "printing":
        assert outcomes == ["ok", "409"], outcomes
        assert (printed, removed) == (set(codes), set())
    else:
        assert outcomes == ["ok", "ok"], outcomes
        assert (printed, removed) == (set(codes[2:]), set(codes[:2]))


def test_two_technicians_removing_one_label_at_once(engine, bench):
    """The same queued label taken out twice at once: one removal, the other a 409."""
    printer_id, codes, zebra = bench
    with Session(engine) as session:
        first = session.scalar(
            select(QueuedLabel.id)
            .where(QueuedLabel.printer_id == printer_id)
            .order_by(QueuedLabel.id)
        )
    assert first is not None
    outcomes = _race(engine, [_remove([first]), _remove([first])], [0, 0])
    assert sorted(outcomes) == ["409", "ok"], outcomes
    with Session(engine) as session:
        row = session.get_one(QueuedLabel, first)
        assert row.cancelled_at is not None and row.printed_at is None


def test_two_technicians_queuing_one_label_at_once(engine, bench):
    """The same tube queued twice for one printer at once: one label waits, the other a
    409."""
    printer_id, codes, zebra = bench
    with Session(engine) as session:
        first = session.scalar(
            select(QueuedLabel.id)
            .where(QueuedLabel.printer_id == printer_id)
            .order_by(QueuedLabel.id)
        )
        assert first is not None
        queue.remove(session, ACTOR, first)  # out of the queue: it may be queued again
        session.commit()

    def enqueue(session: Session) -> None:
        queue.enqueue(session, ACTOR, session.get_one(Printer, printer_id), [codes[0]])

    assert sorted(_race(engine, [enqueue, enqueue], [0, 0])) == ["409", "ok"]
    with Session(engine) as session:
        assert [
            w.barcode for w in queue.waiting(session, session.get_one(Printer, printer_id))
        ] == codes[1:] + codes[:1]
