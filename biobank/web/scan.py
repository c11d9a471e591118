"""The scan station: one input for a keyboard-wedge scanner. A tube shows its card, a box
opens its map, and a tube scanned while a box is open goes into that box."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.custody.models import CustodyEvent
from biobank.db import get_session
from biobank.errors import DomainError, Invalid
from biobank.labels import queue as label_queue
from biobank.labels import service as labels
from biobank.labels.network import printer_rule
from biobank.labels.printers import PrinterError
from biobank.labels.rendering import registry
from biobank.samples.models import Aliquot
from biobank.samples.numbering import numbering
from biobank.samples.service import get_aliquot
from biobank.scan import service as scanning
from biobank.storage import actions, boxmap, location
from biobank.storage import service as storage
from biobank.storage import station as bench
from biobank.storage.models import Container, Thaw
from biobank.web import printing
from biobank.web.common import may, page_blueprint, wants_fragment

bp = page_blueprint("web_scan", __name__)


# --- what the station shows --------------------------------------------------------------


def _next_free(session: Session, box: Container) -> str | None:
    offer = boxmap.suggest(session, box, 1)
    return offer["positions"][0] if offer["positions"] else None


def _tube_extras(session: Session, card: dict[str, Any]) -> dict[str, Any]:
    """What the card's actions need beyond the scan: thawed or not, the printers."""
    thawed = (
        session.scalar(
            select(Thaw.aliquot_id)
            .join(Aliquot, Aliquot.id == Thaw.aliquot_id)
            .where(Aliquot.barcode == card["barcode"])
        )
        is not None
    )
    if not may("label:print"):
        return {"thawed": thawed, "printers": []}
    printers = labels.list_printers(session)
    printed = session.scalar(
        select(CustodyEvent.id)
        .join(Aliquot, Aliquot.id == CustodyEvent.aliquot_id)
        .where(
            Aliquot.barcode == card["barcode"],
            CustodyEvent.event_type.in_(("label_printed", "label_reprinted")),
        )
        .limit(1)
    )
    return {
        "thawed": thawed,
        "printers": printers,
        "default_printer": printing.default_printer(printers),
        "printed_before": printed is not None,
    }


def station(
    code: str | None,
    box_code: str | None,
    *,
    position: str | None = None,
    picked: str | None = None,
    error: str | None = None,
    message: str | None = None,
) -> tuple[dict[str, Any], int]:
    """Everything the station shows for a scanned code and the open box, and the status."""
    session = get_session()
    status = 422 if error else 200
    view: dict[str, Any] = {
        "card": None,
        "extras": {},
        "container": None,
        "box": None,
        "target": None,
        "picked": picked,
        "error": error,
        "message": message,
        "code": code,
        "outcome": None,
        "cue": "ok" if message else "look",
    }
    if code:
        try:
            card = scanning.scan(
                session, code, numbering(), recent=current_app.config["SCAN_RECENT_EVENTS"]
            )
        except DomainError as exc:
            view["error"], status = exc.message, exc.status_code
        else:
            if card["kind"] == "aliquot" and not message:
                usable = bench.bench_status(card["status"], (card["consent"] or {}).get("storage"))
                view["cue"] = "look" if usable["key"] in ("available", "reserved") else "warn"
            if card["kind"] == "box":
                box_code, position = card["barcode"], None
            else:
                view["card"] = card
            if card["kind"] == "aliquot":
                view["extras"] = _tube_extras(session, card)
            elif card["kind"] == "container":
                view["container"] = location.describe_container(
                    session, storage.get_container(session, card["barcode"], numbering())
                )
    if box_code and may("storage:read"):
        try:
            box = storage.get_box(session, box_code, numbering())
        except DomainError as exc:
            view["error"], status = exc.message, exc.status_code
        else:
            view["box"] = boxmap.box_map(session, box)
            view["target"] = position or _next_free(session, box)
    if view["error"]:
        view["cue"] = "error"
    return view, status


def station_view(
    code: str, box_code: str | None, message: str, outcome: dict[str, Any] | None
) -> tuple[dict[str, Any], int]:
    """The station after a scan into a box: the card, the map, and what was done or asked."""
    to = outcome["to"] if outcome else None
    position = to["position"] if outcome and outcome["state"] == "ask" and to else None
    view, status = station(
        code,
        box_code,
        position=position,
        message=None if outcome and outcome["state"] == "ask" else message,
    )
    view["outcome"] = outcome
    view["cue"] = "ask" if outcome and outcome["state"] == "ask" else "ok"
    return view, status


