"""Sample and aliquot schemas."""

from __future__ import annotations

from typing import Unpack

from marshmallow import fields, validate

from biobank.reference.schemas import code_field
from biobank.reference.sprec import (
    CENTRIFUGATION_TEMPERATURES,
    POST_CENTRIFUGATION_TEMPERATURES,
    PRECENTRIFUGATION_TEMPERATURES,
    STORAGE,
)
from biobank.samples import barcodes
from biobank.samples.states import MANUAL, STATUSES
from biobank.schema import FieldOptions, Multiline, Schema

VOLUME = validate.Range(
    min=0, min_inclusive=False, max=1000, error="a volume in mL, greater than 0"
)


def volume_field(**kwargs: Unpack[FieldOptions]) -> fields.Decimal:
    """A volume in mL, positive, three decimals."""
    return fields.Decimal(places=3, validate=VOLUME, **kwargs)


class SampleIn(Schema):
    study_id = fields.String(required=True, validate=validate.Length(1, 64))
    timepoint = code_field(allow_none=True, load_default=None)
    unscheduled_reason = fields.String(
        allow_none=True, load_default=None, validate=validate.Length(1, 200)
    )
    material = code_field(required=True)
    collected_at = fields.AwareDateTime(required=True)
    received_at = fields.AwareDateTime(required=True)
    volume_ml = volume_field(required=True)
    container_code = fields.String(
        required=True,
        validate=validate.Length(3, 3),
        metadata={
            "description": "SPREC v3.0 primary container, e.g. PED (GET /sprec-codes lists them)"
        },
    )
    precentrifugation_delay_hours = fields.Decimal(
        places=2, allow_none=True, load_default=None, validate=validate.Range(min=0, max=720)
    )
    precentrifugation_temperature = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(PRECENTRIFUGATION_TEMPERATURES),
        metadata={"description": "RT (18–28 °C), 2-10C or 35-38C, as SPREC's bands"},
    )
    accession_number = fields.String(
        allow_none=True, load_default=None, validate=validate.Length(1, 64)
    )
    notes = Multiline(allow_none=True, load_default=None, validate=validate.Length(max=2000))


class SampleQuery(Schema):
    patient = fields.String(metadata={"description": "study_id"})
    timepoint = code_field()
    material = code_field()


class SampleOut(Schema):
    barcode = fields.String()
    study_id = fields.Function(lambda s: s.patient.study_id if s.patient else None, allow_none=True)
    timepoint = fields.Function(lambda s: s.timepoint.code if s.timepoint else None)
    unscheduled_reason = fields.String(allow_none=True)
    material = fields.Function(lambda s: s.material.code)
    collected_at = fields.AwareDateTime()
    received_at = fields.AwareDateTime()
    volume_ml = fields.Decimal()
    volume_remaining_ml = fields.Decimal()
    container_code = fields.String()
    precentrifugation_delay_hours = fields.Decimal(allow_none=True)
    precentrifugation_temperature = fields.String(allow_none=True)
    accession_number = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)


class AliquotSpec(Schema):
    aliquot_type = code_field(required=True)
    volume_ml = volume_field(allow_none=True, load_default=None)
    source_volume_ml = volume_field(
        allow_none=True,
        load_default=None,
        metadata={"description": "parent volume used, when it differs from volume_ml"},
    )
    cell_count = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1))
    barcode = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(
            rf"^\s*{barcodes.EXTERNAL_RULE}\s*$", error=barcodes.EXTERNAL_WORDS
        ),
        metadata={"description": "a pre-barcoded tube's own code: " + barcodes.EXTERNAL_WORDS},
    )
    storage = fields.String(
        load_default="X",
        validate=validate.OneOf(sorted(STORAGE)),
        metadata={
            "description": "SPREC v3.0 long-term storage code, e.g. "
            "D (cryotube −85…−60 °C), E (programmable freezing to "
            "< −135 °C), N (LN2 after −80 °C)"
        },
    )
    position = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(1, 8),
        metadata={
            "description": "where the tube goes in the split's "
            "box (A1, A01, 1…); default: the next free place"
        },
    )


