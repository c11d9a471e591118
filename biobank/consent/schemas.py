"""Consent schemas.

Who signed a form or asked for a withdrawal is for consent officers only: output schemas
that carry it list those fields in ``SIGNATORY``, and ``for_role`` leaves them out for
everyone whose role lacks ``consent:signatory`` (researchers never reach these schemas).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import fields, validate

from biobank import clock
from biobank.consent.models import OUTCOMES, SIGNATORIES
from biobank.reference.schemas import code_field
from biobank.schema import Multiline, PatchSchema, Schema

COMPONENT = validate.Length(1, 32)
REASON = validate.Length(1, 200)
# A form's code carries its version, dotted: IF21-BB-2.0-EN.
FORM_CODE = validate.Regexp(
    r"^[A-Z0-9][A-Z0-9._-]{0,31}$", error="use 1–32 capital letters, digits, '.', '-' or '_'"
)


class SubstudyIn(Schema):
    code = code_field(required=True)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    principal_investigator = fields.String(required=True, validate=validate.Length(1, 200))
    description = Multiline(allow_none=True, load_default=None, validate=validate.Length(max=5000))
    open = fields.Boolean(load_default=True)
    accepts_anonymised = fields.Boolean(
        load_default=False,
        metadata={"description": "whether anonymised tubes (no patient, no consent) may go to it"},
    )


class SubstudyPatch(PatchSchema):
    title = fields.String(validate=validate.Length(1, 200))
    principal_investigator = fields.String(validate=validate.Length(1, 200))
    description = Multiline(allow_none=True, validate=validate.Length(max=5000))
    open = fields.Boolean()
    accepts_anonymised = fields.Boolean()
    reason = fields.String(load_default=None, validate=REASON)


class SubstudyOut(Schema):
    code = fields.String()
    title = fields.String()
    principal_investigator = fields.String()
    description = fields.String(allow_none=True)
    open = fields.Boolean()
    accepts_anonymised = fields.Boolean()


class ComponentOut(Schema):
    code = fields.String()
    kind = fields.String(metadata={"enum": ["general", "substudy"]})
    title = fields.String()
    open = fields.Boolean()


class FormIn(Schema):
    code = fields.String(required=True, validate=FORM_CODE)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    version = fields.String(required=True, validate=validate.Length(1, 32))
    language = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z]{2}(-[A-Z]{2})?$", error="an ISO 639-1 language code, e.g. nl or nl-BE"
        ),
    )
    covers = fields.List(
        fields.String(validate=COMPONENT),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": '"storage", "data" and sub-study codes'},
    )


class FormOut(FormIn):
    pass


class ConsentIn(Schema):
    component = fields.String(
        required=True,
        validate=COMPONENT,
        metadata={"description": '"storage", "data" or a sub-study code'},
    )
    decision = fields.String(required=True, validate=validate.OneOf(["given", "declined"]))
    signed_on = fields.Date(required=True)
    form_version = fields.String(
        required=True,
        validate=FORM_CODE,
        metadata={"description": "a form's code, e.g. IF21-BB-2.0-EN"},
    )
    signed_by = fields.String(required=True, validate=validate.OneOf(SIGNATORIES))
    signatory_note = fields.String(load_default=None, validate=REASON)
    corrects = fields.Integer(
        load_default=None,
        metadata={
            "description": "the id of the entry this one corrects (a reason is then required)"
        },
    )
    reason = fields.String(load_default=None, validate=REASON)


def for_role(schema: type[Schema], sees_signatory: bool, **kwargs: Any) -> Schema:
    """The output schema for a role: the officer's whole, or without the signatory fields."""
    exclude = () if sees_signatory else getattr(schema, "SIGNATORY", ())
    return schema(exclude=exclude, **kwargs)


