"""Printing at the scan station has no dead end (issue 17, point 2): Alt+P prints at once on
the station's default printer, the card says whether that printer answers, and when it does
not the label can be downloaded (PNG, PDF, ZPL), queued until it answers, or sent to another
printer."""

from __future__ import annotations

import socket
import threading
import time

from browser_helpers import log_in, shot
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_bench_pages import ACTOR, scan

from biobank.custody.models import CustodyEvent
from biobank.labels import service as labels
from biobank.labels.network import printer_rule
from biobank.labels.rendering import registry
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType
from biobank.samples.models import Aliquot, Sample


class FakeZebra:
    """A real TCP listener on an ephemeral port standing in for a networked Zebra."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.received = b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                while chunk := conn.recv(65536):
                    self.received += chunk

    def close(self) -> None:
        self.listener.close()


def _unlabelled(session: Session, but: str = "") -> str:
    """A demo plasma tube (a study ID short enough for the label) never labelled before
    (other than ``but``)."""
    printed = select(CustodyEvent.aliquot_id).where(
        CustodyEvent.event_type.in_(("label_printed", "label_reprinted"))
    )
    return session.scalar(
        select(Aliquot.barcode)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
        .join(Sample, Sample.id == Aliquot.sample_id)
        .join(Patient, Patient.id == Sample.patient_id)
        .where(
            AliquotType.code == "PLASMA",
            Aliquot.status == "available",
            func.length(Patient.study_id) <= 14,
            Aliquot.id.not_in(printed),
            Aliquot.barcode != but,
        )
        .order_by(Aliquot.id.desc())
    )


def test_alt_p_prints_at_once_and_a_silent_printer_is_no_dead_end(page, live_server):
    """The demo printer does not answer: the card says so, Alt+P tries at once and the
    refusal offers the label as PNG, PDF and ZPL; choosing a printer that answers (the
    station remembers it) and Alt+P again prints there."""
    tube = live_server.call(_unlabelled)
    log_in(page, "demo-technician", "/scan")
    page.set_viewport_size({"width": 1366, "height": 768})
    scan(page, tube)
    page.locator(".printer-state.is-down").wait_for()
    button = page.get_by_role("button", name="Print label")
    assert button.bounding_box()["y"] + button.bounding_box()["height"] <= 768, "below the fold"
    page.keyboard.press("Alt+p")
    alert = page.get_by_role("alert").filter(has_text="was not printed")
    alert.wait_for()
    assert "is not answering" in alert.inner_text()
    shot(page, "station-print-failed")
    for name, magic in (
        ("Label as PNG", b"\x89PNG"),
        ("as PDF", b"%PDF"),
        ("as ZPL (Zebra)", b"^XA"),
    ):
        href = page.get_by_role("link", name=name).get_attribute("href")
        got = page.request.get(href)
        assert got.status == 200 and got.body().startswith(magic), name
        assert tube in got.headers["content-disposition"]
    zebra = FakeZebra()
    try:

        def register(session: Session) -> None:
            labels.register_printer(
                session,
                ACTOR,
                {
                    "name": f"Bench Zebra {zebra.port}",
                    "host": "127.0.0.1",
                    "port": zebra.port,
                    "dpi": 203,
                    "template": None,
                    "site": None,
                },
                registry(),
                printer_rule(),
            )

        live_server.call(register)
        scan(page, tube)
        page.get_by_label("Printer").select_option(f"Bench Zebra {zebra.port}")
        page.locator(".printer-state.is-ready").wait_for()
        scan(page, tube)  # the station keeps the choice as its default
        assert page.get_by_label("Printer").input_value() == f"Bench Zebra {zebra.port}"
        page.keyboard.press("Alt+p")
        page.get_by_role("status").filter(
            has_text=f"printed on Bench Zebra {zebra.port}"
        ).wait_for()
        deadline = time.monotonic() + 5
        while b"^XZ" not in zebra.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"^XA" in zebra.received and tube.encode() in zebra.received
        shot(page, "station-printed")
    finally:
        zebra.close()


def test_a_label_queued_for_a_silent_printer_prints_once_it_answers(page, live_server):
    """The printer is off: the refusal offers to queue the label; the queue page lists it;
    the printer comes back and the next label it takes brings the queued one with it."""
    first, second = live_server.call(_unlabelled), None
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # nothing listens here: the printer is off
    name = f"Bench Zebra off {port}"

    def register(session: Session) -> None:
        labels.register_printer(
            session,
            ACTOR,
            {
                "name": name,
                "host": "127.0.0.1",
                "port": port,
                "dpi": 203,
                "template": None,
                "site": None,
            },
            registry(),
            printer_rule(),
        )

    live_server.call(register)
    log_in(page, "demo-technician", "/scan")
    scan(page, first)
    page.get_by_label("Printer").select_option(name)
    page.keyboard.press("Alt+p")
    page.get_by_role("alert").filter(has_text="was not printed").wait_for()
    page.get_by_role("button", name=f"Queue it for {name}").click()
    page.get_by_role("status").filter(has_text="queued").wait_for()
    shot(page, "station-label-queued")
    page.goto("/printers/queue")
    assert page.get_by_role("heading", name=f"{name}: 1 label(s) waiting").is_visible()
    assert page.locator("td.code", has_text=first).count() == 1
    shot(page, "printer-queue")
    zebra = FakeZebra(port)  # switched back on
    try:
        second = live_server.call(_unlabelled, first)
        page.goto("/scan")
        scan(page, second)
        page.get_by_label("Printer").select_option(name)
        page.keyboard.press("Alt+p")
        page.get_by_role("status").filter(has_text="that were waiting for it").wait_for()
        deadline = time.monotonic() + 5
        while first.encode() not in zebra.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.encode() in zebra.received and second.encode() in zebra.received
    finally:
        zebra.close()
    page.goto("/printers/queue")
    assert page.get_by_text("No label is waiting.").is_visible()
