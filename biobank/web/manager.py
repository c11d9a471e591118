"""The manager's pages: label printers, and the requests' steps after submission: approve or
reject, allocate, the pick list (printable) with picking by scan, shipping. A request's own
page, the list and the manifest are shared with researchers (biobank.web.researcher, and the
manifest page of the requests API)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.db import get_session
from biobank.errors import DomainError
from biobank.labels import schemas as label_schemas
from biobank.labels import service as labels
from biobank.labels.network import printer_rule
from biobank.labels.rendering import registry
from biobank.reference.models import Site
from biobank.requests import allocation, lifecycle, picking, shipping
from biobank.requests import schemas as request_schemas
from biobank.requests.askers import asker
from biobank.samples.numbering import numbering
from biobank.samples.service import check_code
from biobank.web.common import load_form, load_values, page_blueprint

bp = page_blueprint("web_manager", __name__)


def _printers_page(
    values: dict[str, str], error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    session = get_session()
    sites = list(session.scalars(select(Site.code).order_by(Site.code)))
    templates = [t for t in registry().describe() if t["kind"] == "aliquot"]
    return render_template(
        "web/printers.html",
        printers=labels.list_printers(session),
        values=values,
        error=error,
        sites=sites,
        templates=templates,
    ), status


@bp.get("/printers")
@requires("printer:admin")
def printers() -> ResponseReturnValue:
    """The label printers, and the form to register one."""
    return _printers_page({"port": "9100", "dpi": "300"})


@bp.post("/printers")
@requires("printer:admin")
def register_printer() -> ResponseReturnValue:
    """Register a network label printer (raw ZPL on a TCP port)."""
    session = get_session()
    try:
        values = load_form(label_schemas.PrinterIn(), request.form)
        printer = labels.register_printer(
            session, current_actor(), values, registry(), printer_rule()
        )
    except DomainError as exc:
        session.rollback()
        return _printers_page(request.form.to_dict(), exc.message, exc.status_code)
    flash(f"Printer {printer.name} registered ({printer.host}:{printer.port}).")
    return redirect(url_for("web_manager.printers"), 303)


# --- requests: decide, allocate, pick, ship ---------------------------------------------


def _back(number: str) -> ResponseReturnValue:
    return redirect(url_for("web_researcher.request_page", number=number), 303)


@bp.post("/requests/<number>/approve")
@requires("request:decide")
def approve_request(number: str) -> ResponseReturnValue:
    """Approve a submitted request (never one's own), with an optional note."""
    values = load_form(request_schemas.ApproveIn(), {"note": request.form.get("note", "")})
    lifecycle.approve(get_session(), asker(), number, None, values["note"])
    flash(f"Request {number} approved.")
    return _back(number)


@bp.post("/requests/<number>/reject")
@requires("request:decide")
def reject_request(number: str) -> ResponseReturnValue:
    """Reject a submitted request, saying why."""
    values = load_values(
        request_schemas.RequestReasonIn(), {"reason": request.form.get("reason", "").strip()}
    )
    lifecycle.reject(get_session(), asker(), number, values["reason"])
    flash(f"Request {number} rejected.")
    return _back(number)


@bp.post("/requests/<number>/allocate")
@requires("request:decide")
def allocate_request(number: str) -> ResponseReturnValue:
    """Reserve the approved request's tubes (all or nothing unless partial is allowed)."""
    session = get_session()
    try:
        done = allocation.allocate(
            session, asker(), number, request.form.get("allow_partial") == "1"
        )
    except DomainError as exc:
        # Back to the request (which offers what is possible), not a page that leads home.
        session.rollback()
        flash(f"Not allocated: {exc.message}", "error")
        return _back(number)
    flash(f"Request {done.number} allocated: tubes reserved, ready to pick.")
    return _back(number)


def _pick_page(
    number: str, error: str | None = None, message: str | None = None, status: int = 200
) -> ResponseReturnValue:
    found, tubes = picking.pick_list(get_session(), asker(), number)
    return render_template(
        "web/pick_list.html", request_=found, tubes=tubes, error=error, message=message
    ), status


@bp.get("/requests/<number>/pick-list")
@requires("request:pick")
def pick_list(number: str) -> ResponseReturnValue:
    """The pick list in freezer order (printable), with a scan field to pick tubes."""
    return _pick_page(number)


@bp.post("/requests/<number>/pick")
@requires("request:pick")
def pick_tube(number: str) -> ResponseReturnValue:
    """A tube scanned out for the request; one not in it is refused in words."""
    session = get_session()
    try:
        code = check_code(request.form.get("barcode", ""), numbering(), "barcode")
        picked = picking.pick(session, asker(), number, code)
    except DomainError as exc:
        session.rollback()
        return _pick_page(number, exc.message, status=exc.status_code)
    left = (
        f"{picked.remaining} left to pick"
        if picked.remaining
        else "all tubes picked: ready to ship"
    )
    return _pick_page(
        number,
        message=f"{picked.tube.barcode} picked from "
        f"{(picked.tube.location or {}).get('path', 'its place')}"
        f" {(picked.tube.location or {}).get('position') or ''}; "
        f"{left}.",
    )


@bp.post("/requests/<number>/drop")
@requires("request:pick")
def drop_tube(number: str) -> ResponseReturnValue:
    """Take one tube out of the request before shipping, with a reason and a note of the
    discrepancy found (both kept in the tube's custody event)."""
    form = request.form
    note = form.get("note", "").strip()
    reason = form.get("reason", "").strip()
    session = get_session()
    try:
        values = load_form(
            request_schemas.DropIn(),
            {
                "barcode": form.get("barcode", ""),
                "reason": f"{reason}: {note}" if reason and note else reason,
            },
        )
        done = picking.drop(
            session,
            asker(),
            number,
            check_code(values["barcode"], numbering(), "barcode"),
            values["reason"],
        )
    except DomainError as exc:
        session.rollback()
        return _pick_page(number, exc.message, status=exc.status_code)
    put_back = f" Put {', '.join(done.put_back)} back in its box." if done.put_back else ""
    flash(f"{values['barcode']} dropped from request {number} ({values['reason']}).{put_back}")
    return redirect(url_for("web_manager.pick_list", number=number), 303)


@bp.post("/requests/<number>/ship")
@requires("request:ship")
def ship_request(number: str) -> ResponseReturnValue:
    """Ship the picked tubes (the consent gate runs again); then print the manifest."""
    values = load_form(request_schemas.ShipIn(), request.form)
    done = shipping.ship(get_session(), asker(), number, values)
    dropped = sum(len(codes) for codes in done.dropped.values())
    flash(
        f"Request {number} shipped: {done.shipped} tube(s)"
        + (f"; {dropped} taken out by the consent gate" if dropped else "")
        + "."
    )
    return _back(number)
