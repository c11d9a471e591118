"""Storage schemas: In (bodies), Query (filters) and Out (answers) kept apart."""

from __future__ import annotations

from typing import Any, Unpack

from marshmallow import fields, validate

from biobank.reference.schemas import code_field
from biobank.samples import barcodes
from biobank.schema import FieldOptions, Schema
from biobank.storage.models import FREEZER_TYPES, HOLDER_KINDS, TEMPERATURE_BANDS
from biobank.storage.naming import SCHEMES

NAME = validate.Length(1, 64)
REASON = validate.Length(1, 200)
CODE = validate.Length(1, 64)


def reason_field(**kwargs: Unpack[FieldOptions]) -> fields.String:
    """Why, in words (optional unless said otherwise)."""
    kwargs.setdefault("load_default", None)
    kwargs.setdefault("allow_none", True)
    return fields.String(validate=REASON, **kwargs)


def position_field() -> fields.String:
    """A position label: A1 or A01, or a number in numbered boxes; none in bags."""
    return fields.String(
        validate=validate.Length(1, 8),
        allow_none=True,
        load_default=None,
        metadata={"description": "A1, A01 or 1…N; leave out for bags"},
    )


# --- in --------------------------------------------------------------------------------


class BoxTypeIn(Schema):
    code = code_field(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    scheme = fields.String(
        required=True,
        validate=validate.OneOf(sorted(SCHEMES)),
        metadata={"description": "; ".join(f"{k}: {v}" for k, v in SCHEMES.items())},
    )
    rows = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(1, 26))
    columns = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(1, 99))
    capacity = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1))


class FreezerIn(Schema):
    site = code_field(required=True)
    name = fields.String(required=True, validate=NAME)
    freezer_type = fields.String(required=True, validate=validate.OneOf(sorted(FREEZER_TYPES)))
    temperature_band = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(sorted(TEMPERATURE_BANDS)),
        metadata={"description": "MIABIS band; from the type if left out"},
    )
    room = fields.String(allow_none=True, load_default=None, validate=NAME)


class ContainerIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(HOLDER_KINDS))
    name = fields.String(required=True, validate=NAME)
    parent = fields.String(
        required=True, validate=CODE, metadata={"description": "barcode of the freezer or holder"}
    )


class BoxIn(Schema):
    box_type = code_field(required=True)
    parent = fields.String(required=True, validate=CODE)
    name = fields.String(
        allow_none=True,
        load_default=None,
        validate=NAME,
        metadata={"description": "defaults to the issued barcode"},
    )
    external_barcode = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(
            rf"^\s*{barcodes.EXTERNAL_RULE}\s*$", error=barcodes.EXTERNAL_WORDS
        ),
        metadata={"description": "a rack's own code: " + barcodes.EXTERNAL_WORDS},
    )


class MoveContainerIn(Schema):
    into = fields.String(required=True, validate=CODE)
    reason = reason_field()


class PlaceIn(Schema):
    box = fields.String(required=True, validate=CODE)
    position = position_field()
    reason = reason_field()


class MoveSpec(Schema):
    aliquot = fields.String(required=True, validate=CODE)
    box = fields.String(required=True, validate=CODE)
    position = position_field()


class BulkMoveIn(Schema):
    moves = fields.List(fields.Nested(MoveSpec), required=True, validate=validate.Length(1, 1000))
    reason = reason_field()


class ElsewhereIn(Schema):
    box = fields.String(
        allow_none=True,
        load_default=None,
        validate=CODE,
        metadata={"description": "a new box; else the tube's kept place"},
    )
    position = position_field()
    reason = reason_field()


class ReasonIn(Schema):
    reason = reason_field()


class MissingIn(Schema):
    reason = fields.String(required=True, validate=REASON)


class ExcursionIn(Schema):
    started_at = fields.AwareDateTime(required=True)
    ended_at = fields.AwareDateTime(required=True)
    peak_celsius = fields.Decimal(required=True, places=1, validate=validate.Range(-273, 100))
    note = reason_field()


class BoxQuery(Schema):
    box_type = code_field()
    within = fields.String(validate=CODE, metadata={"description": "a container barcode"})


class SuggestQuery(Schema):
    count = fields.Integer(required=True, validate=validate.Range(1, 2000))
    within = fields.String(validate=CODE, metadata={"description": "a container barcode"})
    box_type = code_field()


class CountQuery(Schema):
    count = fields.Integer(required=True, validate=validate.Range(1, 2000))


# --- out -------------------------------------------------------------------------------


class BoxTypeOut(Schema):
    code = fields.String()
    name = fields.String()
    scheme = fields.String()
    rows = fields.Integer(allow_none=True)
    columns = fields.Integer(allow_none=True)
    capacity = fields.Integer(allow_none=True, attribute="size")


class ContainerOut(Schema):
    barcode = fields.String()
    kind = fields.String()
    name = fields.String()
    path = fields.String()
    freezer = fields.String()
    site = fields.String()
    parent = fields.String(allow_none=True)
    freezer_type = fields.String(allow_none=True)
    temperature_band = fields.String(allow_none=True)
    room = fields.String(allow_none=True)
    box_type = fields.String(allow_none=True)
    external_barcode = fields.String(allow_none=True)
    children = fields.List(fields.Dict())


class BoxOut(Schema):
    barcode = fields.String()
    external_barcode = fields.String(allow_none=True)
    name = fields.String()
    path = fields.String()
    freezer = fields.String()
    box_type = fields.String()
    scheme = fields.String()
    rows = fields.Integer(allow_none=True)
    columns = fields.Integer(allow_none=True)
    capacity = fields.Integer(allow_none=True)
    occupied = fields.Integer()
    free = fields.Integer(allow_none=True)


