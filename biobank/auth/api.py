"""Account endpoints."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import fields

from biobank.auth.permissions import requires
from biobank.auth.web import current_user
from biobank.schema import Schema

blp = Blueprint("auth", __name__, description="Who am I")


class MeOut(Schema):
    username = fields.String()
    role = fields.String()
    full_name = fields.String(allow_none=True)
    substudies = fields.List(fields.String(), attribute="substudy_codes")
    sites = fields.List(fields.String(), attribute="site_codes")


@blp.route("/me", methods=["GET"])
@blp.response(200, MeOut)
@requires("user:self")
def me() -> Any:
    """The authenticated user."""
    return current_user()
