"""Printing from the bench with no dead end: the station's default printer (kept in a cookie
of this browser), whether a printer answers, the label to download (PNG, PDF or ZPL) when it
does not, and the queue of labels waiting for a printer to answer again."""

from __future__ import annotations

import io
from urllib.parse import unquote

from flask import (
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from PIL import Image

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.db import get_session
from biobank.errors import DomainError, Invalid, NotFound
from biobank.inputs import ascii_id
from biobank.labels import printers
from biobank.labels import queue as label_queue
from biobank.labels import service as labels
from biobank.labels.network import Unresolved, printer_rule
from biobank.labels.printers import PrinterError
from biobank.labels.rendering import registry
from biobank.samples.numbering import numbering
from biobank.web.common import page_blueprint

bp = page_blueprint("web_printing", __name__)

DEFAULT_PRINTER_COOKIE = "station_printer"
MIME = {"png": "image/png", "pdf": "application/pdf", "zpl": "text/plain"}


def default_printer(printers: list) -> str | None:  # type: ignore[type-arg]
    """The station's default printer: the one this browser chose, else the first."""
    chosen = unquote(request.cookies.get(DEFAULT_PRINTER_COOKIE, ""))
    names = [printer.name for printer in printers]
    return chosen if chosen in names else (names[0] if names else None)


@bp.get("/printers/<name>/reachable")
@requires("label:print")
def reachable(name: str) -> ResponseReturnValue:
    """Whether a printer answers on its port now (the card shows it; no label is sent)."""
    printer = labels.get_printer(get_session(), name)
    timeout = min(float(current_app.config["PRINTER_TIMEOUT"]), 0.5)
    try:
        # The same rule as a print: an address outside the printer networks is a 422,
        # never a probe.
        targets = printer_rule().addresses(printer.host, printer.port, field="printer")
    except Invalid as exc:
        return jsonify(
            printer=printer.name, ready=False, words=f"{printer.name} cannot be used: {exc.message}"
        ), 422
    except Unresolved:
        targets = []  # a name DNS does not know (now): not answering
    try:
        with printers.connect(targets, timeout):
            pass
    except OSError:
        return jsonify(
            printer=printer.name, ready=False, words=f"{printer.name} is not answering: is it on?"
        )
    return jsonify(printer=printer.name, ready=True, words=f"{printer.name} is ready")


@bp.get("/scan/<code>/label.<fmt>")
@requires("aliquot:read")
def download_label(code: str, fmt: str) -> ResponseReturnValue:
    """A tube's label to print elsewhere: PNG or PDF (any printer), ZPL (a Zebra)."""
    if fmt not in MIME:
        raise Invalid(f"unknown format {fmt!r}: png, pdf or zpl", field="format")
    codes = labels.normalize_codes([code], numbering(), "code")
    [(_, data)] = labels.aliquot_labels(get_session(), codes)
    printer = request.args.get("printer")
    template_name = None
    if printer:
        template_name = labels.get_printer(get_session(), printer).template
    template = registry().get(template_name, "aliquot")
    if fmt != "zpl" and template.svg is None:  # a ZPL-only template: the default draws it
        template = registry().get(None, "aliquot")
    dpi = 300
    if fmt == "zpl":
        content, _mime = template.render("zpl", dpi, [data])
    else:
        png, _mime = template.render("png", dpi, [data])
        if fmt == "pdf":
            # Pillow writes the same picture as a one-page PDF at the label's resolution.
            out = io.BytesIO()
            Image.open(io.BytesIO(png)).convert("RGB").save(out, "PDF", resolution=dpi)
            content = out.getvalue()
        else:
            content = png
    response = Response(content, mimetype=MIME[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{codes[0]}.{fmt}"'
    return response


# --- the printer queue ---------------------------------------------------------------------


@bp.get("/printers/queue")
@requires("label:print")
def print_queue() -> ResponseReturnValue:
    """Labels waiting for a printer that did not answer, by printer, to print or remove."""
    session = get_session()
    by_printer: dict[str, list[label_queue.Waiting]] = {}
    for item in label_queue.waiting(session):
        by_printer.setdefault(item.printer, []).append(item)
    return render_template("web/print_queue.html", by_printer=by_printer)


@bp.post("/printers/<name>/queue/print")
@requires("label:print")
def print_queued(name: str) -> ResponseReturnValue:
    """Send a printer everything waiting for it; if it still does not answer, all stays."""
    session = get_session()
    printer = labels.get_printer(session, name)
    try:
        printed = label_queue.print_waiting(
            session,
            current_actor(),
            printer,
            registry(),
            timeout=float(current_app.config["PRINTER_TIMEOUT"]),
            rule=printer_rule(),
        )
    except DomainError as exc:
        session.rollback()
        flash(
            f"Nothing printed: {printer.name} is not answering. Is it switched on, with "
            f"labels loaded? ({exc.message})"
            if isinstance(exc, PrinterError)
            else exc.message,
            "error",
        )
    else:
        flash(f"{printed} label(s) printed on {printer.name}.")
    return redirect(url_for("web_printing.print_queue"), 303)


@bp.post("/printers/queue/<queue_id>/remove")
@requires("label:print")
def remove_queued(queue_id: str) -> ResponseReturnValue:
    """Take one label out of the queue (printed another way, or not needed)."""
    number = ascii_id(queue_id)
    if number is None:
        raise NotFound(f"no label {queue_id!r} waiting in a printer queue")
    removed = label_queue.remove(get_session(), current_actor(), number)
    flash(f"Label of {removed.barcode} taken out of {removed.printer}'s queue.")
    return redirect(url_for("web_printing.print_queue"), 303)
