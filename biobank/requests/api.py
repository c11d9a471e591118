"""Request endpoints: availability, the request lifecycle, picking, shipping, receipt, recalls,
and the shipment manifest (CSV and a printable page)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, render_template
from flask_smorest import Blueprint
from werkzeug.routing import BaseConverter

from biobank.apidoc import also_answers
from biobank.auth.permissions import requires
from biobank.db import get_session
from biobank.errors import NotFound
from biobank.inputs import ascii_id
from biobank.labels.rendering import render
from biobank.labels.schemas import LabelQuery
from biobank.pagination import SelectPage
from biobank.requests import (
    allocation,
    availability,
    lifecycle,
    manifest,
    picking,
    readmodels,
    recalls,
    schemas,
    shipping,
)
from biobank.requests.askers import asker
from biobank.samples.numbering import numbering
from biobank.samples.service import check_code
from biobank.schema import Schema
from biobank.storage.service import get_box

blp = Blueprint(
    "requests", __name__, description="Sample requests: availability, approval, picking, shipping"
)


class RequestNumber(BaseConverter):
    """A request's number in a path: any segment but "availability", the static path beside
    ``/requests/<number>`` (else PATCH /requests/availability would reach edit_request)."""

    regex = r"(?!availability(?![^/]))[^/]+"


def _dump(schema: type[Schema], obj: Any, status: int = 200, many: bool = False) -> Response:
    """Dump with the asker's schema (researchers: without the internal fields)."""
    response = jsonify(schemas.for_role(schema, asker().researcher, many=many).dump(obj))
    response.status_code = status
    return response


def _detail(request: Any, status: int = 200) -> Response:
    who = asker()
    return _dump(
        schemas.RequestOut, readmodels.describe(get_session(), request, not who.researcher), status
    )


def _code(value: str, field: str = "barcode") -> str:
    return check_code(value, numbering(), field=field)


def _notice_id(value: str) -> int:
    number = ascii_id(value)
    if number is None:
        raise NotFound(f"no recall notice {value}")
    return number


# --- availability -----------------------------------------------------------------------


@blp.route("/requests/availability", methods=["GET"])
@also_answers(blp, 404)
@blp.arguments(schemas.AvailabilityQuery, location="query")
@blp.response(200, schemas.AvailabilityOut)
@requires("request:availability")
def get_availability(query: dict[str, Any]) -> Any:
    """Consented, available tubes for a sub-study, by timepoint × material × aliquot type."""
    session = get_session()
    substudy = lifecycle.visible_substudy(session, asker(), query.pop("substudy", None))
    return availability.count(session, substudy, availability.resolve(session, query))


# --- the lifecycle ----------------------------------------------------------------------


@blp.route("/requests", methods=["GET"])
@blp.arguments(schemas.RequestQuery, location="query")
@blp.response(200, schemas.RequestSummaryOut(many=True))
@blp.paginate(SelectPage)
@requires("request:read")
def list_requests(query: dict[str, Any]) -> Any:
    """Requests, newest first (researchers: their sub-studies' only)."""
    return lifecycle.requests_query(asker(), **query)


@blp.route("/requests", methods=["POST"])
@also_answers(blp, 404)
@blp.arguments(schemas.RequestIn)
@blp.response(201, schemas.RequestOut)
@requires("request:write")
def create_request(values: dict[str, Any]) -> Any:
    """Ask for material: criteria and purpose; a draft unless ``submit`` is true."""
    return _detail(lifecycle.create(get_session(), asker(), values), 201)


@blp.route("/requests/<request_number:number>", methods=["GET"])
@blp.response(200, schemas.RequestOut)
@requires("request:read")
def get_request(number: str) -> Any:
    """One request with its tubes, shipment and recall notices."""
    return _detail(lifecycle.get_request(get_session(), asker(), number))


@blp.route("/requests/<request_number:number>", methods=["PATCH"])
@blp.arguments(schemas.RequestPatch)
@blp.response(200, schemas.RequestOut)
@requires("request:write")
def edit_request(values: dict[str, Any], number: str) -> Any:
    """Change a draft's title, purpose or criteria."""
    return _detail(lifecycle.edit_draft(get_session(), asker(), number, values))


