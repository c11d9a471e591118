"""Printers only where printers are: BIOBANK_PRINTER_NETWORKS and BIOBANK_PRINTER_PORTS
decide where a printer may be registered, changed to and printed to; label data never
carries a line break or another control character into the ZPL stream.

The listeners are real TCP sockets on 127.0.0.1; each test sets the two variables to what
it needs (the suite's default allows loopback, for the other printer tests).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from biobank import create_app
from biobank.custody.models import AuditRecord, CustodyEvent
from biobank.labels import queue
from biobank.labels.demo import DEMO_PRINTER, load_demo
from biobank.labels.models import Printer, PrintJob
from biobank.labels.network import PrinterRule
from biobank.labels.zpl import escape
from tests.test_labels_printing import FakePrinter, zpl_labels

DEFAULT_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"


@pytest.fixture
def rule(app):  # type: ignore[no-untyped-def]
    """``rule(networks, ports)`` sets the two variables for this test (the defaults unless
    told otherwise)."""

    def set_rule(networks: str = DEFAULT_NETWORKS, ports: str = "9100") -> None:
        app.config["PRINTER_NETWORKS"] = networks
        app.config["PRINTER_PORTS"] = ports

    set_rule()
    return set_rule


@pytest.fixture
def listener():  # type: ignore[no-untyped-def]
    """A real TCP listener on 127.0.0.1 that keeps every byte it is sent."""
    printer = FakePrinter()
    yield printer
    printer.close()


def register(client, host: str, port: int, name: str = "Zebra-Net"):  # type: ignore[no-untyped-def]
    """POST /printers; the response."""
    return client.post("/api/v1/printers", json={"name": name, "host": host, "port": port})


def printers(session) -> int:  # type: ignore[no-untyped-def]
    """How many printers are registered."""
    return session.scalar(select(func.count()).select_from(Printer))


@pytest.mark.parametrize(
    ("host", "port", "words"),
    [
        ("127.0.0.1", 5432, "loopback"),  # the database next door
        ("127.0.0.1", 5000, "loopback"),  # the app's own port
        ("169.254.169.254", 80, "link-local"),  # a cloud's metadata service
        ("0.0.0.0", 9100, "unspecified"),
        ("::1", 9100, "loopback"),
        ("::ffff:127.0.0.1", 9100, "loopback"),  # loopback spelt as IPv6
        ("8.8.8.8", 9100, "outside the printer networks"),
        ("10.1.2.3", 22, "not a printer port"),
        ("192.168.4.20", 6379, "not a printer port"),
    ],
)
def test_a_printer_outside_the_networks_and_ports_is_refused(
    manager, session, rule, host, port, words
):
    """Registering loopback, link-local, unspecified, public addresses or a port other than
    9100 is a 422 naming the rule; nothing is registered."""
    response = register(manager, host, port)
    assert response.status_code == 422, response.json
    assert words in response.json["message"]
    assert "BIOBANK_PRINTER_" in response.json["message"]
    field = "port" if "port" in words else "host"
    assert field in response.json["errors"]["json"]
    assert printers(session) == 0


@pytest.mark.parametrize("host", ["10.20.30.40", "172.16.0.9", "192.168.1.50"])
def test_a_printer_in_a_private_network_on_9100_is_registered(manager, rule, host):
    """The default networks (RFC 1918) on the default port take a printer."""
    response = register(manager, host, 9100)
    assert response.status_code == 201, response.json
    assert (response.json["host"], response.json["port"]) == (host, 9100)


@pytest.mark.parametrize(
    ("networks", "host", "allowed"),
    [
        ("0.0.0.0/0", "127.0.0.1", False),  # a broad network does not list loopback
        ("0.0.0.0/0", "169.254.169.254", False),
        ("0.0.0.0/0", "0.0.0.0", False),
        ("::/0", "::1", False),
        ("0.0.0.0/0", "8.8.8.8", True),
        ("127.0.0.1/32", "127.0.0.1", True),  # listed explicitly
        ("127.0.0.0/8", "127.0.0.2", True),
        ("169.254.169.0/24", "169.254.169.254", True),
        ("::1/128", "::1", True),
    ],
)
def test_loopback_link_local_and_unspecified_only_when_listed_explicitly(
    manager, rule, networks, host, allowed
):
    """Only a listed network that is itself loopback, link-local or unspecified lets such
    an address in."""
    rule(networks, "9100")
    response = register(manager, host, 9100)
    assert response.status_code == (201 if allowed else 422), response.json


def test_ports_and_ranges(manager, rule):
    """BIOBANK_PRINTER_PORTS takes ports and ranges."""
    rule(DEFAULT_NETWORKS, "9100, 6101-6103")
    assert register(manager, "10.0.0.5", 6102, "A").status_code == 201
    assert register(manager, "10.0.0.5", 9100, "B").status_code == 201
    refused = register(manager, "10.0.0.5", 6104, "C")
    assert refused.status_code == 422
    assert "9100, 6101-6103" in refused.json["message"]


@pytest.mark.parametrize(
    "host", ["10.0.0.1:9100", "zebra lab", "http://10.0.0.1/", "-zebra", "zebra..lab"]
)
def test_a_host_that_is_neither_an_address_nor_a_name_is_refused(manager, rule, host):
    """Ports, spaces, URLs and broken names in the host field: 422 naming the field."""
    response = register(manager, host, 9100)
    assert response.status_code == 422, response.json
    assert "host" in response.json["errors"]["json"]


def test_host_names_are_resolved_and_checked(manager, session, rule):
    """A name is checked by the addresses it resolves to: localhost is loopback; a name
    nothing resolves is refused too."""
    loopback = register(manager, "localhost", 9100)
    assert loopback.status_code == 422
    assert "localhost (127.0.0.1)" in loopback.json["message"]
    unknown = register(manager, "no-such-zebra.invalid", 9100)
    assert unknown.status_code == 422
    assert "cannot be resolved" in unknown.json["message"]
    assert printers(session) == 0


def test_printing_checks_the_address_again(manager, tech, make_aliquots, listener, rule, session):
    """A printer registered while its address was allowed, then outside the rule (its name
    now resolves elsewhere, or the rule narrowed): the print is a 422 naming the rule, the
    listener receives nothing and nothing is recorded."""
    tube = make_aliquots(n=1)[0]
    rule("127.0.0.0/8", f"{listener.port}")
    assert register(manager, "localhost", listener.port).status_code == 201
    rule()
    response = tech.post(
        "/api/v1/print-jobs", json={"printer": "Zebra-Net", "barcodes": [tube.barcode]}
    )
    assert response.status_code == 422, response.json
    assert "loopback" in response.json["message"]
    assert "printer" in response.json["errors"]["json"]
    assert session.scalar(select(func.count()).select_from(PrintJob)) == 0
    assert (
        session.scalar(
            select(func.count())
            .select_from(CustodyEvent)
            .where(CustodyEvent.event_type == "label_printed")
        )
        == 0
    )
    assert queue.waiting(session) == []  # on record before the send, gone again
    # Allowed again: the same printer prints.
    rule("127.0.0.0/8", f"{listener.port}")
    again = tech.post(
        "/api/v1/print-jobs", json={"printer": "Zebra-Net", "barcodes": [tube.barcode]}
    )
    assert again.status_code == 201, again.json
    listener.wait_for(1)
    # One connection in all: the refused print never opened one (it would be read first).
    assert len(listener.jobs) == 1 and tube.barcode in listener.jobs[0].decode()


def test_the_reachability_probe_keeps_the_rule(manager, tech, listener, rule, session):
    """The scan station's "is the printer on?" probe connects to nothing outside the rule
    (else it would be a port scanner); inside it, it answers ready."""
    rule("127.0.0.0/8", f"{listener.port}")
    assert register(manager, "127.0.0.1", listener.port).status_code == 201
    ready = tech.get("/printers/Zebra-Net/reachable")
    assert ready.status_code == 200 and ready.json["ready"] is True
    rule()
    refused = tech.get("/printers/Zebra-Net/reachable")
    assert refused.status_code == 422
    assert refused.json["ready"] is False and "loopback" in refused.json["words"]


def test_changing_a_printer_keeps_the_rule_and_is_audited(manager, tech, session, rule):
    """PATCH /printers/{name}: an address outside the rule is a 422 and changes nothing;
    inside it, the change is made and audited with old and new values."""
    assert register(manager, "10.0.0.5", 9100).status_code == 201
    for body in ({"host": "127.0.0.1"}, {"port": 5432}, {"host": "169.254.169.254"}):
        refused = manager.patch("/api/v1/printers/Zebra-Net", json=body)
        assert refused.status_code == 422, (body, refused.json)
    printer = session.scalar(select(Printer).where(Printer.name == "Zebra-Net"))
    session.refresh(printer)
    assert (printer.host, printer.port) == ("10.0.0.5", 9100)
    changed = manager.patch("/api/v1/printers/Zebra-Net", json={"host": "10.0.0.6", "dpi": 300})
    assert changed.status_code == 200, changed.json
    assert (changed.json["host"], changed.json["dpi"]) == ("10.0.0.6", 300)
    record = session.scalars(
        select(AuditRecord).where(
            AuditRecord.entity_type == "printer", AuditRecord.action == "changed"
        )
    ).one()
    assert record.actor == manager.username
    assert record.old_values == {"dpi": 203, "host": "10.0.0.5"}
    assert record.new_values == {"dpi": 300, "host": "10.0.0.6"}
    assert tech.patch("/api/v1/printers/Zebra-Net", json={"dpi": 203}).status_code == 403
    assert manager.patch("/api/v1/printers/Nope", json={"dpi": 203}).status_code == 404


def test_the_demo_printer_needs_its_variables(session, tech, make_aliquots, rule):
    """The demo printer (127.0.0.1:9, nothing listening) shows the 502 path only with the
    variables dev.py serve sets; under the defaults it is refused by the rule."""
    from biobank.labels.demo import DEMO_PRINTER_NETWORKS, DEMO_PRINTER_PORTS

    tube = make_aliquots(n=1)[0]
    load_demo(session, "demo")
    session.commit()
    body = {"printer": DEMO_PRINTER, "barcodes": [tube.barcode]}
    assert tech.post("/api/v1/print-jobs", json=body).status_code == 422
    rule(DEMO_PRINTER_NETWORKS, DEMO_PRINTER_PORTS)
    assert tech.post("/api/v1/print-jobs", json=body).status_code == 502


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PRINTER_NETWORKS", "10.0.0.0/33"),
        ("PRINTER_NETWORKS", "printers"),
        ("PRINTER_PORTS", "70000"),
        ("PRINTER_PORTS", "9100-9000"),
        ("PRINTER_PORTS", "zebra"),
    ],
)
def test_a_wrong_printer_setting_stops_the_start(variable, value):
    """A network or port that is no such thing stops create_app, naming the variable."""
    with pytest.raises(ValueError, match=f"BIOBANK_{variable}"):
        create_app({"DATABASE_URL": "sqlite://", "TESTING": True, variable: value})


def test_the_rule_reads_its_settings():
    """Parsing: CIDRs (host bits allowed), ports and ranges, spaces and empty items."""
    parsed = PrinterRule.parse(" 10.1.2.3/8 , ,fd00::/8", "9100,6101-6103,")
    assert [str(n) for n in parsed.networks] == ["10.0.0.0/8", "fd00::/8"]
    assert parsed.ports == ((9100, 9100), (6101, 6103))


# --- control characters -----------------------------------------------------------------


def test_zpl_escapes_every_control_character():
    """Under ^FH, CR, LF, tab, DEL and C1 controls are written as hex, like ^ ~ and _."""
    assert escape("\r\nFLUSHALL\r\n") == "_0D_0AFLUSHALL_0D_0A"
    assert escape("a\tb\x7fc\x85") == "a_09b_7Fc_C2_85"
    assert escape("DNA 1 é") == "DNA 1 é"


def test_a_box_name_with_line_breaks_never_reaches_the_printer_as_a_line(
    tech, session, listener, rule, manager
):
    """A box named "\\r\\nFLUSHALL\\r\\n" (stored before names were checked): its label
    reaches the listener with the name in hex, no line of its own, no raw CR or LF in a
    field."""
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage
    from biobank.storage.models import Container

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
    session.execute(
        Container.__table__.update()
        .where(Container.__table__.c.id == box.id)
        .values(name="\r\nFLUSHALL\r\n")
    )
    session.commit()
    session.expire_all()
    rule("127.0.0.0/8", f"{listener.port}")
    assert register(manager, "127.0.0.1", listener.port).status_code == 201
    response = tech.post(
        "/api/v1/print-jobs",
        json={"printer": "Zebra-Net", "kind": "box", "barcodes": [box.barcode]},
    )
    assert response.status_code == 201, response.json
    listener.wait_for(1)
    stream = listener.jobs[0].decode()
    assert "FLUSHALL" not in stream.splitlines()
    [label] = zpl_labels(stream)
    assert "_0D_0AFLUSHALL_0D_0A" in label["data"]
    assert all("\r" not in data and "\n" not in data for data in label["data"])


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/boxes", {"box_type": "9X9", "parent": "X", "name": "\r\nFLUSHALL\r\n"}, "name"),
        ("/api/v1/patients", {"study_id": "IF21-NL-\r\n9"}, "study_id"),
        ("/api/v1/printers", {"name": "Zebra\r\n", "host": "10.0.0.1"}, "name"),
        ("/api/v1/printers", {"name": "Zebra", "host": "10.0.0.1\r\n"}, "host"),
    ],
)
def test_control_characters_are_refused_where_label_text_comes_in(manager, rule, url, body, field):
    """Text that ends up on a label (box names, study IDs) or in a printer's address:
    CR and LF are a 422 naming the field."""
    response = manager.post(url, json=body)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]["json"]


def test_the_storage_service_refuses_a_box_name_with_a_line_break(session):
    """Below the API too (imports, scripts): a box name with CR or LF is refused."""
    from biobank.errors import Invalid
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage

    storage.load_default_box_types(session, "setup")
    freezer = storage.create_freezer(
        session,
        "setup",
        {"site": "NL-PMC", "name": "F-80-10", "freezer_type": "mechanical-80"},
        Numbering(),
    )
    with pytest.raises(Invalid, match="control character"):
        storage.create_box(
            session,
            "setup",
            {"box_type": "9X9", "parent": freezer.barcode, "name": "a\r\nb"},
            Numbering(),
        )
