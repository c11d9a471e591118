"""Custody event endpoints (read-only: nothing updates or deletes an event): histories,
hash-chain verification, and exports for inspectors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor, current_scope
from biobank.custody import audit, service
from biobank.custody.schemas import EventOut, ExportQuery, RangeQuery, VerificationOut
from biobank.db import closing_stream, get_session, utcnow
from biobank.samples.numbering import numbering
from biobank.samples.service import get_aliquot, get_sample

blp = Blueprint("custody", __name__, description="Chain-of-custody events")


@blp.route("/aliquots/<code>/events", methods=["GET"])
@blp.response(200, EventOut(many=True))
@requires("custody:read")
def aliquot_events(code: str) -> Any:
    """An aliquot's custody events, oldest first."""
    session = get_session()
    return service.aliquot_events(session, get_aliquot(session, code, numbering()).id)


@blp.route("/samples/<code>/events", methods=["GET"])
@blp.response(200, EventOut(many=True))
@requires("custody:read")
def sample_events(code: str) -> Any:
    """A sample's own custody events (receipt, splits), oldest first."""
    session = get_session()
    return service.sample_events(session, get_sample(session, code, numbering()).id)


@blp.route("/aliquots/<code>/events/verify", methods=["GET"])
@blp.response(200, VerificationOut)
@requires("custody:read")
def verify_aliquot(code: str) -> Any:
    """Check a tube's hash chain: every event intact and linked to the one before."""
    session = get_session()
    return audit.verify_aliquot(session, get_aliquot(session, code, numbering()).id)


@blp.route("/samples/<code>/events/verify", methods=["GET"])
@blp.response(200, VerificationOut)
@requires("custody:read")
def verify_sample(code: str) -> Any:
    """Check a sample's own hash chain (receipt, splits)."""
    session = get_session()
    return audit.verify_sample(session, get_sample(session, code, numbering()).id)


def _export(chunks: Iterator[str], fmt: str, filename: str) -> Response:
    mime = "text/csv" if fmt == "csv" else "application/json"
    response = Response(closing_stream(chunks), mimetype=mime)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


def _chunks(session: Any, query: Any, fmt: str, header: dict[str, Any]) -> Iterator[str]:
    if fmt == "csv":
        return audit.csv_lines(session, query)
    return audit.json_chunks(session, query, header)


@blp.route("/aliquots/<code>/events/export", methods=["GET"])
@blp.arguments(ExportQuery, location="query")
@blp.response(200, description="the tube's custody history as CSV or JSON")
@requires("custody:export")
def export_aliquot(args: dict[str, Any], code: str) -> Any:
    """A tube's full custody history, with hashes and the chain's verification."""
    session = get_session()
    aliquot = get_aliquot(session, code, numbering())
    checked = audit.verify_aliquot(session, aliquot.id)
    header = {
        "aliquot": aliquot.barcode,
        "exported_at": utcnow().isoformat(),
        "exported_by": current_actor(),
        "chain_intact": checked.ok,
        "first_broken": checked.broken.describe() if checked.broken else None,
    }
    return _export(
        _chunks(session, audit.aliquot_history(aliquot.id), args["format"], header),
        args["format"],
        f"custody-{aliquot.barcode}",
    )


@blp.route("/custody/events", methods=["GET"])
@blp.arguments(RangeQuery, location="query")
@blp.response(200, description="every custody event of the date range, CSV or JSON, streamed")
@requires("custody:export")
def export_range(args: dict[str, Any]) -> Any:
    """All custody events from one day to another (UTC days, both included), streamed."""
    start = dt.datetime.combine(args["start"], dt.time(), dt.UTC)
    end = dt.datetime.combine(args["end"] + dt.timedelta(days=1), dt.time(), dt.UTC)
    header = {
        "from": args["start"].isoformat(),
        "to": args["end"].isoformat(),
        "exported_at": utcnow().isoformat(),
        "exported_by": current_actor(),
    }
    events = audit.events_between(current_scope(), start, end)
    return _export(
        _chunks(get_session(), events, args["format"], header),
        args["format"],
        f"custody-{args['start']}-{args['end']}",
    )
