"""Custody event output."""

from __future__ import annotations

from marshmallow import Schema, fields


class EventOut(Schema):
    id = fields.Integer()
    event_type = fields.String()
    actor = fields.String()
    occurred_at = fields.AwareDateTime()
    reason = fields.String(allow_none=True)
    old_values = fields.Dict(allow_none=True)
    new_values = fields.Dict(allow_none=True)