def answer(code: str | None, box_code: str | None, **options: Any) -> ResponseReturnValue:
    """The station for the page's script (a piece to swap in) or as a whole page."""
    view, status = station(code, box_code, **options)
    template = "web/_scan_result.html" if wants_fragment() else "web/scan.html"
    return render_template(template, **view), status


def _after_change(
    code: str, box_code: str | None, message: str | dict[str, Any]
) -> ResponseReturnValue:
    # The script gets the new state at once; a plain form post is redirected (no re-post).
    # A station's outcome (a dict) carries its message; a plain change is its message.
    outcome = message if isinstance(message, dict) else None
    text: str = message["message"] if isinstance(message, dict) else message
    if wants_fragment() or (outcome and outcome["state"] == "ask"):
        view, status = station_view(code, box_code, text, outcome)
        template = "web/_scan_result.html" if wants_fragment() else "web/scan.html"
        return render_template(template, **view), status
    flash(text)
    return redirect(url_for("web_scan.scan_station", code=code, box=box_code or None), 303)


def _refused(
    code: str,
    box_code: str | None,
    exc: DomainError,
    print_failed: str | None = None,
    print_reason: str | None = None,
) -> ResponseReturnValue:
    # What the refused change flushed is undone before the card is read again.
    get_session().rollback()
    message = exc.message
    # A printer that broke off part-way may have printed: its label waits in the queue.
    print_queued = isinstance(exc, PrinterError) and exc.may_have_printed
    if print_queued:
        message = (
            f"The label may not have printed: {print_failed} stopped part-way. It waits in "
            "the printer queue; is the printer switched on, with labels loaded?"
        )
    elif print_failed:  # in the bench's words: what happened, what to check
        message = (
            f"The label was not printed: {print_failed} is not answering. Is it "
            "switched on, with labels loaded?"
        )
    view, _status = station(code, box_code, error=message)
    view["print_failed"] = print_failed
    view["print_reason"] = print_reason
    view["print_queued"] = print_queued
    template = "web/_scan_result.html" if wants_fragment() else "web/scan.html"
    return render_template(template, **view), exc.status_code


# --- putting a tube in a box ---------------------------------------------------------------


def store_in(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    box: Container,
    position: str | None,
    reason: str | None = None,
) -> dict[str, Any]:
    """An explicit "put it there" from the card or the map: the station's decision,
    confirmed (a tube that does not fit the box is still refused), with the technician's
    reason when they gave one."""
    return bench.scan_into(session, actor, aliquot, box, position, confirm=True, reason=reason)


# --- views ---------------------------------------------------------------------------------


@bp.get("/scan")
@requires("scan")
def scan_station() -> ResponseReturnValue:
    """The scan station page (with ?code= it shows that code's card, ?box= opens a box)."""
    args = request.args
    return answer(
        args.get("code") or None, args.get("box") or None, position=args.get("position") or None
    )


@bp.get("/scan/card")
@requires("scan")
def scan_card() -> ResponseReturnValue:
    """The card of a scanned code (with the open box's map), for the station's script."""
    args = request.args
    return answer(
        args.get("code") or None,
        args.get("box") or None,
        position=args.get("position") or None,
        picked=args.get("picked") or None,
    )


@bp.post("/scan/place")
@requires("storage:write")
def scan_into_box() -> ResponseReturnValue:
    """A code scanned while a box is open: a tube goes into it, a box opens instead."""
    form = request.form
    code, box_code = form.get("code", "").strip(), form.get("box", "").strip() or None
    session = get_session()
    try:
        card = scanning.scan(session, code, numbering())
    except DomainError as exc:
        return _refused(code, box_code, exc)
    if card["kind"] != "aliquot" or box_code is None:
        return answer(code, box_code)  # a box opens, a sample or rack shows its card
    aliquot = get_aliquot(session, code, numbering())
    try:
        box = storage.get_box(session, box_code, numbering(), "box")
        outcome = bench.scan_into(
            session,
            current_actor(),
            aliquot,
            box,
            form.get("position") or None,
            form.get("confirm") == "1",
        )
    except DomainError as exc:
        return _refused(code, box_code, exc)
    return _after_change(code, box_code, outcome)


@bp.post("/scan/<code>/undo")
@requires("storage:write")
def undo_station(code: str) -> ResponseReturnValue:
    """Undo the station's last change of a tube: back where it was, recorded as a move."""
    form = request.form
    box_code = form.get("open_box") or None
    session = get_session()
    number = numbering()
    try:
        aliquot = get_aliquot(session, code, number)
        at_box = storage.get_box(session, form.get("at_box", ""), number, "at_box")
        back = storage.get_box(session, form["box"], number, "box") if form.get("box") else None
        done = bench.undo(
            session,
            current_actor(),
            aliquot,
            at_box,
            form.get("at_position") or None,
            back,
            form.get("position") or None,
            form.get("taken_out") == "1",
            form.get("missing") == "1",
        )
    except DomainError as exc:
        return _refused(code, box_code, exc)
    return _after_change(code, box_code, done)


