"""Printing on network label printers: real TCP listeners on 127.0.0.1 stand in for Zebras.

A print job is recorded (label_printed / label_reprinted per tube) only after the printer
took the bytes; a printer that refuses or stalls is a 502 / 504 and nothing is written (the
labels, on record in the printer queue before the send, leave it again). What happens when
something fails after the printer took the labels: tests/test_labels_record_first.py.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from biobank.custody.models import CustodyEvent
from biobank.labels import printers, queue
from biobank.labels.demo import DEMO_PRINTER, load_demo
from biobank.labels.models import Printer, PrintJob
from biobank.labels.network import PrinterRule
from tests.test_labels_templates import zpl_labels


class FakePrinter:
    """Accepts connections on an ephemeral loopback port and keeps every job it reads."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.jobs: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
                self.jobs.append(b"".join(chunks))

    def wait_for(self, count: int) -> None:
        """Wait (a little) until ``count`` jobs were read to the end."""
        for _ in range(100):
            if len(self.jobs) >= count:
                return
            self._stop.wait(0.02)
        raise AssertionError(f"the printer read {len(self.jobs)} jobs, not {count}")

    def settle(self) -> None:
        """Wait until every connection made to the printer so far has been read to its end.

        The printer reads one connection at a time, in the order they came: a last one of our
        own, read in turn, says that those before it were (its job is then removed)."""
        mark = f"settle-{uuid.uuid4()}".encode()
        with socket.create_connection(("127.0.0.1", self.port)) as probe:
            probe.sendall(mark)
        for _ in range(250):
            if mark in self.jobs:
                self.jobs.remove(mark)
                return
            self._stop.wait(0.02)
        raise AssertionError("the printer did not read the last connection")

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def zebra() -> Iterator[FakePrinter]:
    """A listening fake printer."""
    printer = FakePrinter()
    yield printer
    printer.close()


@pytest.fixture
def refused_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A printer that never answers: its accept queue is full, so new connections hang."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(16):
        filler = socket.socket()
        filler.settimeout(0.2)
        try:
            filler.connect(("127.0.0.1", port))
        except TimeoutError:
            filler.close()
            break
        fillers.append(filler)
    else:
        pytest.fail("the accept queue never filled")
    yield port
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture
def register(manager):  # type: ignore[no-untyped-def]
    """``register(name, port, **more)`` → the printer as the API returns it."""

    def make(name: str, port: int, **more):  # type: ignore[no-untyped-def]
        response = manager.post(
            "/api/v1/printers",
            json={"name": name, "host": "127.0.0.1", "port": port, "site": "NL-PMC", **more},
        )
        assert response.status_code == 201, response.json
        return response.json

    return make


@pytest.fixture
def tubes(make_aliquots):  # type: ignore[no-untyped-def]
    """Three aliquots of one sample."""
    return make_aliquots(n=3)


def label_events(session, kind=None) -> list[CustodyEvent]:  # type: ignore[no-untyped-def]
    """Every label event, oldest first."""
    query = select(CustodyEvent).where(
        CustodyEvent.event_type.in_([kind] if kind else ["label_printed", "label_reprinted"])
    )
    return list(session.scalars(query.order_by(CustodyEvent.id)))


def jobs(session) -> int:  # type: ignore[no-untyped-def]
    """How many print jobs are recorded."""
    return session.scalar(select(func.count()).select_from(PrintJob))


def test_registering_a_printer(manager, tech, register):
    """Managers register printers (port 9100 by default); technicians list them."""
    response = manager.post(
        "/api/v1/printers", json={"name": "Zebra-2", "host": "10.0.0.2", "dpi": 300}
    )
    assert response.status_code == 201
    assert response.json["port"] == 9100
    assert response.json["template"] == "cryovial-code128"
    assert response.json["created_by"] == manager.username
    assert tech.post("/api/v1/printers", json={"name": "X", "host": "h"}).status_code == 403
    assert [p["name"] for p in tech.get("/api/v1/printers").json] == ["Zebra-2"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"template": "nope"}, 422, "template"),
        ({"template": "box-code128"}, 422, "template"),
        ({"site": "XX-NONE"}, 422, "site"),
        ({"dpi": 600}, 422, "dpi"),
        ({"port": 70000}, 422, "port"),
        ({"name": "Zebra-Dup"}, 409, "name"),
    ],
)
def test_bad_printer_registrations(manager, register, body, status, field):
    """Unknown templates and sites, impossible resolutions and ports, duplicate names."""
    register("Zebra-Dup", 9100)
    response = manager.post("/api/v1/printers", json={"name": "Zebra-3", "host": "h", **body})
    assert response.status_code == status, response.json
    assert field in str(response.json["errors"])