class MapTubeOut(Schema):
    barcode = fields.String()
    aliquot_type = fields.String()
    study_id = fields.String()
    timepoint = fields.String(allow_none=True)
    status = fields.String()
    consent = fields.String(allow_none=True)
    freeze_thaw_count = fields.Integer()
    taken_out = fields.Boolean()
    thawed = fields.Boolean()
    condition = fields.Boolean(metadata={"description": "has condition notes (excursions)"})


class MapPositionOut(Schema):
    position = fields.String()
    row = fields.Integer()
    column = fields.Integer()
    aliquot = fields.Nested(MapTubeOut, allow_none=True)


class PrebuiltList(fields.List):
    """Documented as a list of its nested schema, but sent as the service built it: the
    box map's cells are plain JSON values already, and dumping 400 of them field by field
    would cost more than reading them from the database."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class BoxMapOut(BoxOut):
    positions = PrebuiltList(fields.Nested(MapPositionOut))
    loose = PrebuiltList(
        fields.Nested(MapTubeOut), metadata={"description": "tubes in a grid-free box"}
    )


class OfferOut(Schema):
    box = fields.String()
    path = fields.String()
    contiguous = fields.Boolean()
    positions = fields.List(fields.String())


class LocationOut(Schema):
    box = fields.String()
    position = fields.String(allow_none=True)
    path = fields.String()
    freezer = fields.String()
    taken_out = fields.Boolean()
    taken_out_at = fields.AwareDateTime(allow_none=True)


class ConditionOut(Schema):
    note = fields.String()
    recorded_at = fields.AwareDateTime()


class TubeStorageOut(Schema):
    barcode = fields.String()
    status = fields.String()
    freeze_thaw_count = fields.Integer()
    thawed = fields.Boolean()
    location = fields.Nested(LocationOut, allow_none=True)
    conditions = fields.List(fields.Nested(ConditionOut))


class MovedOut(Schema):
    moved = fields.Integer()
    aliquots = fields.List(fields.String())


class CapacityLine(Schema):
    freezer = fields.String()
    box_type = fields.String()
    name = fields.String()
    path = fields.String()
    site = fields.String()
    boxes = fields.Integer()
    positions = fields.Integer()
    occupied = fields.Integer()
    free = fields.Integer()
    loose = fields.Integer(metadata={"description": "tubes in grid-free boxes"})


class CapacityOut(Schema):
    freezers = fields.List(fields.Nested(CapacityLine))
    box_types = fields.List(fields.Nested(CapacityLine))


class RackCheckOut(Schema):
    status = fields.String(metadata={"enum": ["match", "mismatch", "unregistered", "none"]})
    scanned = fields.String(allow_none=True, metadata={"description": "the file's rack code"})
    registered = fields.String(
        allow_none=True, metadata={"description": "the box's registered rack code"}
    )
    other_box = fields.String(
        allow_none=True,
        metadata={
            "description": "the box the file's rack code is registered to, when not this one"
        },
    )
    message = fields.String()


class AcknowledgementOut(Schema):
    finding = fields.String(
        metadata={"enum": ["rack_mismatch", "unknown_tubes", "unreadable_wells"]}
    )
    message = fields.String()


class ScanConfirmIn(Schema):
    acknowledge = fields.List(
        fields.String(
            validate=validate.OneOf(["rack_mismatch", "unknown_tubes", "unreadable_wells"])
        ),
        load_default=list,
        validate=validate.Length(max=3),
        metadata={
            "description": "the preview's findings the confirmer has looked at; "
            "every finding of the preview must be here"
        },
    )
    record_rack = fields.Boolean(
        load_default=False,
        metadata={
            "description": "record the file's rack code as the box's (offered when the box has "
            "none)"
        },
    )


class ReconciliationOut(Schema):
    token = fields.String(metadata={"description": "confirm with it to apply the moves"})
    box = fields.String()
    rack = fields.String(allow_none=True)
    layout = fields.String()
    rack_check = fields.Nested(RackCheckOut)
    acknowledge = fields.List(
        fields.Nested(AcknowledgementOut),
        metadata={"description": "findings the confirm must acknowledge (409 otherwise)"},
    )
    can_record_rack = fields.Boolean(
        metadata={"description": "the box has no rack code: confirm with record_rack to record it"}
    )
    scanned = fields.Integer()
    matches = fields.List(fields.Dict())
    missing = fields.List(fields.Dict(), metadata={"description": "expected, not scanned"})
    moved = fields.List(fields.Dict(), metadata={"description": "registered elsewhere"})
    unknown = fields.List(fields.Dict(), metadata={"description": "not registered"})
    unreadable = fields.List(fields.Dict())
    refused = fields.List(
        fields.Dict(), metadata={"description": "shipped, consumed or destroyed tubes"}
    )
    taken_out = fields.List(fields.Dict())
    displaced = fields.List(
        fields.Dict(), metadata={"description": "unseen tubes whose place a move takes"}
    )


class ConfirmOut(Schema):
    token = fields.String()
    box = fields.String()
    moved = fields.Integer()
    found = fields.Integer()
    displaced = fields.Integer()
    acknowledged = fields.List(fields.String())
    rack_recorded = fields.String(allow_none=True)


class ExcursionOut(Schema):
    id = fields.Integer()
    freezer = fields.String()
    freezer_name = fields.String()
    started_at = fields.AwareDateTime()
    ended_at = fields.AwareDateTime()
    peak_celsius = fields.Decimal()
    note = fields.String(allow_none=True)
    recorded_by = fields.String()
    aliquots = fields.List(fields.Dict())