def _box_field(form: Any) -> Container | None:
    code = form.get("box", "").strip()
    return storage.get_box(get_session(), code, numbering(), "box") if code else None


def _store(session: Session, actor: str, aliquot: Aliquot, form: Any) -> dict[str, Any]:
    box = _box_field(form)
    if box is None:
        raise Invalid("scan or type the box the tube goes into", field="box")
    return store_in(
        session, actor, aliquot, box, form.get("position") or None, form.get("reason") or None
    )


def _card(action: actions.TubeAction) -> Any:
    """A tube action of the storage table, from the card's form."""

    def run(session: Session, actor: str, aliquot: Aliquot, form: Any) -> str:
        values = {
            "box": form.get("box", "").strip() or None,
            "position": form.get("position") or None,
            "reason": form.get("reason") or None,
        }
        action.run(session, actor, aliquot, values, numbering())
        return f"{aliquot.barcode} {action.done}"

    return run


# The card's storage actions: Store is the station's decision (it places or moves, asking
# first where it should); the others are the storage table's tube actions.
STORAGE_ACTIONS = {"store": _store} | {
    name: _card(action) for name, action in actions.TUBE_ACTIONS.items() if action.on_card
}


@bp.post("/scan/<code>/storage")
@requires("storage:write")
def tube_storage(code: str) -> ResponseReturnValue:
    """A storage action from a tube's card: store, move, take out, put back, thaw, refreeze,
    mark missing or found."""
    form = request.form
    box_code = form.get("open_box") or None
    session = get_session()
    try:
        action = STORAGE_ACTIONS.get(form.get("op", ""))
        if action is None:
            raise Invalid(f"unknown action {form.get('op', '')!r}", field="op")
        done = action(session, current_actor(), get_aliquot(session, code, numbering()), form)
    except DomainError as exc:
        return _refused(code, box_code, exc)
    return _after_change(code, box_code, done)


@bp.post("/scan/<code>/print")
@requires("label:print")
def print_label(code: str) -> ResponseReturnValue:
    """Print a tube's label on a registered printer (a reprint needs a reason)."""
    form = request.form
    box_code = form.get("open_box") or None
    session = get_session()
    try:
        printer = labels.get_printer(session, form.get("printer", ""))
        codes = labels.normalize_codes([code], numbering(), "code")
        timeout = float(current_app.config["PRINTER_TIMEOUT"])
        labels.print_aliquot_labels(
            session,
            current_actor(),
            printer,
            codes,
            registry(),
            reason=form.get("reason") or None,
            timeout=timeout,
            rule=printer_rule(),
        )
    except PrinterError as exc:
        # No dead end: the label can be downloaded, queued, sent again or to another printer.
        return _refused(
            code,
            box_code,
            exc,
            print_failed=form.get("printer", ""),
            print_reason=form.get("reason") or None,
        )
    except DomainError as exc:
        return _refused(code, box_code, exc)
    message = f"Label of {codes[0]} printed on {printer.name}"
    queued = _print_the_queue_too(session, printer, timeout)
    if queued:
        message += f", and the {queued} label(s) that were waiting for it"
    return _after_change(code, box_code, message)


def _print_the_queue_too(session: Session, printer: Any, timeout: float) -> int:
    """The printer answers again: what was queued for it prints now, or stays queued."""
    try:
        return label_queue.print_waiting(
            session, current_actor(), printer, registry(), timeout=timeout, rule=printer_rule()
        )
    except DomainError:
        return 0


@bp.post("/scan/<code>/print-queue")
@requires("label:print")
def queue_label(code: str) -> ResponseReturnValue:
    """Queue a tube's label for a printer that is not answering: it prints when it does."""
    form = request.form
    box_code = form.get("open_box") or None
    session = get_session()
    try:
        printer = labels.get_printer(session, form.get("printer", ""))
        codes = labels.normalize_codes([code], numbering(), "code")
        label_queue.enqueue(
            session, current_actor(), printer, codes, reason=form.get("reason") or None
        )
    except DomainError as exc:
        return _refused(code, box_code, exc)
    return _after_change(
        code,
        box_code,
        f"Label of {codes[0]} queued: it prints on "
        f"{printer.name} as soon as {printer.name} answers "
        "(see Printer queue)",
    )
