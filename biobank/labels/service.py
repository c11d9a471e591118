"""What goes on a label, printers, and print jobs recorded as custody events.

A label shows the tube's barcode, the patient's study pseudonym, material, aliquot type,
timepoint, collection date and its place n/N among the sample's aliquots: never an
accession number, a note or anything else that identifies the patient directly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.custody.models import CustodyEvent
from biobank.custody.service import record_audit, record_events
from biobank.errors import Conflict, Invalid, NotFound
from biobank.labels import printing
from biobank.labels.models import Printer, PrintJob
from biobank.labels.network import PrinterRule, Unresolved
from biobank.labels.templates import LabelTemplate, Registry
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material, Site, Timepoint
from biobank.samples.models import Aliquot, Sample
from biobank.samples.service import Numbering, check_code

UNSCHEDULED = "UNSCHED"
# An anonymised tube's label: no patient to name, no collection date.
ANONYMISED = "ANON"
MAX_LABELS = 1000


def aliquot_rows(
    session: Session, where: ColumnElement[bool], order: Any = None
) -> list[tuple[int, dict[str, str]]]:
    """(aliquot id, label data) for the aliquots ``where`` selects, in one query (only those
    at the asker's sites: ``biobank.auth.scope``)."""
    where = and_(where, scope.aliquot_filter(scope.of(session), Aliquot.id))
    involved = select(Aliquot.sample_id).where(where).scalar_subquery()
    ranked = (
        select(
            Aliquot.id.label("id"),
            func.row_number().over(partition_by=Aliquot.sample_id, order_by=Aliquot.id).label("n"),
            func.count().over(partition_by=Aliquot.sample_id).label("total"),
        )
        .where(Aliquot.sample_id.in_(involved))
        .subquery()
    )
    query = (
        select(
            Aliquot.id,
            Aliquot.barcode,
            Patient.study_id,
            Material.code,
            AliquotType.code,
            Timepoint.code,
            Sample.collected_at,
            ranked.c.n,
            ranked.c.total,
        )
        .select_from(Aliquot)
        .join(ranked, ranked.c.id == Aliquot.id)
        .join(Sample, Sample.id == Aliquot.sample_id)
        .outerjoin(Patient, Patient.id == Sample.patient_id)  # none: anonymised
        .join(Material, Material.id == Sample.material_id)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
        .outerjoin(Timepoint, Timepoint.id == Sample.timepoint_id)
        .where(where)
        .order_by(*(order if order is not None else (Aliquot.id,)))
    )
    return [
        (
            row[0],
            {
                "barcode": row[1],
                "study_id": row[2] or ANONYMISED,
                "material": row[3],
                "aliquot_type": row[4],
                "timepoint": row[5] or UNSCHEDULED,
                # An anonymised tube's label carries no patient and no date (the relabelling task).
                "date": row[6].date().isoformat() if row[6] is not None else "",
                "position": f"{row[7]}/{row[8]}",
            },
        )
        for row in session.execute(query)
    ]


def normalize_codes(codes: list[str], numbering: Numbering, field: str = "barcodes") -> list[str]:
    """Scanned or typed codes, normalized and check-character checked; no duplicates."""
    if not codes:
        raise Invalid("give at least one barcode", field=field)
    if len(codes) > MAX_LABELS:
        raise Invalid(f"at most {MAX_LABELS} labels at a time", field=field)
    out = [check_code(code, numbering, f"{field}.{index}") for index, code in enumerate(codes)]
    if len(set(out)) != len(out):
        raise Invalid("a barcode is listed twice (use copies for more labels)", field=field)
    return out


def aliquot_labels(session: Session, codes: list[str]) -> list[tuple[int, dict[str, str]]]:
    """Label data of aliquots by barcode, in the order given; 404 naming any unknown."""
    rows = {
        data["barcode"]: (aliquot_id, data)
        for aliquot_id, data in aliquot_rows(session, Aliquot.barcode.in_(codes))
    }
    missing = [code for code in codes if code not in rows]
    if missing:
        raise NotFound(f"no aliquot {', '.join(missing)}")
    return [rows[code] for code in codes]


def sample_labels(session: Session, sample: Sample) -> list[tuple[int, dict[str, str]]]:
    """Label data of all a sample's aliquots, n/N order."""
    return aliquot_rows(session, Aliquot.sample_id == sample.id)


# --- printers --------------------------------------------------------------------------


def _checked_address(rule: PrinterRule, host: str, port: int) -> None:
    """422 unless ``host:port`` is where the printer rule lets printers be (a host name
    is resolved now, and every address it has is checked)."""
    try:
        rule.addresses(host, port)
    except Unresolved as exc:
        raise Invalid(
            f"{exc}: give an address or a name this server can resolve", field="host"
        ) from None


def _site(session: Session, code: str | None) -> Site | None:
    if not code:
        return None
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise Invalid(f"unknown site {code!r}", field="site")
    return site


def register_printer(
    session: Session, actor: str, values: dict[str, Any], registry: Registry, rule: PrinterRule
) -> Printer:
    """Register a label printer at an address the printer rule allows; its default
    template must exist and label aliquots."""
    if session.scalar(select(Printer.id).where(Printer.name == values["name"])) is not None:
        raise Conflict(f"a printer named {values['name']!r} exists already", field="name")
    template = registry.get(values.get("template"), "aliquot", values["dpi"])
    if values["dpi"] not in template.zpl:
        raise Invalid(f"template {template.name} has no {values['dpi']} dpi form", field="dpi")
    site = _site(session, values.get("site"))
    _checked_address(rule, values["host"], values["port"])
    printer = Printer(
        name=values["name"],
        host=values["host"],
        port=values["port"],
        dpi=values["dpi"],
        template=template.name,
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
            "host": printer.host,
            "port": printer.port,
            "dpi": printer.dpi,
            "template": printer.template,
            "site": values.get("site"),
        },
    )
    return printer


