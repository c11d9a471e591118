"""The base of every marshmallow schema of the service: the input policy at the schema layer.

``Schema`` holds every value it loads to ``biobank.inputs``: each string (field values, list
items, dictionary keys and values, nested objects' fields) free of NUL, lone surrogates and
control characters, with tab and newline only in ``Multiline`` fields; each integer within
what its column holds (PostgreSQL's INTEGER) unless the field says less; each decimal within
the smallest decimal column (NUMERIC(10, 3)). A refusal is a 422 naming the field, the same on
SQLite and PostgreSQL. Unknown fields are refused (marshmallow's RAISE) and so documented
(``additionalProperties: false``).

``PatchSchema`` is for partial updates: a body that changes nothing is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

import marshmallow
from marshmallow import RAISE, ValidationError, fields, pre_load, validate, validates_schema

from biobank.inputs import INT32_MAX, INT32_MIN, bad_character

# NUMERIC(10, 3): seven digits before the point. Every decimal field says less already.
DECIMAL_LIMIT = Decimal("9999999.999")
# How deep the policy walks into a value; the request guard keeps JSON far shallower.
_MAX_WALK = 500


class FieldOptions(TypedDict, total=False):
    """What a field factory (``code_field``, ``reason_field``...) passes on to its field:
    marshmallow's field options, less ``validate``, which the factory sets."""

    required: bool
    allow_none: bool
    load_default: Any
    dump_default: Any
    data_key: str
    load_only: bool
    dump_only: bool
    metadata: Mapping[str, Any]


class Multiline(fields.String):
    """Text that may span lines (notes, descriptions, addresses): tab, CR and LF allowed."""


class Schema(marshmallow.Schema):
    """A schema whose loads keep the input policy (see the module's docstring)."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _keep_text_policy(self, data: Any, **_: Any) -> Any:
        errors = (
            _problems_in_object(self.load_fields, data, 0) if isinstance(data, Mapping) else None
        )
        if errors:
            raise ValidationError(errors)
        return data

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        """Bound every number field to its column (the schema's own copy of the field)."""
        _bound_numbers(field_obj)


class PatchSchema(Schema):
    """A partial update: at least one field that changes something must be sent."""

    # Fields that say why, not what: sent alone they change nothing.
    NOT_CHANGES: tuple[str, ...] = ("reason",)

    @validates_schema
    def _changes_something(self, data: dict[str, Any], **_: Any) -> None:
        if not any(key not in self.NOT_CHANGES for key in data):
            raise ValidationError("nothing to change: send at least one field to change")


def _bound_numbers(field: fields.Field) -> None:
    if isinstance(field, fields.Integer) and not isinstance(field, fields.Boolean):
        field.validators.insert(0, validate.Range(INT32_MIN, INT32_MAX))
    elif isinstance(field, fields.Decimal):
        field.validators.insert(0, validate.Range(-DECIMAL_LIMIT, DECIMAL_LIMIT))
    elif isinstance(field, fields.List):
        _bound_numbers(field.inner)
    elif isinstance(field, fields.Tuple):
        for inner in field.tuple_fields:
            _bound_numbers(inner)
    elif isinstance(field, fields.Dict):
        for inner in (field.key_field, field.value_field):
            if inner is not None:
                _bound_numbers(inner)


def _key_name(key: Any) -> str:
    # A key that breaks the policy is named escaped: the error must not repeat the fault.
    return key.encode("unicode_escape").decode("ascii") if isinstance(key, str) else str(key)


def _problems_in_object(
    known: Mapping[str, fields.Field], data: Mapping[Any, Any], depth: int
) -> dict[str, Any]:
    by_key = {field.data_key or name: field for name, field in known.items()}
    errors: dict[str, Any] = {}
    for key in data:
        if isinstance(key, str) and (why := bad_character(key)):
            errors[_key_name(key)] = [f"this field name {why}"]
            continue
        found = _problems(by_key.get(key), data[key], depth + 1)
        if found:
            errors[key] = found
    return errors


def _problems(field: fields.Field | None, value: Any, depth: int) -> Any:
    """The policy's complaints about one value (marshmallow's error layout), or None."""
    if depth > _MAX_WALK:
        return ["is nested too deeply"]
    if isinstance(value, str):
        why = bad_character(value, multiline=isinstance(field, Multiline))
        return [why] if why else None
    if isinstance(value, Mapping):
        if isinstance(field, fields.Nested) and isinstance(field.schema, marshmallow.Schema):
            errors = _problems_in_object(field.schema.load_fields, value, depth)
        else:
            inner = field.value_field if isinstance(field, fields.Dict) else None
            errors = {}
            for key, item in value.items():
                if isinstance(key, str) and (why := bad_character(key)):
                    errors[_key_name(key)] = [f"this key {why}"]
                elif found := _problems(inner, item, depth + 1):
                    errors[key] = found
        return errors or None
    if isinstance(value, list | tuple):
        errors = {}
        for index, item in enumerate(value):
            if isinstance(field, fields.List):
                inner: fields.Field | None = field.inner
            elif isinstance(field, fields.Tuple) and index < len(field.tuple_fields):
                inner = field.tuple_fields[index]
            elif isinstance(field, fields.Nested):
                inner = field
            else:
                inner = None
            if found := _problems(inner, item, depth + 1):
                errors[index] = found
        return errors or None
    return None