class ConsentEntryOut(Schema):
    SIGNATORY = ("signed_by", "signatory_note")

    id = fields.Integer()
    component = fields.String(attribute="component_code")
    decision = fields.String()
    effective_date = fields.Date()
    form_version = fields.Function(lambda e: e.form_version.code if e.form_version else None)
    language = fields.Function(lambda e: e.form_version.language if e.form_version else None)
    corrects = fields.Integer(attribute="corrects_id", allow_none=True)
    withdrawal = fields.Integer(attribute="withdrawal_id", allow_none=True)
    reason = fields.String(allow_none=True)
    recorded_by = fields.String()
    recorded_at = fields.AwareDateTime()
    signed_by = fields.String(metadata={"description": "consent officers only"})
    signatory_note = fields.String(allow_none=True, metadata={"description": "officers only"})


class ConsentHistoryOut(ConsentEntryOut):
    replaced_by = fields.Function(lambda e: e.corrected_by.id if e.corrected_by else None)


class PatientConsentOut(Schema):
    SIGNATORY = tuple(
        f"{part}.{name}" for part in ("current", "history") for name in ConsentEntryOut.SIGNATORY
    )

    study_id = fields.String()
    current = fields.List(fields.Nested(ConsentEntryOut))
    history = fields.List(fields.Nested(ConsentHistoryOut))


# --- withdrawals ------------------------------------------------------------------------


class WithdrawalIn(Schema):
    scope = fields.String(
        required=True,
        validate=COMPONENT,
        metadata={"description": '"storage", "data", "all" or a sub-study code'},
    )
    date = fields.Date(required=True)
    requested_by = fields.String(required=True, validate=validate.OneOf(SIGNATORIES))
    reason = fields.String(load_default=None, validate=REASON)
    outcome = fields.String(
        load_default=None,
        validate=validate.OneOf(OUTCOMES),
        metadata={
            "description": "when storage consent ends: destroy the tubes (the default) or "
            "anonymise them, where the patient's country allows it (else 422)"
        },
    )


class DryRunQuery(Schema):
    dry_run = fields.Boolean(load_default=False)


class WithdrawalOut(Schema):
    SIGNATORY = ("requested_by",)

    id = fields.Integer()
    scope = fields.String(attribute="scope_code")
    withdrawn_on = fields.Date()
    reason = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={"enum": [*OUTCOMES, None]})
    recorded_by = fields.String()
    recorded_at = fields.AwareDateTime()
    requested_by = fields.String(metadata={"description": "consent officers only"})


class TubeOut(Schema):
    barcode = fields.String()
    status = fields.String(metadata={"description": "the status before the withdrawal"})
    location = fields.Raw(allow_none=True)


class RecallTubeOut(Schema):
    barcode = fields.String()
    request_reference = fields.String(allow_none=True)
    recipient = fields.String(allow_none=True)


class EffectActionOut(Schema):
    barcode = fields.String(allow_none=True)
    description = fields.String()


class EndedOut(Schema):
    component = fields.String(attribute="component_code")
    given_on = fields.Date(attribute="effective_date")
    entry = fields.Integer(attribute="id")


class ImpactOut(Schema):
    SIGNATORY = ("withdrawal.requested_by", "requested_by")

    dry_run = fields.Boolean()
    summary = fields.String()
    study_id = fields.String()
    scope = fields.String()
    withdrawn_on = fields.Date()
    requested_by = fields.String()
    withdrawal = fields.Nested(WithdrawalOut, allow_none=True)
    ends = fields.List(fields.Nested(EndedOut))
    blocked = fields.List(fields.Nested(TubeOut))
    outcome = fields.String(allow_none=True, metadata={"enum": [*OUTCOMES, None]})
    destruction = fields.List(
        fields.Nested(TubeOut),
        metadata={"description": "tubes a technician must destroy, with their location"},
    )
    anonymisation = fields.List(
        fields.Nested(TubeOut),
        metadata={"description": "anonymised tubes a technician must relabel, with their location"},
    )
    recalls = fields.List(fields.Nested(RecallTubeOut))
    missing = fields.List(fields.Nested(TubeOut))
    stays_usable_for = fields.List(fields.String())
    effects = fields.Dict(keys=fields.String(), values=fields.List(fields.Nested(EffectActionOut)))