def change_printer(
    session: Session,
    actor: str,
    printer: Printer,
    values: dict[str, Any],
    registry: Registry,
    rule: PrinterRule,
) -> Printer:
    """Change a printer's address, resolution, template or site (the address again within
    the printer rule); the audit trail keeps the old and new values."""
    before = {
        "host": printer.host,
        "port": printer.port,
        "dpi": printer.dpi,
        "template": printer.template,
        "site": printer.site.code if printer.site else None,
    }
    after = {**before, **values}
    template = registry.get(after["template"], "aliquot", after["dpi"])
    if after["dpi"] not in template.zpl:
        raise Invalid(f"template {template.name} has no {after['dpi']} dpi form", field="dpi")
    after["template"] = template.name
    site = _site(session, after["site"])
    if "host" in values or "port" in values:
        _checked_address(rule, after["host"], after["port"])
    changed = {key for key in after if after[key] != before[key]}
    if not changed:
        return printer
    printer.host, printer.port, printer.dpi = after["host"], after["port"], after["dpi"]
    printer.template, printer.site = after["template"], site
    session.flush()
    record_audit(
        session,
        actor,
        "printer",
        printer.name,
        "changed",
        old_values={key: before[key] for key in sorted(changed)},
        new_values={key: after[key] for key in sorted(changed)},
    )
    return printer


def get_printer(session: Session, name: str) -> Printer:
    """A printer by name, or 404."""
    printer = session.scalar(select(Printer).where(Printer.name == name))
    if printer is None:
        raise NotFound(f"no printer {name!r}")
    return printer


def list_printers(session: Session) -> list[Printer]:
    """Every printer, by name."""
    return list(session.scalars(select(Printer).order_by(Printer.name)))


# --- printing --------------------------------------------------------------------------


def already_printed(session: Session, aliquot_ids: list[int]) -> set[int]:
    """Which of these aliquots have had a label printed before."""
    if not aliquot_ids:
        return set()
    return set(
        session.scalars(
            select(CustodyEvent.aliquot_id)
            .distinct()
            .where(
                CustodyEvent.aliquot_id.in_(aliquot_ids),
                CustodyEvent.event_type.in_(("label_printed", "label_reprinted")),
            )
        )
    )


def reprints(
    session: Session, labels: list[tuple[int, dict[str, str]]], reason: str | None
) -> set[int]:
    """The tubes among ``labels`` that had a label before; printing one again needs a
    reason (422 naming ``reason`` without one)."""
    reprinted = already_printed(session, [aliquot_id for aliquot_id, _ in labels])
    if reprinted and not (reason and reason.strip()):
        again = [data["barcode"] for aliquot_id, data in labels if aliquot_id in reprinted]
        raise Invalid(
            f"{', '.join(again)} had a label printed before: say why it is printed again",
            field="reason",
        )
    return reprinted


def aliquot_job(
    session: Session,
    printer: Printer,
    codes: list[str],
    registry: Registry,
    *,
    template: str | None = None,
    copies: int = 1,
    reason: str | None = None,
) -> printing.Job:
    """The job printing these tubes' labels, checked (404 naming an unknown tube; a tube that
    had a label before gets ``label_reprinted``, which needs a reason: 422) and rendered;
    nothing is written."""
    chosen: LabelTemplate = registry.get(template or printer.template, "aliquot")
    labels = aliquot_labels(session, codes)
    reprinted = reprints(session, labels, reason)
    stream, _ = chosen.render("zpl", printer.dpi, [data for _, data in labels], copies)

    def record(session: Session, actor: str, job: PrintJob) -> None:
        record_events(
            session,
            [
                {
                    "event_type": "label_reprinted" if aliquot_id in reprinted else "label_printed",
                    "aliquot_id": aliquot_id,
                    "reason": reason,
                    "new_values": {
                        "printer": printer.name,
                        "template": chosen.name,
                        "dpi": printer.dpi,
                        "copies": copies,
                        "print_job": job.id,
                    },
                }
                for aliquot_id, _ in labels
            ],
            actor,
            job.printed_at,
        )

    return printing.Job(
        printer=printer,
        template=chosen,
        kind="aliquot",
        ids=[aliquot_id for aliquot_id, _ in labels],
        codes=[data["barcode"] for _, data in labels],
        stream=stream,
        copies=copies,
        reprint=bool(reprinted),
        reason=reason,
        record=record,
    )


def print_aliquot_labels(
    session: Session,
    actor: str,
    printer: Printer,
    codes: list[str],
    registry: Registry,
    *,
    template: str | None = None,
    copies: int = 1,
    reason: str | None = None,
    timeout: float,
    rule: PrinterRule,
) -> PrintJob:
    """Print tubes' labels: on record (in the printer queue, committed) before the printer
    gets them, ``label_printed`` / ``label_reprinted`` once it took them (labels/printing.py:
    the caller commits that second step). A printer that took nothing (PrinterError: 502/504)
    leaves nothing written."""
    job = aliquot_job(
        session, printer, codes, registry, template=template, copies=copies, reason=reason
    )
    return printing.print_job(session, actor, job, timeout=timeout, rule=rule)
