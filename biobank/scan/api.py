"""The scan endpoint."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app
from flask_smorest import Blueprint
from marshmallow import fields

from biobank.auth.permissions import requires
from biobank.auth.web import (
    checks_token_itself,
    current_scope,
    pending_token_hash,
    settle_asker,
    settle_by_lookup,
)
from biobank.custody.schemas import EventOut
from biobank.db import get_session, read_connection, read_only
from biobank.errors import DomainError
from biobank.samples.numbering import numbering
from biobank.samples.service import check_code
from biobank.scan import service
from biobank.schema import Schema

blp = Blueprint("scan", __name__, description="Scan any tube")


class ScanOut(Schema):
    kind = fields.String(metadata={"enum": ["aliquot", "sample", "box", "container"]})
    barcode = fields.String()
    study_id = fields.String()
    risk_group = fields.String()
    timepoint = fields.String(allow_none=True)
    material = fields.String()
    aliquot_type = fields.String(allow_none=True)
    aliquot_type_name = fields.String(allow_none=True)
    volume_ml = fields.Decimal(allow_none=True)
    cell_count = fields.Integer(allow_none=True)
    status = fields.String()
    freeze_thaw_count = fields.Integer()
    sample = fields.String()
    parent = fields.String(allow_none=True)
    sprec_code = fields.String(allow_none=True)
    location = fields.Dict(allow_none=True)
    conditions = fields.List(
        fields.Dict(), metadata={"description": "condition notes, e.g. temperature excursions"}
    )
    consent = fields.Dict(allow_none=True)
    recent_events = fields.List(fields.Nested(EventOut))


@blp.route("/scan/<code>", methods=["GET"])
@blp.response(200, ScanOut)
@requires("scan")
@checks_token_itself
@read_only
def scan(code: str) -> Any:
    """Resolve a scanned code: 422 if its check character is wrong, 404 if unknown."""
    # The bearer token is checked in the card's own statement: one statement a scan.
    try:
        checked = check_code(code, numbering())
        card = service.aliquot_card(
            read_connection(),
            checked,
            current_app.config["SCAN_RECENT_EVENTS"],
            token_hash=pending_token_hash(),
        )
        if card is None:
            settle_by_lookup()  # a sample, box or container: its card does not read the token
            card = service.other_card(
                get_session(), checked, current_app.config["SCAN_RECENT_EVENTS"]
            )
    except DomainError:
        settle_by_lookup()  # who asks is answered before what is wrong with the code
        raise
    if pending_token_hash() is not None:  # an aliquot's card, with the token's owner
        settle_asker(card.pop("asker"))
    if card["kind"] == "aliquot":
        card = service.in_scope(card, current_scope())
        # The busiest request of the biobank skips the schema: its card is made of plain
        # values already (tests check it equals ScanOut's dump of the same card), and is
        # written by orjson (a quarter of the time of jsonify).
        return Response(orjson.dumps(plain_card(card)), mimetype="application/json")
    return card


def plain_card(card: dict[str, Any]) -> dict[str, Any]:
    """An aliquot's card as ScanOut dumps it, from values the scan made plain but two."""
    volume = card["volume_ml"]
    return {
        **card,
        "volume_ml": None if volume is None else float(volume),
        "recent_events": [
            {**event, "occurred_at": event["occurred_at"].isoformat()}
            for event in card["recent_events"]
        ],
    }
