"""The reports' query parameters and JSON answers (In / Out kept apart)."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.patients.models import RISK_GROUPS
from biobank.requests.models import STATES
from biobank.schema import Schema

FORMATS = ("json", "csv", "svg")
CODE = validate.Length(1, 32)


class FormatQuery(Schema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(FORMATS),
        metadata={
            "description": "json (the table), csv (the table as a file) or svg (the picture, "
            "with its text alternative in <title> and <desc>)"
        },
    )


class PlaceQuery(FormatQuery):
    site = fields.String(
        validate=CODE,
        metadata={"description": "one site's code (404 when it is not one of the asker's sites)"},
    )
    country = fields.String(
        validate=validate.Regexp(r"^[A-Za-z]{2}$"),
        metadata={"description": "the sites of one country (ISO 3166-1 alpha-2)"},
    )


class ReportRangeQuery(FormatQuery):
    start = fields.Date(
        data_key="from",
        metadata={
            "description": "first day, inclusive (default: a year before `to`, not before the "
            "trial opened)"
        },
    )
    end = fields.Date(
        data_key="to", metadata={"description": "last day, inclusive (default: today)"}
    )


class CompletenessQuery(PlaceQuery):
    risk_group = fields.String(validate=validate.OneOf(RISK_GROUPS))
    material = fields.String(validate=CODE, metadata={"description": "a material's code"})
    page = fields.Integer(
        load_default=1,
        validate=validate.Range(1, 100_000),
        metadata={"description": "the page of the patients' matrix (the summary covers them all)"},
    )
    per_page = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    picture = fields.String(
        load_default="summary",
        validate=validate.OneOf(("summary", "matrix")),
        metadata={
            "description": "format=svg: summary (per timepoint and material) or matrix (the "
            "page's patients × timepoints, each cell linked to the patient)"
        },
    )


class CapacityQuery(ReportRangeQuery, PlaceQuery):
    view = fields.String(
        load_default="summary",
        validate=validate.OneOf(("summary", "empty", "defrag", "history")),
        metadata={
            "description": "summary (per site, freezer and box type), empty (every free "
            "position), defrag (boxes that could be merged) or history (positions "
            "used per freezer at each month's end, from `from` to `to`); the "
            "summary and the history have a picture"
        },
    )
    box_type = fields.String(
        validate=CODE, metadata={"description": "a box type's code (not for view=history)"}
    )


class RequestsQuery(ReportRangeQuery):
    pass


class InventoryQuery(ReportRangeQuery, PlaceQuery):
    material = fields.String(validate=CODE, metadata={"description": "a material's code"})
    aliquot_type = fields.String(validate=CODE, metadata={"description": "an aliquot type's code"})


# --- answers -------------------------------------------------------------------------------


class CompletenessSummary(Schema):
    timepoint = fields.String()
    material = fields.String()
    expected = fields.Integer(metadata={"description": "patient cells where it is expected"})
    received = fields.Integer()
    missing = fields.Integer(metadata={"description": "expected, not received, window passed"})
    not_yet_due = fields.Integer()
    received_unexpected = fields.Integer(
        metadata={"description": "received where the schedule does not expect it"}
    )


class CompletenessCell(Schema):
    timepoint = fields.String()
    material = fields.String()
    expected = fields.Boolean()
    state = fields.String(metadata={"enum": ["received", "missing", "not_yet_due"]})
    samples = fields.Integer()


class CompletenessRow(Schema):
    study_id = fields.String()
    site = fields.String()
    country = fields.String()
    risk_group = fields.String()
    cells = fields.List(fields.Nested(CompletenessCell))


class CompletenessOut(Schema):
    today = fields.Date()
    site = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    risk_group = fields.String(allow_none=True)
    material = fields.String(allow_none=True)
    patients = fields.Integer(metadata={"description": "patients covered"})
    page = fields.Integer()
    per_page = fields.Integer()
    summary = fields.List(fields.Nested(CompletenessSummary))
    rows = fields.List(
        fields.Nested(CompletenessRow),
        metadata={"description": "one page of patients, in study-id order, with their cells"},
    )


class CapacityReportRow(Schema):
    site = fields.String()
    freezer = fields.String()
    freezer_barcode = fields.String()
    box_type = fields.String()
    boxes = fields.Integer()
    positions = fields.Integer()
    occupied = fields.Integer()
    free = fields.Integer()
    loose = fields.Integer(metadata={"description": "tubes in boxes of unknown size"})
    fill_percent = fields.Float(allow_none=True)


class EmptyPosition(Schema):
    site = fields.String()
    freezer = fields.String()
    box = fields.String()
    box_name = fields.String()
    box_type = fields.String()
    position = fields.String()


class Merge(Schema):
    site = fields.String()
    freezer = fields.String()
    box_type = fields.String()
    box = fields.String()
    box_name = fields.String()
    occupied = fields.Integer()
    merge_into = fields.String()
    merge_into_name = fields.String()
    free_there = fields.Integer()


class FillRow(Schema):
    month = fields.String(metadata={"description": "YYYY-MM (UTC)"})
    site = fields.String()
    freezer = fields.String()
    freezer_barcode = fields.String()
    used = fields.Integer(metadata={"description": "positions used at the month's end"})


class CapacityReportOut(Schema):
    view = fields.String()
    start = fields.Date(metadata={"description": "view=history only"})
    end = fields.Date(metadata={"description": "view=history only"})
    summary = fields.List(fields.Nested(CapacityReportRow))
    history = fields.List(
        fields.Nested(FillRow),
        metadata={"description": "view=history only: every freezer and month"},
    )
    empty = fields.List(fields.Nested(EmptyPosition), metadata={"description": "view=empty only"})
    defrag = fields.List(fields.Nested(Merge), metadata={"description": "view=defrag only"})


class StateRow(Schema):
    state = fields.String(metadata={"enum": list(STATES)})
    requests = fields.Integer()
    under_7_days = fields.Integer()
    _7_to_30_days = fields.Integer(data_key="7_to_30_days", attribute="7_to_30_days")
    _30_to_90_days = fields.Integer(data_key="30_to_90_days", attribute="30_to_90_days")
    over_90_days = fields.Integer()
    oldest_days = fields.Float(allow_none=True)


class ShippedRow(Schema):
    substudy = fields.String()
    month = fields.String(metadata={"description": "YYYY-MM (UTC)"})
    shipments = fields.Integer()
    tubes = fields.Integer()


class TurnaroundRow(Schema):
    month = fields.String(metadata={"description": "month of shipment, YYYY-MM (UTC)"})
    shipments = fields.Integer()
    mean_days = fields.Float()
    longest_days = fields.Float()


class RequestsOut(Schema):
    start = fields.Date(data_key="from")
    end = fields.Date(data_key="to")
    by_state = fields.List(fields.Nested(StateRow))
    shipped = fields.List(fields.Nested(ShippedRow))
    turnaround = fields.List(
        fields.Nested(TurnaroundRow), metadata={"description": "days from approval to shipment"}
    )


class InventoryMonth(Schema):
    month = fields.String(metadata={"description": "YYYY-MM (UTC)"})
    received = fields.Integer()
    shipped = fields.Integer()
    returned = fields.Integer()
    consumed = fields.Integer()
    destroyed = fields.Integer()
    missing = fields.Integer()
    found = fields.Integer()
    in_stock = fields.Integer(metadata={"description": "tubes held at the month's end"})


class InventoryRow(InventoryMonth):
    material = fields.String()
    aliquot_type = fields.String()


class FreezeThawRow(Schema):
    freeze_thaw_count = fields.Integer()
    tubes = fields.Integer()


class InventoryOut(Schema):
    start = fields.Date(data_key="from")
    end = fields.Date(data_key="to")
    site = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    material = fields.String(allow_none=True)
    aliquot_type = fields.String(allow_none=True)
    months = fields.List(
        fields.Nested(InventoryMonth),
        metadata={"description": "every month of the range, all materials and types together"},
    )
    rows = fields.List(
        fields.Nested(InventoryRow),
        metadata={"description": "per month, material and aliquot type"},
    )
    freeze_thaw = fields.List(
        fields.Nested(FreezeThawRow),
        metadata={"description": "tubes held now per number of freeze-thaw cycles"},
    )