@blp.route("/requests/<request_number:number>/submit", methods=["POST"])
@blp.response(200, schemas.RequestOut)
@requires("request:write")
def submit_request(number: str) -> Any:
    """Send a draft to the biobank managers."""
    return _detail(lifecycle.submit(get_session(), asker(), number))


@blp.route("/requests/<request_number:number>/approve", methods=["POST"])
@blp.arguments(schemas.ApproveIn)
@blp.response(200, schemas.RequestOut)
@requires("request:decide")
def approve_request(values: dict[str, Any], number: str) -> Any:
    """Approve a submitted request (never one's own), optionally adjusting the criteria."""
    return _detail(
        lifecycle.approve(get_session(), asker(), number, values["adjust"], values["note"])
    )


@blp.route("/requests/<request_number:number>/reject", methods=["POST"])
@blp.arguments(schemas.RequestReasonIn)
@blp.response(200, schemas.RequestOut)
@requires("request:decide")
def reject_request(values: dict[str, Any], number: str) -> Any:
    """Reject a submitted request, saying why."""
    return _detail(lifecycle.reject(get_session(), asker(), number, values["reason"]))


@blp.route("/requests/<request_number:number>/allocate", methods=["POST"])
@blp.arguments(schemas.AllocateIn)
@blp.response(200, schemas.RequestOut)
@requires("request:decide")
def allocate_request(values: dict[str, Any], number: str) -> Any:
    """Reserve the approved request's tubes, atomically; a shortfall says what was found."""
    return _detail(allocation.allocate(get_session(), asker(), number, values["allow_partial"]))


@blp.route("/requests/<request_number:number>/cancel", methods=["POST"])
@blp.arguments(schemas.RequestReasonIn)
@blp.response(200, schemas.ReleasedOut)
@requires("request:cancel")
def cancel_request(values: dict[str, Any], number: str) -> Any:
    """Cancel before shipping; reserved tubes become available again."""
    return lifecycle.cancel(get_session(), asker(), number, values["reason"])


@blp.route("/requests/<request_number:number>/close", methods=["POST"])
@blp.response(200, schemas.RequestOut)
@requires("request:receipt")
def close_request(number: str) -> Any:
    """Close a received request once every tube is reported consumed or returned."""
    return _detail(lifecycle.close(get_session(), asker(), number))


# --- picking ----------------------------------------------------------------------------


@blp.route("/requests/<request_number:number>/pick-list", methods=["GET"])
@blp.response(200, schemas.PickListOut)
@requires("request:pick")
def pick_list(number: str) -> Any:
    """The tubes to pick, by freezer, container, box and position, each with its path."""
    request, tubes = picking.pick_list(get_session(), asker(), number)
    return {"number": request.number, "state": request.state, "tubes": tubes}


@blp.route("/requests/<request_number:number>/pick", methods=["POST"])
@blp.arguments(schemas.PickIn)
@blp.response(200, schemas.PickedOut)
@requires("request:pick")
def pick_tube(values: dict[str, Any], number: str) -> Any:
    """Scan a tube out for the request; a tube not in it is a 409 saying so."""
    return picking.pick(get_session(), asker(), number, _code(values["barcode"]))


@blp.route("/requests/<request_number:number>/drop", methods=["POST"])
@blp.arguments(schemas.DropIn)
@blp.response(200, schemas.ReleasedOut)
@requires("request:pick")
def drop_tube(values: dict[str, Any], number: str) -> Any:
    """Take one tube out of the request before shipping, with a reason."""
    return picking.drop(get_session(), asker(), number, _code(values["barcode"]), values["reason"])


# --- shipping and after -----------------------------------------------------------------


@blp.route("/requests/<request_number:number>/ship", methods=["POST"])
@blp.arguments(schemas.ShipIn)
@blp.response(200, schemas.ShippedOut)
@requires("request:ship")
def ship_request(values: dict[str, Any], number: str) -> Any:
    """Ship the picked tubes (the gate runs again); every allocated tube must be picked."""
    return shipping.ship(get_session(), asker(), number, values)


