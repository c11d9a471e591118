"""``GET /api/v1/reports/{completeness,capacity,inventory,requests}``: each as JSON (the
table), CSV (the same table as a file, through the safe CSV writer) or SVG (the picture, with
its text alternative)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Response
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth.permissions import requires
from biobank.auth.web import current_asker
from biobank.csvsafe import stream_csv
from biobank.db import closing_stream, get_session
from biobank.errors import Invalid
from biobank.reference.models import AliquotType, Material
from biobank.reports import capacity, charts, completeness, fill, inventory, pictures, shipments
from biobank.reports import schemas as s
from biobank.reports.links import patient_link
from biobank.reports.period import date_range
from biobank.reports.scope import ReportScope, report_scope

blp = Blueprint("reports", __name__, description="Reports and pictures for the trial office")

_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    pictures.MIME: {"schema": {"type": "string"}},
}
_ANSWERS = (
    "the report: JSON (format=json, the default), CSV (format=csv) or an SVG picture "
    "with <title> and <desc> as its text alternative (format=svg)"
)


def _documented(view: Any) -> Any:
    """The report's other formats, documented beside its JSON."""
    return blp.doc(responses={200: {"content": _CONTENT}})(view)


def scope_of_asker() -> ReportScope:
    """The asking user's report scope."""
    asker = current_asker()
    return report_scope(get_session(), asker.id, asker.role)


