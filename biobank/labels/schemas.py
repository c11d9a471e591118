"""Label rendering, printer and print-job input and output."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.labels.service import MAX_LABELS
from biobank.labels.symbols import DPIS
from biobank.labels.templates import FORMATS
from biobank.schema import PatchSchema, Schema

_format = fields.String(
    load_default="zpl",
    validate=validate.OneOf(FORMATS),
    metadata={"description": "zpl (one stream), svg or png (one sheet)"},
)
_template = fields.String(
    load_default=None,
    validate=validate.Length(min=1, max=64),
    metadata={"description": "a template name; default: the kind's"},
)
_dpi = fields.Integer(
    load_default=203,
    validate=validate.OneOf(DPIS),
    metadata={"description": "printer resolution (ZPL, PNG)"},
)


class LabelQuery(Schema):
    format = _format
    template = _template
    dpi = _dpi


class RenderIn(Schema):
    barcodes = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        required=True,
        validate=validate.Length(min=1, max=MAX_LABELS),
    )
    format = _format
    template = _template
    dpi = _dpi


class TemplateOut(Schema):
    name = fields.String()
    kind = fields.String()
    symbology = fields.String()
    description = fields.String()
    default = fields.Boolean()
    formats = fields.List(fields.String())
    dpi = fields.List(fields.Integer())
    placeholders = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        attribute="fields",
        data_key="fields",
        metadata={"description": "placeholders and their longest value"},
    )


class PrinterIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    host = fields.String(required=True, validate=validate.Length(min=1, max=200))
    port = fields.Integer(load_default=9100, validate=validate.Range(1, 65535))
    dpi = fields.Integer(load_default=203, validate=validate.OneOf(DPIS))
    template = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    site = fields.String(load_default=None, validate=validate.Length(min=1, max=32))


class PrinterPatch(PatchSchema):
    host = fields.String(validate=validate.Length(min=1, max=200))
    port = fields.Integer(validate=validate.Range(1, 65535))
    dpi = fields.Integer(validate=validate.OneOf(DPIS))
    template = fields.String(validate=validate.Length(min=1, max=64))
    site = fields.String(allow_none=True, validate=validate.Length(min=1, max=32))


class PrinterOut(Schema):
    name = fields.String()
    host = fields.String()
    port = fields.Integer()
    dpi = fields.Integer()
    template = fields.String()
    site = fields.Function(lambda p: p.site.code if p.site else None)
    created_by = fields.String()
    created_at = fields.AwareDateTime()


class PrintJobIn(Schema):
    printer = fields.String(required=True, validate=validate.Length(min=1, max=64))
    barcodes = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        required=True,
        validate=validate.Length(min=1, max=MAX_LABELS),
    )
    kind = fields.String(
        load_default="aliquot",
        validate=validate.OneOf(("aliquot", "box")),
        metadata={"description": "tube labels, or box labels"},
    )
    template = _template
    copies = fields.Integer(load_default=1, validate=validate.Range(1, 100))
    reason = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "required when a tube had a label before"},
    )


class PrintJobOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    printer = fields.Function(lambda job: job.printer.name)
    template = fields.String()
    dpi = fields.Integer()
    copies = fields.Integer()
    labels = fields.Integer()
    bytes_sent = fields.Integer()
    reprint = fields.Boolean()
    reason = fields.String(allow_none=True)
    actor = fields.String()
    printed_at = fields.AwareDateTime()
    barcodes = fields.List(fields.String())
