"""Labels queued for a printer that is not answering print once it answers: each label
through the ordinary print path (custody events, reprint reasons, the job recorded only once
the printer took it), one waiting label per tube and printer. Real TCP listeners stand in for
the printers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from biobank.auth import scope
from biobank.errors import Conflict, Invalid, NotFound
from biobank.labels import queue
from biobank.labels import service as labels
from biobank.labels.models import Printer, QueuedLabel
from biobank.labels.network import printer_rule
from biobank.labels.printers import PrinterError
from biobank.labels.rendering import registry
from tests.test_labels_printing import (  # noqa: F401
    FakePrinter,
    label_events,
    refused_port,
    register,
    tubes,
    zebra,
)

ACTOR = "queue-test"


def _printer(session, name: str) -> Printer:  # type: ignore[no-untyped-def]
    return session.scalar(select(Printer).where(Printer.name == name))


def test_a_queued_label_prints_when_the_printer_answers_again(
    session, register, tubes, refused_port
):
    """Queued while the printer is off: nothing sent or recorded; once it listens, the queue
    prints in one go and each tube gets its label_printed event naming the job."""
    register("Bench-Off", refused_port)
    printer = _printer(session, "Bench-Off")
    codes = [t.barcode for t in tubes[:2]]
    queue.enqueue(session, ACTOR, printer, codes)
    with pytest.raises(PrinterError):
        queue.print_waiting(session, ACTOR, printer, registry(), timeout=0.5, rule=printer_rule())
    assert label_events(session) == []
    assert [w.barcode for w in queue.waiting(session, printer)] == codes
    back_on = FakePrinter(refused_port)  # switched back on
    try:
        assert (
            queue.print_waiting(session, ACTOR, printer, registry(), timeout=2, rule=printer_rule())
            == 2
        )
        back_on.wait_for(1)
        assert all(code.encode() in back_on.jobs[0] for code in codes)
    finally:
        back_on.close()
    assert queue.waiting(session, printer) == []
    events = label_events(session)
    assert [e.aliquot_id for e in events] == [t.id for t in tubes[:2]]
    done = session.scalars(select(QueuedLabel)).all()
    assert {q.print_job_id for q in done} == {events[0].new_values["print_job"]}


def test_a_reprint_is_queued_only_with_its_reason_and_prints_with_it(
    session, register, tubes, zebra, refused_port
):
    """The reprint rule holds in the queue: no reason, 422; the reason reaches the event."""
    register("Bench-On", zebra.port)
    labels.print_aliquot_labels(
        session,
        ACTOR,
        _printer(session, "Bench-On"),
        [tubes[0].barcode],
        registry(),
        timeout=2,
        rule=printer_rule(),
    )
    register("Bench-Off", refused_port)
    off = _printer(session, "Bench-Off")
    with pytest.raises(Invalid) as refused:
        queue.enqueue(session, ACTOR, off, [tubes[0].barcode])
    assert refused.value.field == "reason"
    queue.enqueue(session, ACTOR, off, [tubes[0].barcode], reason="label smudged")
    [waiting] = queue.waiting(session, off)
    assert waiting.reason == "label smudged"
    back_on = FakePrinter(refused_port)
    try:
        assert (
            queue.print_waiting(session, ACTOR, off, registry(), timeout=2, rule=printer_rule())
            == 1
        )
    finally:
        back_on.close()
    last = label_events(session)[-1]
    assert (last.event_type, last.reason) == ("label_reprinted", "label smudged")


def test_a_tube_waits_once_per_printer(session, register, tubes, refused_port):
    """Queuing the same label twice for one printer is a 409; removing it frees the place."""
    register("Bench-Off", refused_port)
    printer = _printer(session, "Bench-Off")
    queue.enqueue(session, ACTOR, printer, [tubes[0].barcode])
    with pytest.raises(Conflict):
        queue.enqueue(session, ACTOR, printer, [tubes[0].barcode])
    [waiting] = queue.waiting(session, printer)
    removed = queue.remove(session, ACTOR, waiting.id)
    assert removed.barcode == tubes[0].barcode and queue.waiting(session, printer) == []
    queue.enqueue(session, ACTOR, printer, [tubes[0].barcode])
    with pytest.raises(NotFound):
        queue.remove(session, ACTOR, waiting.id)
    row = session.get(QueuedLabel, waiting.id)
    assert (row.cancelled_by, row.printed_at) == (ACTOR, None)


def test_a_site_scoped_user_sees_only_their_sites_labels_in_the_queue(
    session, register, tubes, refused_port
):
    """An NL-PMC tube's queued label is not listed, nor removable, for a DE-KIEL user."""
    register("Bench-Off", refused_port)
    printer = _printer(session, "Bench-Off")
    queue.enqueue(session, ACTOR, printer, [tubes[0].barcode])
    [waiting] = queue.waiting(session, printer)
    scope.bind(session, scope.for_sites(["DE-KIEL"]))
    try:
        assert queue.waiting(session) == []
        with pytest.raises(NotFound):
            queue.remove(session, ACTOR, waiting.id)
    finally:
        scope.unbind(session)
    assert [w.barcode for w in queue.waiting(session)] == [tubes[0].barcode]