class TaskCounts(Schema):
    pending = fields.Integer()
    done = fields.Integer()
    cancelled = fields.Integer()


class RecallCounts(Schema):
    unacknowledged = fields.Integer()
    acknowledged = fields.Integer()
    destruction_reported = fields.Integer()
    cancelled = fields.Integer(
        metadata={"description": "cancelled unanswered when the withdrawal was corrected"}
    )


class CorrectionRecordOut(Schema):
    reason = fields.String()
    recorded_by = fields.String()
    recorded_at = fields.AwareDateTime()


class AnonymisationCounts(Schema):
    pending = fields.Integer()
    done = fields.Integer()


class WithdrawalSummaryOut(Schema):
    SIGNATORY = ("withdrawal.requested_by",)

    withdrawal = fields.Nested(WithdrawalOut)
    study_id = fields.String()
    tasks = fields.Nested(TaskCounts)
    anonymisation = fields.Nested(AnonymisationCounts)
    recalls = fields.Nested(RecallCounts)
    outstanding = fields.Boolean()
    corrected = fields.Nested(
        CorrectionRecordOut,
        attribute="correction",
        allow_none=True,
        metadata={"description": "set when the withdrawal was corrected as entered in error"},
    )


class OutstandingQuery(Schema):
    outstanding = fields.Boolean(load_default=False)


class TaskOut(Schema):
    id = fields.Integer(attribute="task.id")
    withdrawal = fields.Integer(attribute="task.withdrawal_id")
    study_id = fields.String()
    barcode = fields.String()
    aliquot_status = fields.String()
    location = fields.Raw(allow_none=True)
    state = fields.String(metadata={"enum": ["pending", "done", "cancelled"]})
    created_at = fields.AwareDateTime(attribute="task.created_at")
    completed_at = fields.AwareDateTime(attribute="task.completed_at", allow_none=True)
    completed_by = fields.String(attribute="task.completed_by", allow_none=True)


class TaskQuery(Schema):
    pending = fields.Boolean(load_default=True)


class RecallOut(Schema):
    id = fields.Integer(attribute="notice.id")
    withdrawal = fields.Integer(attribute="notice.withdrawal_id")
    barcode = fields.String()
    request_reference = fields.String(attribute="notice.request_reference", allow_none=True)
    recipient = fields.String(attribute="notice.recipient", allow_none=True)
    created_at = fields.AwareDateTime(attribute="notice.created_at")
    acknowledged_at = fields.AwareDateTime(attribute="notice.acknowledged_at", allow_none=True)
    acknowledged_by = fields.String(attribute="notice.acknowledged_by", allow_none=True)
    destruction_reported_at = fields.AwareDateTime(
        attribute="notice.destruction_reported_at", allow_none=True
    )
    cancelled_at = fields.AwareDateTime(attribute="notice.cancelled_at", allow_none=True)


class AnonymisationTaskOut(Schema):
    id = fields.Integer(attribute="task.id")
    withdrawal = fields.Integer(attribute="task.withdrawal_id")
    barcode = fields.String(
        allow_none=True,
        metadata={"description": "the tube to relabel; none once done (the task forgets the tube)"},
    )
    aliquot_status = fields.String(allow_none=True)
    location = fields.Raw(allow_none=True)
    state = fields.String(metadata={"enum": ["pending", "done"]})
    created_at = fields.AwareDateTime(attribute="task.created_at")
    completed_at = fields.AwareDateTime(attribute="task.completed_at", allow_none=True)
    completed_by = fields.String(attribute="task.completed_by", allow_none=True)


class CorrectionIn(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(1, 150),
        metadata={
            "description": "why the withdrawal was entered in error (kept with the correction)"
        },
    )


