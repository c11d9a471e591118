"""The scan station's endpoints: a tube scanned while a box is open (the same decision the
page makes), its undo, and a manager letting a box mix types and temperatures."""

from __future__ import annotations

from typing import Any, Unpack

from flask_smorest import Blueprint
from marshmallow import fields, validate

from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.db import get_session
from biobank.samples.numbering import numbering
from biobank.samples.service import get_aliquot
from biobank.schema import FieldOptions, Schema
from biobank.storage import service, station
from biobank.storage.schemas import CODE, REASON, position_field

blp = Blueprint("station", __name__, description="The scan station: tubes into an open box")

# Text fields refuse control characters (NUL and the like) as the schema layer's policy.
PLAIN = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="control characters are not allowed")


def _code(**kwargs: Unpack[FieldOptions]) -> fields.String:
    return fields.String(validate=[CODE, PLAIN], **kwargs)


class ScanInIn(Schema):
    barcode = _code(required=True, metadata={"description": "the scanned tube"})
    position = position_field()
    confirm = fields.Boolean(
        load_default=False,
        metadata={
            "description": "the answer to a question the station asked (move, found, refreeze)"
        },
    )


class PlaceOut(Schema):
    box = fields.String()
    name = fields.String()
    position = fields.String(allow_none=True)
    band = fields.String(allow_none=True)


class UndoOut(Schema):
    at_box = fields.String()
    at_position = fields.String(allow_none=True)
    box = fields.String(allow_none=True)
    position = fields.String(allow_none=True)
    taken_out = fields.Boolean()
    missing = fields.Boolean()


class ScanInOut(Schema):
    state = fields.String(metadata={"enum": ["done", "ask", "here"]})
    action = fields.String(
        metadata={"enum": ["stored", "moved", "put back", "refrozen", "found", "here"]}
    )
    message = fields.String()
    question = fields.String(allow_none=True)
    from_ = fields.Nested(PlaceOut, allow_none=True, data_key="from")
    to = fields.Nested(PlaceOut, allow_none=True)
    undo = fields.Nested(
        UndoOut, allow_none=True, metadata={"description": "POST it to …/scan-in/undo to undo"}
    )


class UndoIn(Schema):
    barcode = _code(required=True)
    at_box = _code(required=True, metadata={"description": "where the station put it"})
    at_position = position_field()
    box = _code(
        allow_none=True,
        load_default=None,
        metadata={"description": "where it goes back; none: it had no place"},
    )
    position = position_field()
    taken_out = fields.Boolean(load_default=False)
    missing = fields.Boolean(load_default=False)


class DoneOut(Schema):
    message = fields.String()


class MixingIn(Schema):
    allowed = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=[REASON, PLAIN])


class MixingOut(Schema):
    box = fields.String()
    mixing_allowed = fields.Boolean()


@blp.route("/boxes/<code>/scan-in", methods=["POST"])
@blp.arguments(ScanInIn)
@blp.response(200, ScanInOut)
@blp.alt_response(
    409,
    description="refused: the tube does not fit the box, or cannot be stored; the message says why",
)
@requires("storage:write")
def scan_in(values: dict[str, Any], code: str) -> Any:
    """A tube scanned with this box open: stored, a question first, or refused (409)."""
    session = get_session()
    box = service.get_box(session, code, numbering(), "box")
    aliquot = get_aliquot(session, values["barcode"], numbering())
    answer = station.scan_into(
        session, current_actor(), aliquot, box, values["position"], values["confirm"]
    )
    return {**answer, "from_": answer.pop("from")}


@blp.route("/boxes/<code>/scan-in/undo", methods=["POST"])
@blp.arguments(UndoIn)
@blp.response(200, DoneOut)
@blp.alt_response(409, description="the tube is no longer where the station put it")
@requires("storage:write")
def scan_in_undo(values: dict[str, Any], code: str) -> Any:
    """Undo a station change: the tube moves back (recorded as a move), nothing deleted."""
    session = get_session()
    number = numbering()
    service.get_box(session, code, number)  # the station's box: 404 if unknown (or elsewhere)
    aliquot = get_aliquot(session, values["barcode"], number)
    at_box = service.get_box(session, values["at_box"], number, "at_box")
    back = service.get_box(session, values["box"], number, "box") if values["box"] else None
    return {
        "message": station.undo(
            session,
            current_actor(),
            aliquot,
            at_box,
            values["at_position"],
            back,
            values["position"],
            values["taken_out"],
            values["missing"],
        )
    }


@blp.route("/boxes/<code>/mixing", methods=["PUT"])
@blp.arguments(MixingIn)
@blp.response(200, MixingOut)
@requires("storage:configure")
def set_mixing(values: dict[str, Any], code: str) -> Any:
    """Allow a box to hold tubes of other types or temperatures (or stop it), with a reason."""
    session = get_session()
    box = station.allow_mixing(
        session,
        current_actor(),
        service.get_box(session, code, numbering(), "box"),
        values["allowed"],
        values["reason"],
    )
    return {"box": box.barcode, "mixing_allowed": box.mixing_allowed}
