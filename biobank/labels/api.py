"""Label rendering (ZPL, SVG, PNG), printers and print jobs."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.blueprints import BlueprintSetupState
from flask_smorest import Blueprint

from biobank.apidoc import also_answers
from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.db import get_session
from biobank.labels import rendering, schemas, service
from biobank.labels.network import printer_rule
from biobank.labels.rendering import registry, render
from biobank.samples.numbering import numbering
from biobank.samples.service import get_sample

blp = Blueprint("labels", __name__, description="Labels, printers and print jobs")


@blp.record_once
def _load_templates(state: BlueprintSetupState) -> None:
    rendering.load_templates(state.app)


@blp.route("/label-templates", methods=["GET"])
@blp.response(200, schemas.TemplateOut(many=True))
@requires("aliquot:read")
def list_templates() -> Any:
    """The label templates, their formats, resolutions and placeholders."""
    return registry().describe()


@blp.route("/aliquots/<code>/label", methods=["GET"])
@blp.arguments(schemas.LabelQuery, location="query")
@blp.response(200, description="the label as ZPL, SVG or PNG")
@requires("aliquot:read")
def aliquot_label(args: dict[str, Any], code: str) -> Any:
    """One tube's label (format=zpl|svg|png, template, dpi)."""
    codes = service.normalize_codes([code], numbering(), "code")
    [(_, data)] = service.aliquot_labels(get_session(), codes)
    return render("aliquot", [data], args, codes[0])


@blp.route("/samples/<code>/labels", methods=["GET"])
@blp.arguments(schemas.LabelQuery, location="query")
@blp.response(200, description="one ZPL stream, or one SVG / PNG sheet")
@requires("aliquot:read")
def sample_labels(args: dict[str, Any], code: str) -> Any:
    """The labels of all a sample's aliquots, in n/N order."""
    session = get_session()
    sample = get_sample(session, code, numbering())
    items = [data for _, data in service.sample_labels(session, sample)]
    return render("aliquot", items, args, sample.barcode)


@blp.route("/labels/render", methods=["POST"])
@also_answers(blp, 404)
@blp.arguments(schemas.RenderIn)
@blp.response(200, description="one ZPL stream, or one SVG / PNG sheet")
@requires("aliquot:read")
def render_labels(args: dict[str, Any]) -> Any:
    """The labels of a list of aliquot barcodes, in the order given (nothing is recorded)."""
    codes = service.normalize_codes(args["barcodes"], numbering())
    items = [data for _, data in service.aliquot_labels(get_session(), codes)]
    return render("aliquot", items, args, "labels")


@blp.route("/boxes/<code>/label", methods=["GET"])
@blp.arguments(schemas.LabelQuery, location="query")
@blp.response(200, description="the box label as ZPL, SVG or PNG")
@requires("storage:read")
def box_label(args: dict[str, Any], code: str) -> Any:
    """A box's own label (barcode, name, type, site, date)."""
    from biobank.labels import boxes
    from biobank.storage.service import get_box

    session = get_session()
    box = get_box(session, code, numbering())
    return render("box", [boxes.box_label(session, box)], args, box.barcode)


@blp.route("/boxes/<code>/labels", methods=["GET"])
@blp.arguments(schemas.LabelQuery, location="query")
@blp.response(200, description="one ZPL stream, or one SVG / PNG sheet")
@requires("storage:read")
def box_contents_labels(args: dict[str, Any], code: str) -> Any:
    """The labels of the tubes in a box, in position order."""
    from biobank.labels import boxes
    from biobank.storage.service import get_box

    session = get_session()
    box = get_box(session, code, numbering())
    items = [data for _, data in boxes.contents_labels(session, box)]
    return render("aliquot", items, args, box.barcode)


@blp.route("/printers", methods=["GET"])
@blp.response(200, schemas.PrinterOut(many=True))
@requires("label:print")
def list_printers() -> Any:
    """The registered label printers."""
    return service.list_printers(get_session())


@blp.route("/printers", methods=["POST"])
@blp.arguments(schemas.PrinterIn)
@blp.response(201, schemas.PrinterOut)
@requires("printer:admin")
def register_printer(values: dict[str, Any]) -> Any:
    """Register a network label printer (raw ZPL on a TCP port, 9100 by default) at an
    address within BIOBANK_PRINTER_NETWORKS and BIOBANK_PRINTER_PORTS."""
    return service.register_printer(
        get_session(), current_actor(), values, registry(), printer_rule()
    )


@blp.route("/printers/<name>", methods=["PATCH"])
@blp.arguments(schemas.PrinterPatch)
@blp.response(200, schemas.PrinterOut)
@requires("printer:admin")
def change_printer(values: dict[str, Any], name: str) -> Any:
    """Change a printer's address, resolution, template or site (the address again within
    the printer networks and ports)."""
    session = get_session()
    return service.change_printer(
        session,
        current_actor(),
        service.get_printer(session, name),
        values,
        registry(),
        printer_rule(),
    )


@blp.route("/print-jobs", methods=["POST"])
@also_answers(blp, 404)
@blp.arguments(schemas.PrintJobIn)
@blp.response(201, schemas.PrintJobOut)
@requires("label:print")
def print_job(values: dict[str, Any]) -> Any:
    """Print tube (or box) labels; each is recorded as label_printed / label_reprinted once
    the printer took the job (a reprint needs a reason)."""
    session = get_session()
    printer = service.get_printer(session, values["printer"])
    codes = service.normalize_codes(values["barcodes"], numbering())
    options = {
        "template": values["template"],
        "copies": values["copies"],
        "reason": values["reason"],
        "timeout": float(current_app.config["PRINTER_TIMEOUT"]),
        "rule": printer_rule(),
    }
    if values["kind"] == "box":
        from biobank.labels import boxes
        from biobank.storage.service import get_box

        found = [get_box(session, code, numbering()) for code in codes]
        job = boxes.print_box_labels(
            session, current_actor(), printer, found, registry(), **options
        )
    else:
        job = service.print_aliquot_labels(
            session, current_actor(), printer, codes, registry(), **options
        )
    job.barcodes = codes
    return job
