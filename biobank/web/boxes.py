"""Box pages: the list of boxes, a box's map, and rack-scan upload with its reconciliation
shown as a coloured grid before the confirm button."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import or_

from biobank import clock
from biobank.auth.permissions import requires
from biobank.auth.web import current_actor, current_scope
from biobank.db import get_session
from biobank.errors import Invalid
from biobank.samples.numbering import numbering
from biobank.storage import boxmap, reconcile
from biobank.storage import service as storage
from biobank.storage.models import Container
from biobank.storage.rackscan import MAX_SCAN_BYTES
from biobank.web.common import csv_download, page_blueprint

bp = page_blueprint("web_boxes", __name__)

LIST_LIMIT = 300

# How the reconciliation grid shows each finding: CSS class, words; later ones win a cell.
FINDINGS = (
    ("matches", "match", "as recorded"),
    ("missing", "missing", "expected here, not seen"),
    ("taken_out", "out", "taken out, not seen (fine)"),
    ("unreadable", "unreadable", "the scanner could not read the tube"),
    ("displaced", "displaced", "recorded here, another tube is in its place"),
    ("refused", "refused", "refused: the tube left the biobank"),
    ("unknown", "unknown", "a tube this biobank does not know"),
    ("moved", "moved", "moved here"),
)


def _box(code: str) -> Container:
    return storage.get_box(get_session(), code, numbering())


@bp.get("/boxes")
@requires("storage:read")
def box_list() -> ResponseReturnValue:
    """Boxes with their paths and how full they are (filter by name or code)."""
    session = get_session()
    text = request.args.get("q", "").strip()
    query = storage.containers_query(current_scope(), "box")
    if text:
        like = f"%{text}%"
        query = query.where(
            or_(
                Container.name.ilike(like),
                Container.barcode.ilike(like),
                Container.external_barcode.ilike(like),
            )
        )
    boxes = boxmap.describe_boxes(session, list(session.scalars(query.limit(LIST_LIMIT))))
    boxes.sort(key=lambda b: b["path"])
    if request.args.get("format") == "csv":
        return csv_download(
            "boxes",
            ["barcode", "name", "path", "box_type", "taken", "free"],
            (
                [b["barcode"], b["name"], b["path"], b["box_type"], b["occupied"], b["free"]]
                for b in boxes
            ),
        )
    return render_template("web/boxes.html", boxes=boxes, q=text, limit=LIST_LIMIT)


@bp.get("/boxes/<code>")
@requires("storage:read")
def box_page(code: str) -> ResponseReturnValue:
    """A box's map as a picture: status and consent by colour and text, free places shown."""
    box = boxmap.box_map(get_session(), _box(code))
    printed_at = clock.now().astimezone(clock.zone()).strftime("%Y-%m-%d %H:%M %Z")
    return render_template(
        "web/box.html",
        box=box,
        highlight=request.args.get("tube"),
        target=None,
        picked=None,
        printed_at=printed_at,
    )


@bp.get("/boxes/<code>/rack-scan")
@requires("storage:write")
def rack_scan_form(code: str) -> ResponseReturnValue:
    """The form to upload a rack scanner's CSV file for a box."""
    box = boxmap.box_map(get_session(), _box(code))
    return render_template("web/rack_scan.html", box=box, preview=None, cells={})


def _read_upload() -> str:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid("choose the scanner's CSV file", field="file")
    raw = upload.stream.read(MAX_SCAN_BYTES + 1)
    if len(raw) > MAX_SCAN_BYTES:
        raise Invalid("the file is too large for a rack scan (256 kB at most)", field="file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the file is not text (UTF-8 or ASCII CSV expected)", field="file") from None


def grid_findings(preview: dict[str, Any]) -> dict[str, dict[str, str]]:
    """position → how the reconciliation grid shows it (class, tube, words)."""
    cells: dict[str, dict[str, str]] = {}
    for key, css, words in FINDINGS:
        for item in preview[key]:
            tube = item.get("barcode") or item.get("expected") or ""
            text = words
            if key == "moved" and item.get("from"):
                text = f"moved here from {item['from']['position'] or ''} of {item['from']['box']}"
            cells[item["position"]] = {"css": css, "tube": tube, "words": text}
    return cells


@bp.post("/boxes/<code>/rack-scan")
@requires("storage:write")
def rack_scan_preview(code: str) -> ResponseReturnValue:
    """Compare the uploaded scan with the box; nothing changes until it is confirmed."""
    session = get_session()
    box = _box(code)
    try:
        preview = reconcile.preview(session, current_actor(), box, _read_upload())
    except Invalid as exc:
        session.rollback()
        return render_template(
            "web/rack_scan.html",
            box=boxmap.box_map(session, _box(code)),
            preview=None,
            cells={},
            error=exc.message,
        ), exc.status_code
    return render_template(
        "web/rack_scan.html",
        box=boxmap.box_map(session, box),
        preview=preview,
        cells=grid_findings(preview),
    )


@bp.post("/boxes/<code>/rack-scan/<token>/confirm")
@requires("storage:write")
def rack_scan_confirm(code: str, token: str) -> ResponseReturnValue:
    """Apply a previewed rack scan: every move at once (refused if the box changed or a
    finding is not acknowledged)."""
    known = set(reconcile.FINDINGS)
    acknowledged = [f for f in request.form.getlist("acknowledge") if f in known]
    done = reconcile.confirm(
        get_session(),
        current_actor(),
        _box(code),
        token,
        acknowledged,
        request.form.get("record_rack") == "yes",
    )
    flash(
        f"Rack scan applied to {done['box']}: {done['moved']} tube(s) moved, "
        f"{done['found']} found, {done['displaced']} displaced"
        + (
            f"; rack code {done['rack_recorded']} recorded for the box"
            if done["rack_recorded"]
            else ""
        )
        + "."
    )
    return redirect(url_for("web_boxes.box_page", code=done["box"]), 303)
