"""Request schemas: In / Query / Out kept apart.

Researchers get the same output schemas without the fields listed in ``INTERNAL`` (who in
the biobank did what, where tubes sit, what else would match): ``for_role`` leaves them out.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from biobank.patients.models import DIAGNOSES, RISK_GROUPS
from biobank.reference.schemas import code_field
from biobank.requests.availability import MRD_STATUSES
from biobank.requests.lifecycle import TRANSITIONS
from biobank.requests.models import CONDITIONS
from biobank.samples.schemas import volume_field
from biobank.schema import Multiline, PatchSchema, Schema

REASON = validate.Length(1, 200)
BARCODE = validate.Length(1, 64)


def for_role(schema: type[Schema], researcher: bool, **kwargs: Any) -> Schema:
    """The output schema for the asker: staff see it whole, researchers without INTERNAL."""
    exclude = getattr(schema, "INTERNAL", ()) if researcher else ()
    return schema(exclude=exclude, **kwargs)


# --- criteria and availability ---------------------------------------------------------


class FiltersIn(Schema):
    materials = fields.List(code_field(), metadata={"description": "material codes: BM, PB…"})
    aliquot_types = fields.List(code_field(), metadata={"description": "aliquot type codes"})
    timepoints = fields.List(code_field(), metadata={"description": "timepoint codes: DX…"})
    risk_groups = fields.List(fields.String(validate=validate.OneOf(RISK_GROUPS)))
    diagnoses = fields.List(fields.String(validate=validate.OneOf(DIAGNOSES)))
    mrd_status = fields.String(
        validate=validate.OneOf(MRD_STATUSES),
        metadata={
            "description": "MRD at the sample's timepoint (or at mrd_timepoint): positive ≥ "
            "0.01 %, negative below, unknown if not measured"
        },
    )
    mrd_timepoint = code_field(metadata={"description": "read the MRD status here (e.g. EOI)"})
    min_volume_ml = volume_field()
    max_freeze_thaw = fields.Integer(validate=validate.Range(min=0, max=100))


class AvailabilityQuery(FiltersIn):
    substudy = code_field(metadata={"description": "required unless you have one sub-study"})


class CriteriaIn(FiltersIn):
    aliquots_per_patient_timepoint = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=50)
    )
    patients = fields.Integer(
        required=True,
        validate=validate.Range(min=1, max=1000),
        metadata={"description": "how many patients' material"},
    )


class AdjustIn(CriteriaIn):
    patients = fields.Integer(validate=validate.Range(min=1, max=1000))
    aliquots_per_patient_timepoint = fields.Integer(validate=validate.Range(min=1, max=50))


class GroupOut(Schema):
    timepoint = fields.String(allow_none=True)
    material = fields.String()
    aliquot_type = fields.String()
    aliquots = fields.Integer()
    patients = fields.Integer()


class AvailabilityOut(Schema):
    substudy = fields.String()
    as_of = fields.Date()
    aliquots = fields.Integer()
    groups = fields.List(fields.Nested(GroupOut))


# --- requests ---------------------------------------------------------------------------


class RequestIn(Schema):
    substudy = code_field(metadata={"description": "required unless you have one sub-study"})
    title = fields.String(required=True, validate=validate.Length(1, 200))
    purpose = Multiline(required=True, validate=validate.Length(1, 5000))
    criteria = fields.Nested(CriteriaIn, required=True)
    submit = fields.Boolean(load_default=False, metadata={"description": "submit at once"})


class RequestPatch(PatchSchema):
    title = fields.String(validate=validate.Length(1, 200))
    purpose = Multiline(validate=validate.Length(1, 5000))
    criteria = fields.Nested(CriteriaIn)


class RequestQuery(Schema):
    state = fields.String(validate=validate.OneOf(sorted(TRANSITIONS)))
    substudy = code_field()


class ApproveIn(Schema):
    adjust = fields.Nested(
        AdjustIn,
        load_default=None,
        metadata={"description": "criteria to change before allocation (e.g. fewer patients)"},
    )
    note = fields.String(load_default=None, validate=REASON)


class RequestReasonIn(Schema):
    reason = fields.String(required=True, validate=REASON)


class AllocateIn(Schema):
    allow_partial = fields.Boolean(
        load_default=False,
        metadata={"description": "take what is there when fewer patients than asked have material"},
    )


class PickIn(Schema):
    barcode = fields.String(required=True, validate=BARCODE)


class DropIn(PickIn):
    reason = fields.String(required=True, validate=REASON)


class ShipIn(Schema):
    courier = fields.String(required=True, validate=validate.Length(1, 64))
    tracking_number = fields.String(required=True, validate=validate.Length(1, 64))
    condition = fields.String(required=True, validate=validate.OneOf(CONDITIONS))
    recipient_name = fields.String(required=True, validate=validate.Length(1, 200))
    recipient_institution = fields.String(required=True, validate=validate.Length(1, 200))
    recipient_address = Multiline(required=True, validate=validate.Length(1, 1000))
    shipped_on = fields.Date(
        load_default=None,
        metadata={
            "description": "the day the parcel left (default: today where the biobank is); not "
            "in the future"
        },
    )


class DiscrepancyIn(Schema):
    barcode = fields.String(required=True, validate=BARCODE)
    note = fields.String(required=True, validate=REASON)


class ReceiveIn(Schema):
    note = fields.String(load_default=None, validate=REASON)
    discrepancies = fields.List(fields.Nested(DiscrepancyIn), load_default=list)


class ConsumedIn(Schema):
    barcodes = fields.List(
        fields.String(validate=BARCODE), required=True, validate=validate.Length(1, 1000)
    )
    note = fields.String(load_default=None, validate=REASON)


class ReturnIn(PickIn):
    box = fields.String(required=True, validate=BARCODE)
    position = fields.String(load_default=None, validate=validate.Length(1, 8))
    reason = fields.String(load_default=None, validate=REASON)


# --- out --------------------------------------------------------------------------------


class TubeLocationOut(Schema):
    freezer = fields.String()
    path = fields.String()
    box = fields.String()
    position = fields.String(allow_none=True)
    taken_out_since = fields.AwareDateTime(allow_none=True)


class RequestTubeOut(Schema):
    INTERNAL = ("picked_at", "picked_by", "study_id")

    barcode = fields.String()
    patient = fields.String(
        allow_none=True,
        metadata={
            "description": "the patient's pseudonym in the request's sub-study (stable within "
            "it, unrelated across sub-studies); none for a dropped tube"
        },
    )
    study_id = fields.String(metadata={"description": "staff only"})
    timepoint = fields.String(allow_none=True)
    material = fields.String()
    aliquot_type = fields.String()
    volume_ml = fields.Decimal(allow_none=True)
    cell_count = fields.Integer(allow_none=True)
    sprec_code = fields.String(allow_none=True)
    freeze_thaw_count = fields.Integer()
    state = fields.String()
    reason = fields.String(allow_none=True)
    discrepancy = fields.String(allow_none=True)
    picked_at = fields.AwareDateTime(allow_none=True)
    picked_by = fields.String(allow_none=True)


class PickTubeOut(RequestTubeOut):
    location = fields.Nested(TubeLocationOut, allow_none=True)


class ShipmentOut(Schema):
    INTERNAL = ("shipped_by",)

    courier = fields.String()
    tracking_number = fields.String()
    condition = fields.String()
    recipient_name = fields.String()
    recipient_institution = fields.String()
    recipient_address = fields.String()
    shipped_by = fields.String()
    shipped_at = fields.AwareDateTime()
    received_by = fields.String(allow_none=True)
    received_at = fields.AwareDateTime(allow_none=True)
    receipt_note = fields.String(allow_none=True)


class RequestRecallOut(Schema):
    id = fields.Integer()
    barcode = fields.String()
    created_at = fields.AwareDateTime()
    acknowledged_at = fields.AwareDateTime(allow_none=True)
    acknowledged_by = fields.String(allow_none=True)
    destruction_reported_at = fields.AwareDateTime(allow_none=True)


class RequestSummaryOut(Schema):
    number = fields.String()
    substudy = fields.String(attribute="substudy_code")
    state = fields.String()
    title = fields.String()
    created_by = fields.String()
    created_at = fields.AwareDateTime()
    submitted_at = fields.AwareDateTime(allow_none=True)


class RequestOut(RequestSummaryOut):
    INTERNAL = (
        "decided_by",
        "allocated_by",
        "cancelled_by",
        "closed_by",
        "allocation",
        "matching_now",
        *(f"shipment.{f}" for f in ShipmentOut.INTERNAL),
        *(f"tubes.{f}" for f in RequestTubeOut.INTERNAL),
    )

    purpose = fields.String()
    criteria = fields.Dict()
    approved_criteria = fields.Dict(allow_none=True)
    decided_by = fields.String(allow_none=True)
    decided_at = fields.AwareDateTime(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    allocated_by = fields.String(allow_none=True)
    allocated_at = fields.AwareDateTime(allow_none=True)
    allocation = fields.Dict(
        attribute="allocation_summary",
        allow_none=True,
        metadata={"description": "patients asked for and found, aliquots reserved"},
    )
    cancelled_by = fields.String(allow_none=True)
    cancelled_at = fields.AwareDateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    closed_by = fields.String(allow_none=True)
    closed_at = fields.AwareDateTime(allow_none=True)
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "tubes by state in the request"},
    )
    matching_now = fields.Dict(
        allow_none=True,
        metadata={
            "description": "staff, before allocation: available consented tubes and patients"
        },
    )
    shipment = fields.Nested(ShipmentOut, allow_none=True)
    tubes = fields.List(fields.Nested(RequestTubeOut))
    recalls = fields.List(fields.Nested(RequestRecallOut))


class PickListOut(Schema):
    number = fields.String()
    state = fields.String()
    tubes = fields.List(fields.Nested(PickTubeOut))


class PickedOut(Schema):
    number = fields.Function(lambda p: p.request.number)
    state = fields.Function(lambda p: p.request.state)
    tube = fields.Nested(PickTubeOut)
    remaining = fields.Integer(metadata={"description": "tubes still to pick"})


class ReleasedOut(Schema):
    number = fields.Function(lambda r: r.request.number)
    state = fields.Function(lambda r: r.request.state)
    released = fields.Integer(metadata={"description": "tubes made available again"})
    put_back = fields.List(
        fields.String(),
        metadata={"description": "tubes picked already: put them back in their boxes"},
    )


class ShippedOut(Schema):
    number = fields.Function(lambda s: s.request.number)
    state = fields.Function(lambda s: s.request.state)
    shipped = fields.Integer()
    dropped = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "tubes the consent gate refused, and why"},
    )
