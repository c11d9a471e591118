"""Marshmallow schemas for reference data: In (create), Patch (edit) and Out."""

from __future__ import annotations

from typing import Unpack

from marshmallow import fields, validate

from biobank.reference.sprec import SAMPLE_TYPES
from biobank.schema import FieldOptions, PatchSchema, Schema

CODE = validate.Regexp(
    r"^[A-Z0-9][A-Z0-9_-]{0,31}$", error="use 1–32 capital letters, digits, '-' or '_'"
)
RISK_GROUP = validate.OneOf(["MR", "HR"])
SPREC_TYPE = validate.OneOf(sorted(SAMPLE_TYPES), error="not a SPREC fluid sample type")


def code_field(**kwargs: Unpack[FieldOptions]) -> fields.String:
    """A reference code."""
    return fields.String(validate=CODE, **kwargs)


class SiteIn(Schema):
    code = code_field(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    country = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Z]{2}$", error="an ISO 3166-1 alpha-2 country code, e.g. NL"
        ),
    )


class MaterialIn(Schema):
    code = code_field(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    sprec_type = fields.String(required=True, validate=SPREC_TYPE)


class AliquotTypeIn(Schema):
    code = code_field(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    sprec_type = fields.String(allow_none=True, load_default=None, validate=SPREC_TYPE)
    spins = fields.Integer(
        allow_none=True,
        load_default=None,
        validate=validate.Range(0, 2),
        metadata={
            "description": "times the material is centrifuged to make "
            "it (0: SPREC 4–6 are N; 1: single spun, second "
            "centrifugation N; 2: double spun); empty: as recorded"
        },
    )
    unit = fields.String(load_default="mL", validate=validate.OneOf(["mL", "cells"]))
    materials = fields.List(code_field(), load_default=list)


class TimepointIn(Schema):
    code = code_field(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    phase = fields.String(required=True, validate=validate.Length(1, 200))
    nominal_day = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=0, max=3650)
    )
    window_before_days = fields.Integer(load_default=0, validate=validate.Range(min=0, max=365))
    window_after_days = fields.Integer(load_default=0, validate=validate.Range(min=0, max=365))
    risk_groups = fields.List(
        fields.String(validate=RISK_GROUP), required=True, validate=validate.Length(min=1)
    )
    expected_materials = fields.List(code_field(), load_default=list)
    sort_order = fields.Integer(load_default=0)


class SiteOut(SiteIn):
    pass


class MaterialOut(MaterialIn):
    pass


class AliquotTypeOut(AliquotTypeIn):
    pass


class TimepointOut(TimepointIn):
    pass


class SitePatch(PatchSchema, SiteIn):
    class Meta:
        exclude = ("code",)


class MaterialPatch(PatchSchema, MaterialIn):
    class Meta:
        exclude = ("code",)


class AliquotTypePatch(PatchSchema, AliquotTypeIn):
    class Meta:
        exclude = ("code",)


class TimepointPatch(PatchSchema, TimepointIn):
    class Meta:
        exclude = ("code",)


class CountryMajorityIn(Schema):
    code = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^([A-Z]{2}|DEFAULT)$", error="an ISO 3166-1 alpha-2 country code, or DEFAULT"
        ),
    )
    age = fields.Integer(required=True, validate=validate.Range(min=12, max=25))
    note = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=200))


class CountryMajorityOut(CountryMajorityIn):
    pass


class CountryMajorityPatch(PatchSchema, CountryMajorityIn):
    class Meta:
        exclude = ("code",)


PLAIN_TEXT = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="control characters are not allowed")


class TrialIn(Schema):
    code = code_field(required=True)
    name = fields.String(required=True, validate=[validate.Length(1, 200), PLAIN_TEXT])
    registry_id = fields.String(
        required=True,
        validate=[validate.Length(1, 64), PLAIN_TEXT],
        metadata={"description": "e.g. NCT05327894"},
    )
    opened_on = fields.Date(
        required=True,
        metadata={"description": "the trial's start date: no diagnosis before it is accepted"},
    )


class TrialOut(TrialIn):
    pass


class TrialPatch(TrialIn):
    class Meta:
        exclude = ("code",)


class SprecCodeOut(Schema):
    code = fields.String()
    name = fields.String()


class SprecElementOut(Schema):
    element = fields.String(
        metadata={
            "enum": [
                "sample_type",
                "primary_container",
                "precentrifugation",
                "centrifugation",
                "second_centrifugation",
                "post_centrifugation",
                "long_term_storage",
            ]
        }
    )
    codes = fields.List(fields.Nested(SprecCodeOut))


class SprecTablesOut(Schema):
    version = fields.String()
    source = fields.String()
    elements = fields.List(fields.Nested(SprecElementOut))


class CountryAnonymisationIn(Schema):
    code = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^([A-Z]{2}|DEFAULT)$", error="an ISO 3166-1 alpha-2 country code, or DEFAULT"
        ),
    )
    allowed = fields.Boolean(
        required=True,
        metadata={
            "description": "whether a storage withdrawal may anonymise the tubes instead of "
            "destroying them"
        },
    )
    note = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=200))


class CountryAnonymisationOut(CountryAnonymisationIn):
    pass


class CountryAnonymisationPatch(CountryAnonymisationIn):
    class Meta:
        exclude = ("code",)
