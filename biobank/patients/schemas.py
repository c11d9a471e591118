"""Patient schemas: registration, clinical update, MRD, risk group, output."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.patients.models import DIAGNOSES, PREDNISONE_RESPONSES, RISK_GROUPS, SEXES
from biobank.patients.service import pending_facts
from biobank.reference.schemas import code_field
from biobank.schema import PatchSchema, Schema

DAY8_DATE = {
    "description": "the day of the day-8 blood count; without it the schedule's "
    "day 8 after diagnosis dates a risk change it causes"
}

STUDY_ID = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$",
    error="a pseudonymous study code: letters, digits, '-' or '_'",
)
AGE_LIMIT = validate.Range(
    min=0,
    max=365,
    error="Interfant-21 enrols infants aged 0 to 365 days at diagnosis; older children "
    "are excluded by the trial",
)


class PatientIn(Schema):
    study_id = fields.String(required=True, validate=STUDY_ID)
    site = code_field(required=True)
    sex = fields.String(required=True, validate=validate.OneOf(SEXES))
    diagnosis = fields.String(required=True, validate=validate.OneOf(DIAGNOSES))
    fusion_partner = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={"description": "KMT2A fusion partner, e.g. AFF1"},
    )
    diagnosis_date = fields.Date(required=True)
    age_at_diagnosis_days = fields.Integer(required=True, validate=AGE_LIMIT)
    wbc_at_diagnosis = fields.Decimal(
        places=2,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, max=5000),
        metadata={"description": "×10⁹/L"},
    )
    day8_blasts_per_ul = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=0, max=10_000_000)
    )
    day8_date = fields.Date(allow_none=True, load_default=None, metadata=DAY8_DATE)
    prednisone_response = fields.String(
        load_default="unknown", validate=validate.OneOf(PREDNISONE_RESPONSES)
    )


class PatientPatch(PatchSchema):
    sex = fields.String(validate=validate.OneOf(SEXES))
    fusion_partner = fields.String(validate=validate.Length(1, 64))
    wbc_at_diagnosis = fields.Decimal(
        places=2, allow_none=True, validate=validate.Range(min=0, max=5000)
    )
    day8_blasts_per_ul = fields.Integer(allow_none=True, validate=validate.Range(min=0))
    day8_date = fields.Date(allow_none=True, metadata=DAY8_DATE)
    prednisone_response = fields.String(validate=validate.OneOf(PREDNISONE_RESPONSES))
    reason = fields.String(required=True, validate=validate.Length(1, 200))


class PatientQuery(Schema):
    site = code_field()
    risk_group = fields.String(validate=validate.OneOf(RISK_GROUPS))
    diagnosis = fields.String(validate=validate.OneOf(DIAGNOSES))


class RiskChangeIn(Schema):
    risk_group = fields.String(required=True, validate=validate.OneOf(RISK_GROUPS))
    effective_date = fields.Date(required=True)
    reason = fields.String(required=True, validate=validate.Length(1, 200))
    override = fields.Boolean(
        load_default=False,
        metadata={
            "description": "move HR back to MR against the protocol's one-way escalation "
            "(without it that is a 409 saying why); the warning is kept"
        },
    )


class RiskChangeOut(Schema):
    previous = fields.String(allow_none=True)
    risk_group = fields.String()
    provisional = fields.Boolean(metadata={"description": "a deciding fact was unknown"})
    effective_date = fields.Date(metadata={"description": "the day of the clinical event"})
    reason = fields.String()
    override = fields.Boolean(metadata={"description": "a de-escalation against the one-way rule"})
    warning = fields.String(allow_none=True)
    actor = fields.String()
    recorded_at = fields.AwareDateTime(metadata={"description": "when it was entered"})


class MrdIn(Schema):
    timepoint = code_field(required=True)
    value_percent = fields.Decimal(
        required=True, places=4, as_string=False, validate=validate.Range(min=0, max=100)
    )
    method = fields.String(
        required=True,
        validate=validate.OneOf(
            ["PCR", "FLOW", "NGS"], error="PCR (Ig/TCR or fusion), FLOW or NGS"
        ),
    )
    measured_on = fields.Date(allow_none=True, load_default=None)


class MrdOut(Schema):
    timepoint = fields.Function(lambda r: r.timepoint.code)
    value_percent = fields.Decimal()
    method = fields.String()
    measured_on = fields.Date(allow_none=True)
    negative = fields.Function(
        lambda r: r.value_percent < 0.01 if r.value_percent is not None else None
    )


class PatientOut(Schema):
    study_id = fields.String()
    site = fields.Function(lambda p: p.site.code)
    sex = fields.String()
    diagnosis = fields.String()
    fusion_partner = fields.String()
    diagnosis_date = fields.Date()
    age_at_diagnosis_days = fields.Integer()
    wbc_at_diagnosis = fields.Decimal(allow_none=True)
    day8_blasts_per_ul = fields.Integer(allow_none=True)
    day8_date = fields.Date(allow_none=True)
    prednisone_response = fields.String()
    risk_group = fields.String()
    risk_provisional = fields.Boolean(
        metadata={
            "description": "true while a fact that could still make the patient HR is unknown"
        }
    )
    risk_pending = fields.Function(
        pending_facts,
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": "the unknown facts a provisional group waits for",
        },
    )
    risk_warning = fields.String(
        allow_none=True,
        metadata={
            "description": "the rule gives MR but escalation is one-way: a manager may override"
        },
    )
    created_at = fields.AwareDateTime()


class PatientDetailOut(PatientOut):
    risk_history = fields.List(fields.Nested(RiskChangeOut))
    mrd_results = fields.List(fields.Nested(MrdOut))


class TimelineMaterial(Schema):
    material = fields.String()
    state = fields.String(metadata={"enum": ["received", "missing", "pending", "not_applicable"]})
    samples = fields.List(fields.String())


class TimelineRow(Schema):
    timepoint = fields.String()
    name = fields.String()
    applies = fields.Boolean()
    window_start = fields.Date(allow_none=True)
    window_end = fields.Date(allow_none=True)
    window_passed = fields.Boolean()
    materials = fields.List(fields.Nested(TimelineMaterial))


class UnscheduledOut(Schema):
    barcode = fields.String()
    material = fields.String()
    collected_at = fields.AwareDateTime()
    reason = fields.String()


class TimelineOut(Schema):
    study_id = fields.String()
    risk_group = fields.String()
    timepoints = fields.List(fields.Nested(TimelineRow))
    unscheduled = fields.List(fields.Nested(UnscheduledOut))