def test_printing_sends_zpl_and_records_each_label_once_accepted(
    tech, tubes, zebra, register, session
):
    """The printer receives one ZPL stream; each tube gets a label_printed event."""
    register("Zebra-Lab-7", zebra.port)
    response = tech.post(
        "/api/v1/print-jobs",
        json={"printer": "Zebra-Lab-7", "barcodes": [t.barcode for t in tubes], "copies": 2},
    )
    assert response.status_code == 201, response.json
    job = response.json
    assert job["labels"] == 3 and job["copies"] == 2 and job["reprint"] is False
    assert job["barcodes"] == [t.barcode for t in tubes]
    zebra.wait_for(1)
    labels = zpl_labels(zebra.jobs[0].decode())
    assert [label["data"][0] for label in labels] == [t.barcode for t in tubes]
    assert all(label["pq"] == 2 for label in labels)
    assert job["bytes_sent"] == len(zebra.jobs[0])
    events = label_events(session)
    assert [(e.aliquot_id, e.event_type) for e in events] == [
        (t.id, "label_printed") for t in tubes
    ]
    assert events[0].actor == tech.username
    # A 203 dpi printer registered without a template gets the cryovial DataMatrix: the
    # Code 128 does not fit 32 mm at 203 dpi in modules of two dots.
    assert events[0].new_values == {
        "copies": 2,
        "dpi": 203,
        "print_job": job["id"],
        "printer": "Zebra-Lab-7",
        "template": "cryovial-datamatrix",
    }


def test_a_reprint_needs_a_reason_and_is_recorded_as_such(tech, tubes, zebra, register, session):
    """A tube that had a label: without a reason 422 and nothing sent; with one,
    label_reprinted carrying the reason."""
    register("Zebra-Lab-7", zebra.port)
    first = tech.post(
        "/api/v1/print-jobs", json={"printer": "Zebra-Lab-7", "barcodes": [tubes[0].barcode]}
    )
    assert first.status_code == 201
    zebra.wait_for(1)
    again = {"printer": "Zebra-Lab-7", "barcodes": [tubes[1].barcode, tubes[0].barcode]}
    refused = tech.post("/api/v1/print-jobs", json=again)
    assert refused.status_code == 422
    assert refused.json["errors"]["json"]["reason"]
    assert tubes[0].barcode in refused.json["message"]
    assert len(zebra.jobs) == 1 and len(label_events(session)) == 1
    reprint = tech.post("/api/v1/print-jobs", json={**again, "reason": "label smudged"})
    assert reprint.status_code == 201
    assert reprint.json["reprint"] is True
    reprinted = label_events(session, "label_reprinted")
    assert [(e.aliquot_id, e.reason) for e in reprinted] == [(tubes[0].id, "label smudged")]
    assert [e.aliquot_id for e in label_events(session, "label_printed")] == [
        tubes[0].id,
        tubes[1].id,
    ]


def test_a_printer_that_refuses_the_connection_is_a_502_and_nothing_is_recorded(
    tech, tubes, refused_port, register, session
):
    """Connection refused: a JSON error naming the printer; no event, no job."""
    register("Zebra-Off", refused_port)
    response = tech.post(
        "/api/v1/print-jobs", json={"printer": "Zebra-Off", "barcodes": [tubes[0].barcode]}
    )
    assert response.status_code == 502
    assert response.json["errors"]["printer"]["name"] == "Zebra-Off"
    assert "refused" in response.json["message"]
    assert label_events(session) == [] and jobs(session) == 0
    assert queue.waiting(session) == []  # on record before the send, gone again


def test_a_printer_that_stalls_is_a_504_and_nothing_is_recorded(
    tech, tubes, stalled_port, register, session, app
):
    """A printer that never takes the connection times out (BIOBANK_PRINTER_TIMEOUT)."""
    app.config["PRINTER_TIMEOUT"] = 0.3
    register("Zebra-Stuck", stalled_port)
    response = tech.post(
        "/api/v1/print-jobs", json={"printer": "Zebra-Stuck", "barcodes": [tubes[0].barcode]}
    )
    assert response.status_code == 504
    assert "0.3 s" in response.json["message"]
    assert label_events(session) == [] and jobs(session) == 0
    assert queue.waiting(session) == []