def _csv(name: str, header: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> Response:
    response = Response(closing_stream(stream_csv(header, rows)), mimetype="text/csv")  # utf-8
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def _svg(text: str) -> Response:
    return Response(text, mimetype=pictures.MIME)


def _answer(
    args: dict[str, Any],
    name: str,
    data: Callable[[], Any],
    csv: Callable[[], tuple[tuple[str, ...], Iterable[Iterable[Any]]]],
    svg: Callable[[], str],
) -> Any:
    if args["format"] == "csv":
        return _csv(name, *csv())
    if args["format"] == "svg":
        return _svg(svg())
    return data()


def _check_codes(args: dict[str, Any]) -> None:
    """A material or aliquot type named in the query must exist (422 naming it)."""
    for field, model, what in (
        ("material", Material, "material"),
        ("aliquot_type", AliquotType, "aliquot type"),
    ):
        code = args.get(field)
        if (
            code is not None
            and get_session().scalar(select(model.id).where(model.code == code)) is None
        ):
            raise Invalid(f"no {what} {code}", field=field, location="query")


# --- completeness ----------------------------------------------------------------------------


@blp.route("/reports/completeness", methods=["GET"])
@blp.arguments(s.CompletenessQuery, location="query")
@blp.response(200, s.CompletenessOut, description=_ANSWERS)
@blp.alt_response(404, response="NOT_FOUND", description="no such site in the asker's scope")
@_documented
@requires("report:read")
def completeness_report(args: dict[str, Any]) -> Any:
    """Cohort completeness: expected, received, missing and not yet due per timepoint."""
    session, scope, today = get_session(), scope_of_asker(), clock.today()
    _check_codes(args)

    def rows() -> Any:
        return completeness.CSV_HEADER, completeness.csv_rows(session, scope, args, today)

    def picture() -> str:
        if args["picture"] == "matrix":
            return charts.completeness_matrix(
                completeness.report(session, scope, args, today),
                completeness.timepoint_codes(session),
                today,
                patient_link(),
            )
        return charts.completeness_picture(
            completeness.report(session, scope, {**args, "per_page": 1}, today), today
        )

    return _answer(
        args,
        "completeness",
        lambda: completeness.report(session, scope, args, today),
        rows,
        picture,
    )


# --- capacity ---------------------------------------------------------------------------------


@blp.route("/reports/capacity", methods=["GET"])
@blp.arguments(s.CapacityQuery, location="query")
@blp.response(200, s.CapacityReportOut, description=_ANSWERS)
@blp.alt_response(404, response="NOT_FOUND", description="no such site in the asker's scope")
@_documented
@requires("report:read")
def capacity_report(args: dict[str, Any]) -> Any:
    """Freezer capacity: used and free positions; empty positions; boxes that could merge;
    positions used per freezer over time."""
    session, scope, view = get_session(), scope_of_asker(), args["view"]
    if args["format"] == "svg" and view not in ("summary", "history"):
        raise Invalid(
            "only the summary and the history have a picture: use format=csv or json",
            field="format",
            location="query",
        )
    if view == "history":
        return _fill_history(session, scope, args)

    def listed() -> list[dict[str, Any]]:
        if view == "empty":
            return list(capacity.empty_positions(session, scope, args))
        if view == "defrag":
            return capacity.defragmentation(session, scope, args)
        return capacity.summary(session, scope, args)

    def data() -> dict[str, Any]:
        return {"view": view, view: listed()}

    def rows() -> Any:
        header = {
            "summary": capacity.SUMMARY_HEADER,
            "empty": capacity.EMPTY_HEADER,
            "defrag": capacity.DEFRAG_HEADER,
        }[view]
        found = capacity.empty_positions(session, scope, args) if view == "empty" else listed()
        return header, ([row[key] for key in header] for row in found)

    def picture() -> str:
        return charts.capacity_picture(capacity.summary(session, scope, args))

    return _answer(args, f"capacity-{view}", data, rows, picture)


def _fill_history(session: Session, scope: ReportScope, args: dict[str, Any]) -> Any:
    """The capacity report's view=history: positions used per freezer and month."""
    if args.get("box_type"):
        raise Invalid(
            "the history is per freezer, not per box type", field="box_type", location="query"
        )
    start, end = date_range(session, args)

    def found() -> list[dict[str, Any]]:
        return fill.history(session, scope, args, start, end)

    return _answer(
        args,
        "capacity-history",
        lambda: {"view": "history", "start": start, "end": end, "history": found()},
        lambda: (fill.HEADER, ([r[k] for k in fill.HEADER] for r in found())),
        lambda: charts.fill_picture(found(), start, end),
    )


# --- inventory over time --------------------------------------------------------------------


@blp.route("/reports/inventory", methods=["GET"])
@blp.arguments(s.InventoryQuery, location="query")
@blp.response(200, s.InventoryOut, description=_ANSWERS)
@blp.alt_response(404, response="NOT_FOUND", description="no such site in the asker's scope")
@_documented
@requires("report:read")
def inventory_report(args: dict[str, Any]) -> Any:
    """Inventory over time: tubes received, shipped, consumed, destroyed, held per month."""
    session, scope = get_session(), scope_of_asker()
    _check_codes(args)
    start, end = date_range(session, args)

    def rows() -> Any:
        found = inventory.rows(session, scope, args, start, end)
        return inventory.CSV_HEADER, ([r[k] for k in inventory.CSV_HEADER] for r in found)

    def picture() -> str:
        found = inventory.rows(session, scope, args, start, end)
        return charts.inventory_picture(inventory.totals(found, start, end), start, end)

    return _answer(
        args, "inventory", lambda: inventory.report(session, scope, args, start, end), rows, picture
    )


# --- requests and shipments -----------------------------------------------------------------


@blp.route("/reports/requests", methods=["GET"])
@blp.arguments(s.RequestsQuery, location="query")
@blp.response(200, s.RequestsOut, description=_ANSWERS)
@_documented
@requires("report:requests")
def requests_report(args: dict[str, Any]) -> Any:
    """Requests by state and age, tubes shipped per sub-study and month, turnaround."""
    session, scope = get_session(), scope_of_asker()
    start, end = date_range(session, args)

    def rows() -> Any:
        found = shipments.shipped(session, scope, start, end)
        return shipments.SHIPPED_HEADER, ([r[k] for k in shipments.SHIPPED_HEADER] for r in found)

    def picture() -> str:
        return charts.requests_picture(shipments.shipped(session, scope, start, end), start, end)

    return _answer(
        args,
        "requests",
        lambda: shipments.report(session, scope, start, end, clock.now()),
        rows,
        picture,
    )
