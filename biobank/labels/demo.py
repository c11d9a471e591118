"""Demo data for labels: a printer entry nobody listens to, so the error path is visible."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.custody.service import record_audit
from biobank.labels.models import Printer
from biobank.reference.models import Site

DEMO_PRINTER = "Zebra-Lab-1"
# Port 9 (discard) on this machine: nothing listens there, so printing fails with a 502
# that names the printer, and nothing is recorded.
DEMO_HOST, DEMO_PORT = "127.0.0.1", 9
DEMO_SITE = "NL-PMC"
# What the demo printer needs of the printer rule (biobank.labels.network): loopback listed
# explicitly and port 9. `python3 dev.py serve` sets these unless they are set already.
DEMO_PRINTER_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.1/32"
DEMO_PRINTER_PORTS = "9100,9"


def load_demo(session: Session, actor: str) -> int:
    """Add the demo printer unless it exists; returns how many printers were added."""
    if session.scalar(select(Printer.id).where(Printer.name == DEMO_PRINTER)) is not None:
        return 0
    site = session.scalar(select(Site).where(Site.code == DEMO_SITE))
    printer = Printer(
        name=DEMO_PRINTER,
        host=DEMO_HOST,
        port=DEMO_PORT,
        dpi=300,
        template="cryovial-code128",
        site=site,
        created_by=actor,
    )
    session.add(printer)
    session.flush()
    record_audit(
        session,
        actor,
        "printer",
        printer.name,
        "registered",
        new_values={
            "host": DEMO_HOST,
            "port": DEMO_PORT,
            "dpi": 300,
            "template": printer.template,
            "site": DEMO_SITE if site else None,
            "note": "demo: nothing listens on this port",
        },
    )
    return 1