def test_a_printer_that_stops_reading_times_out_too():
    """Accepting the connection but never reading: the send stalls and times out, and the
    printer may have printed some of it (the labels then stay waiting in the queue)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        with pytest.raises(printers.PrinterError) as caught:
            printers.send(
                "Zebra-Jam",
                "127.0.0.1",
                server.getsockname()[1],
                b"^XA^XZ" * 4_000_000,
                timeout=0.3,
                rule=PrinterRule.parse("127.0.0.0/8", "1-65535"),
            )
        assert caught.value.status_code == 504
        assert caught.value.may_have_printed
    finally:
        server.close()


def test_a_printer_that_took_no_connection_printed_nothing(refused_port):
    """Refused before a connection was made: the printer got nothing."""
    with pytest.raises(printers.PrinterError) as caught:
        printers.send(
            "Zebra-Off",
            "127.0.0.1",
            refused_port,
            b"^XA^XZ",
            timeout=0.3,
            rule=PrinterRule.parse("127.0.0.0/8", "1-65535"),
        )
    assert caught.value.status_code == 502 and not caught.value.may_have_printed


def test_unknown_printers_bad_templates_and_long_codes_send_nothing(
    tech, tubes, zebra, register, session
):
    """404 for an unknown printer, 422 for an unknown template or an unknown tube."""
    register("Zebra-Lab-7", zebra.port)
    codes = [tubes[0].barcode]
    assert (
        tech.post("/api/v1/print-jobs", json={"printer": "Nope", "barcodes": codes}).status_code
        == 404
    )
    assert (
        tech.post(
            "/api/v1/print-jobs",
            json={"printer": "Zebra-Lab-7", "barcodes": codes, "template": "nope"},
        ).status_code
        == 422
    )
    assert (
        tech.post("/api/v1/print-jobs", json={"printer": "Zebra-Lab-7", "barcodes": []}).status_code
        == 422
    )
    assert (
        tech.post(
            "/api/v1/print-jobs", json={"printer": "Zebra-Lab-7", "barcodes": ["NOPE-1"]}
        ).status_code
        == 404
    )
    assert zebra.jobs == [] and label_events(session) == []


def test_who_may_print(as_role, tubes, register, zebra):
    """Technicians print; researchers and consent officers do not."""
    register("Zebra-Lab-7", zebra.port)
    body = {"printer": "Zebra-Lab-7", "barcodes": [tubes[0].barcode]}
    for role in ("researcher", "consent_officer"):
        assert as_role(role).post("/api/v1/print-jobs", json=body).status_code == 403


def test_the_demo_printer_is_idempotent_and_shows_the_error_path(session, tech, tubes):
    """Loading the demo twice adds Zebra-Lab-1 once; printing to it fails with a 502."""
    assert load_demo(session, "demo") == 1
    assert load_demo(session, "demo") == 0
    session.commit()
    printer = session.scalar(select(Printer).where(Printer.name == DEMO_PRINTER))
    assert (printer.host, printer.port) == ("127.0.0.1", 9)
    response = tech.post(
        "/api/v1/print-jobs", json={"printer": DEMO_PRINTER, "barcodes": [tubes[0].barcode]}
    )
    assert response.status_code == 502
    assert DEMO_PRINTER in response.json["message"]
    assert label_events(session) == []


def test_the_printer_timeout_comes_from_the_environment():
    """BIOBANK_PRINTER_TIMEOUT (seconds, may be fractional); 5 s unless set."""
    from biobank.config import DEFAULTS, from_environment

    assert DEFAULTS["PRINTER_TIMEOUT"] == 5.0
    assert from_environment({"BIOBANK_PRINTER_TIMEOUT": "2.5"})["PRINTER_TIMEOUT"] == 2.5


def test_box_labels_print_and_go_to_the_boxes_audit_trail(tech, session, zebra, register):
    """kind=box prints the box template; a box is no custody subject, so its label goes to
    its audit trail (a reprint needs a reason too)."""
    from biobank.custody.service import audit_trail
    from biobank.samples import barcodes
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage
    from biobank.storage.naming import BOX_PREFIX

    storage.load_default_box_types(session, "setup")
    freezer = storage.create_freezer(
        session,
        "setup",
        {"site": "NL-PMC", "name": "F-80-09", "freezer_type": "mechanical-80"},
        Numbering(),
    )
    box = storage.create_box(
        session,
        "setup",
        {"box_type": "9X9", "parent": freezer.barcode, "name": "DNA 1"},
        Numbering(),
    )
    session.commit()
    register("Zebra-Lab-7", zebra.port)
    body = {"printer": "Zebra-Lab-7", "barcodes": [box.barcode], "kind": "box"}
    response = tech.post("/api/v1/print-jobs", json=body)
    assert response.status_code == 201, response.json
    assert response.json["template"] == "box-code128" and response.json["kind"] == "box"
    zebra.wait_for(1)
    [label] = zpl_labels(zebra.jobs[0].decode())
    assert {box.barcode, "DNA 1", "9X9"} <= set(label["data"])
    assert tech.post("/api/v1/print-jobs", json=body).status_code == 422
    again = tech.post("/api/v1/print-jobs", json={**body, "reason": "box relabelled"})
    assert again.status_code == 201
    actions = [r.action for r in audit_trail(session, "container", box.barcode)]
    assert actions[-2:] == ["label_printed", "label_reprinted"]
    unknown = barcodes.make(BOX_PREFIX, 99_999_999, 8)
    assert tech.post("/api/v1/print-jobs", json={**body, "barcodes": [unknown]}).status_code == 404