class CorrectionOut(Schema):
    SIGNATORY = tuple(f"restored.{name}" for name in ConsentEntryOut.SIGNATORY)

    summary = fields.String()
    study_id = fields.String()
    withdrawal = fields.Integer(attribute="withdrawal.id")
    corrected = fields.Nested(CorrectionRecordOut, attribute="record")
    restored = fields.List(
        fields.Nested(ConsentEntryOut),
        metadata={
            "description": "the correcting consent entries, one per component the withdrawal "
            "had ended"
        },
    )
    tubes_back_in_use = fields.Integer()
    tasks_cancelled = fields.Integer()
    already_destroyed = fields.List(
        fields.String(),
        metadata={"description": "tubes destroyed before the correction: they stay destroyed"},
    )
    recalls_cancelled = fields.Integer()
    recalls_already_answered = fields.Integer(
        metadata={"description": "recipients who had acknowledged the recall: tell them it is void"}
    )


class WithdrawalDetailOut(WithdrawalSummaryOut):
    destruction_tasks = fields.List(fields.Nested(TaskOut))
    anonymisation_tasks = fields.List(fields.Nested(AnonymisationTaskOut))
    recall_notices = fields.List(fields.Nested(RecallOut))


# --- the gate and the officer's lists ---------------------------------------------------


class Moment(fields.Field):
    """An ISO 8601 date (that day in the biobank's zone) or date-time (without an offset: in
    the biobank's zone), loaded as an aware instant."""

    default_error_messages = {
        "invalid": "an ISO 8601 date (2026-03-01) or date-time (2026-03-01T14:30:00+01:00)"
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not 10 <= len(value) <= 40:
            raise self.make_error("invalid")
        try:
            if len(value) == 10:
                return clock.start_of(dt.date.fromisoformat(value))
            moment = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=clock.zone())

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()


AT = {
    "description": "answer as of this moment (default: now): an ISO 8601 date or date-time; "
    "for inspectors (was this release allowed when it happened?) and planning",
    "type": "string",
    "example": "2026-03-01",
}


class CheckQuery(Schema):
    barcode = fields.String(required=True, validate=validate.Length(1, 64))
    substudy = code_field(required=True)
    at = Moment(load_default=None, metadata=AT)


class CheckOut(Schema):
    # Researchers: no consent entry ids (they would group tubes by patient).
    INTERNAL = ("justification",)

    barcode = fields.String()
    substudy = fields.String()
    allowed = fields.Boolean()
    reasons = fields.List(fields.String())
    justification = fields.List(
        fields.Integer(),
        metadata={
            "description": "staff only: the consent entries that allow the use: storage, then "
            "sub-study"
        },
    )
    basis = fields.String(
        allow_none=True,
        metadata={
            "enum": ["consent", "anonymised"],
            "description": "why the use is allowed: the patient's consent, or the tube is "
            "anonymised and the sub-study accepts anonymised material",
        },
    )


class BulkCheckIn(Schema):
    substudy = code_field(required=True)
    barcodes = fields.List(
        fields.String(validate=validate.Length(1, 64)),
        required=True,
        validate=validate.Length(1, 400),
    )
    at = Moment(load_default=None, metadata=AT)


class BulkCheckOut(Schema):
    INTERNAL = tuple(f"results.{name}" for name in CheckOut.INTERNAL)

    substudy = fields.String()
    allowed_count = fields.Integer()
    refused_count = fields.Integer()
    results = fields.List(fields.Nested(CheckOut))


class PseudonymOut(Schema):
    substudy = fields.String()
    pseudonym = fields.String()
    study_id = fields.String()


class ReconsentQuery(Schema):
    months = fields.Integer(load_default=6, validate=validate.Range(min=0, max=240))


class ReconsentOut(Schema):
    study_id = fields.String()
    site = fields.String()
    country = fields.String()
    majority_age = fields.Integer()
    majority_date = fields.Date()
    overdue = fields.Boolean()
    components = fields.List(fields.String())
