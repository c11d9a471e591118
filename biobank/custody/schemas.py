"""Custody event output."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from biobank.schema import Schema


class EventOut(Schema):
    id = fields.Integer()
    event_type = fields.String()
    actor = fields.String()
    occurred_at = fields.AwareDateTime()
    reason = fields.String(allow_none=True)
    old_values = fields.Dict(allow_none=True)
    new_values = fields.Dict(allow_none=True)
    prev_hash = fields.String(metadata={"description": "hash of the event before in its chain"})
    hash = fields.String(metadata={"description": "SHA-256 over this event and prev_hash"})


class BrokenOut(Schema):
    event_id = fields.Integer()
    aliquot = fields.String(allow_none=True)
    sample = fields.String(allow_none=True)
    problem = fields.String()


class VerificationOut(Schema):
    ok = fields.Boolean()
    checked = fields.Integer(metadata={"description": "events checked"})
    broken = fields.Nested(
        BrokenOut, allow_none=True, metadata={"description": "the first broken event, if any"}
    )


class ExportQuery(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(("csv", "json")))


class RangeQuery(ExportQuery):
    start = fields.Date(
        required=True, data_key="from", metadata={"description": "first day (UTC), inclusive"}
    )
    end = fields.Date(
        required=True, data_key="to", metadata={"description": "last day (UTC), inclusive"}
    )

    @validates_schema
    def _ordered(self, data: dict, **_: object) -> None:  # type: ignore[type-arg]
        if data["end"] < data["start"]:
            raise ValidationError("to is before from", field_name="to")