class SpinIn(Schema):
    temperature = fields.String(required=True, validate=validate.OneOf(CENTRIFUGATION_TEMPERATURES))
    minutes = fields.Decimal(
        required=True, places=1, validate=validate.Range(min=0, min_inclusive=False, max=600)
    )
    g = fields.Decimal(
        required=True,
        places=0,
        validate=validate.Range(min=0, min_inclusive=False, max=1_000_000),
        metadata={"description": "relative centrifugal force, × g"},
    )
    braking = fields.Boolean(required=True)


class ProcessingIn(Schema):
    centrifugation = fields.Nested(
        SpinIn, allow_none=True, load_default=None, metadata={"description": "SPREC element 4"}
    )
    second_centrifugation = fields.Nested(
        SpinIn,
        allow_none=True,
        load_default=None,
        metadata={"description": "SPREC element 5 (double spun material)"},
    )
    post_centrifugation_delay_hours = fields.Decimal(
        places=2,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, max=720),
        metadata={"description": "SPREC element 6: from centrifugation to freezing"},
    )
    post_centrifugation_temperature = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(POST_CENTRIFUGATION_TEMPERATURES),
    )


class SplitIn(Schema):
    aliquots = fields.List(
        fields.Nested(AliquotSpec), required=True, validate=validate.Length(1, 400)
    )
    consume_parent = fields.Boolean(load_default=False)
    reason = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 200))
    processing = fields.Nested(
        ProcessingIn,
        allow_none=True,
        load_default=None,
        metadata={
            "description": "how the material was processed (centrifugations, delay before "
            "freezing): SPREC elements 4–6 of the new tubes; what is not given is "
            "X, what follows from the aliquot type (whole blood: N) is coded so"
        },
    )
    box = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(r"^\s*[A-Za-z0-9_-]{3,64}\s*$"),
        metadata={
            "description": "store the new tubes straight into this "
            "box or rack (its barcode or the rack's own code), in the "
            "same request; needs storage:write too"
        },
    )


class AliquotQuery(Schema):
    patient = fields.String(metadata={"description": "study_id"})
    timepoint = code_field()
    material = code_field()
    aliquot_type = code_field()
    status = fields.String(validate=validate.OneOf(STATUSES))
    sample = fields.String(metadata={"description": "parent sample barcode"})


class AliquotOut(Schema):
    barcode = fields.String()
    barcode_source = fields.String()
    sample = fields.Function(lambda a: a.sample.barcode)
    parent = fields.Function(lambda a: a.parent.barcode if a.parent_aliquot_id else None)
    study_id = fields.Function(
        lambda a: a.sample.patient.study_id if a.sample.patient else None, allow_none=True
    )
    timepoint = fields.Function(lambda a: a.sample.timepoint.code if a.sample.timepoint else None)
    material = fields.Function(lambda a: a.sample.material.code)
    aliquot_type = fields.Function(lambda a: a.aliquot_type.code)
    volume_ml = fields.Decimal(allow_none=True)
    volume_remaining_ml = fields.Decimal(allow_none=True)
    source_volume_ml = fields.Decimal(allow_none=True)
    cell_count = fields.Integer(allow_none=True)
    sprec_code = fields.String(
        allow_none=True, metadata={"description": "SPREC v3.0 fluid code (seven elements)"}
    )
    sprec_derived_from = fields.Function(
        lambda a: (
            (a.parent.barcode if a.parent_aliquot_id else a.sample.barcode)
            if a.aliquot_type.sprec_type is None
            else None
        ),
        metadata={
            "type": "string",
            "nullable": True,
            "description": "for DNA and RNA (no SPREC type of their own): the tube or "
            "sample whose code this extract carries",
        },
    )
    freeze_thaw_count = fields.Integer()
    status = fields.String()
    created_at = fields.AwareDateTime()


class StatusIn(Schema):
    status = fields.String(required=True, validate=validate.OneOf(MANUAL))
    reason = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 200))