@blp.route("/requests/<request_number:number>/manifest.csv", methods=["GET"])
@also_answers(blp, 409)
@blp.response(200, description="the shipment manifest, one line per tube", content_type="text/csv")
@requires("request:read")
def manifest_csv(number: str) -> Any:
    """The shipment manifest as CSV (barcodes and study pseudonyms only)."""
    found = manifest.manifest(get_session(), asker(), number)
    response = Response(manifest.to_csv(found), mimetype="text/csv")
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="manifest-{found.request.number}.csv"'
    )
    return response


@blp.route("/requests/<request_number:number>/manifest", methods=["GET"])
@also_answers(blp, 409)
@blp.response(
    200, description="the shipment manifest as a printable page", content_type="text/html"
)
@requires("request:read")
def manifest_page(number: str) -> Any:
    """The shipment manifest as a printable page, to go in the box."""
    found = manifest.manifest(get_session(), asker(), number)
    return Response(
        render_template("requests/manifest.html", manifest=found, columns=manifest.COLUMNS),
        mimetype="text/html",
    )


@blp.route("/requests/<request_number:number>/labels", methods=["GET"])
@blp.arguments(LabelQuery, location="query")
@blp.response(
    200,
    description="one ZPL stream, or one SVG / PNG sheet",
    content_type="application/octet-stream",
)
@requires("request:pick")
def shipment_labels(args: dict[str, Any], number: str) -> Any:
    """Labels for the request's tubes naming each patient by the sub-study's pseudonym."""
    return render(
        "aliquot",
        manifest.shipment_labels(get_session(), asker(), number),
        args,
        f"{number}-labels",
    )


@blp.route("/requests/<request_number:number>/receive", methods=["POST"])
@blp.arguments(schemas.ReceiveIn)
@blp.response(200, schemas.RequestOut)
@requires("request:receipt")
def receive_request(values: dict[str, Any], number: str) -> Any:
    """The recipient has the tubes; note any discrepancy per tube."""
    return _detail(shipping.receive(get_session(), asker(), number, values))


@blp.route("/requests/<request_number:number>/consumed", methods=["POST"])
@blp.arguments(schemas.ConsumedIn)
@blp.response(200, schemas.RequestOut)
@requires("request:receipt")
def report_consumed(values: dict[str, Any], number: str) -> Any:
    """The recipient used these tubes up."""
    codes = [_code(c, f"barcodes.{i}") for i, c in enumerate(values["barcodes"])]
    return _detail(shipping.consumed(get_session(), asker(), number, codes, values["note"]))


@blp.route("/requests/<request_number:number>/returned", methods=["POST"])
@blp.arguments(schemas.ReturnIn)
@blp.response(200, schemas.RequestOut)
@requires("request:return")
def return_tube(values: dict[str, Any], number: str) -> Any:
    """A tube came back: available again, stored in the box and position given."""
    session = get_session()
    box = get_box(session, values["box"], numbering(), "box")
    return _detail(
        shipping.returned(
            session,
            asker(),
            number,
            _code(values["barcode"]),
            box,
            values["position"],
            values["reason"],
        )
    )


# --- recalls ----------------------------------------------------------------------------


@blp.route("/requests/<request_number:number>/recalls/<notice_id>/acknowledge", methods=["POST"])
@blp.response(200, schemas.RequestRecallOut)
@requires("request:recall")
def acknowledge_recall(number: str, notice_id: str) -> Any:
    """The researcher has read the recall notice (consent withdrawn after shipping)."""
    return recalls.acknowledge(get_session(), asker(), number, _notice_id(notice_id))


@blp.route("/requests/<request_number:number>/recalls/<notice_id>/destroyed", methods=["POST"])
@blp.response(200, schemas.RequestRecallOut)
@requires("request:recall")
def recall_destroyed(number: str, notice_id: str) -> Any:
    """The researcher destroyed the recalled tube."""
    return recalls.report_destroyed(get_session(), asker(), number, _notice_id(notice_id))
