"""User administration endpoints (admins only): users, roles, scopes, tokens."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import fields, validate

from biobank.auth import admin
from biobank.auth.models import ROLES
from biobank.auth.permissions import requires
from biobank.auth.service import PASSWORD_MAX, PASSWORD_MIN
from biobank.auth.web import current_actor
from biobank.db import get_session
from biobank.errors import NotFound
from biobank.inputs import ascii_id
from biobank.schema import PatchSchema, Schema

blp = Blueprint("users", __name__, description="User administration (admins)")

_codes = fields.List(
    fields.String(validate=validate.Length(1, 32)), validate=validate.Length(max=100)
)


class UserIn(Schema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    full_name = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 200))
    substudies = fields.List(
        fields.String(validate=validate.Length(1, 32)),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "a researcher's sub-studies (one at least)"},
    )
    sites = fields.List(
        fields.String(validate=validate.Length(1, 32)),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "the sites the user is limited to (none: all)"},
    )
    password = fields.String(
        load_default=None,
        validate=validate.Length(PASSWORD_MIN, PASSWORD_MAX),
        metadata={"description": "for the pages; without it the user has tokens only"},
    )


class UserPatch(PatchSchema):
    role = fields.String(validate=validate.OneOf(ROLES))
    full_name = fields.String(allow_none=True, validate=validate.Length(1, 200))
    substudies = _codes
    sites = _codes
    reason = fields.String(validate=validate.Length(1, 200))


class DeactivateIn(Schema):
    reason = fields.String(load_default=None, validate=validate.Length(1, 200))


class TokenOut(Schema):
    id = fields.Integer()
    hint = fields.String(metadata={"description": "the token's first characters"})
    created_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime(allow_none=True)


class UserOut(Schema):
    username = fields.String()
    role = fields.String()
    full_name = fields.String(allow_none=True)
    substudies = fields.List(fields.String(), attribute="substudy_codes")
    sites = fields.List(fields.String(), attribute="site_codes")
    active = fields.Boolean()
    created_at = fields.AwareDateTime()
    tokens = fields.List(
        fields.Nested(TokenOut),
        attribute="live_tokens",
        metadata={"description": "live tokens, by their hint"},
    )


class TokenIn(Schema):
    days = fields.Integer(
        load_default=365,
        validate=validate.Range(1, admin.TOKEN_DAYS_MAX),
        metadata={"description": "lifetime in days (a token always expires)"},
    )


class IssuedTokenOut(Schema):
    username = fields.String()
    token = fields.String(
        metadata={"description": "the token itself: shown this once, only its SHA-256 is kept"}
    )
    id = fields.Integer()
    hint = fields.String()
    expires_at = fields.AwareDateTime()


class RevokedOut(Schema):
    revoked = fields.Integer()


def token_number(value: str) -> int:
    """A token id from a path: ASCII digits, else 404."""
    number = ascii_id(value)
    if number is None:
        raise NotFound(f"no token {value}")
    return number


@blp.route("/users", methods=["GET"])
@blp.response(200, UserOut(many=True))
@requires("user:admin")
def list_users() -> Any:
    """Every user: role, scopes, whether active, live tokens (by hint)."""
    return admin.list_users(get_session())


@blp.route("/users", methods=["POST"])
@blp.arguments(UserIn)
@blp.response(201, UserOut)
@requires("user:admin")
def create_user(values: dict[str, Any]) -> Any:
    """Create a user with a role and scopes (issue a token separately)."""
    return admin.create(get_session(), current_actor(), values)


@blp.route("/users/<username>", methods=["GET"])
@blp.response(200, UserOut)
@requires("user:admin")
def get_user(username: str) -> Any:
    """One user."""
    return admin.get_user(get_session(), username)


@blp.route("/users/<username>", methods=["PATCH"])
@blp.arguments(UserPatch)
@blp.response(200, UserOut)
@requires("user:admin")
def change_user(values: dict[str, Any], username: str) -> Any:
    """Change a user's role, name, sub-studies or sites (audited with old and new values)."""
    session = get_session()
    return admin.change(session, current_actor(), admin.get_user(session, username), values)


@blp.route("/users/<username>/deactivate", methods=["POST"])
@blp.arguments(DeactivateIn)
@blp.response(200, UserOut)
@requires("user:admin")
def deactivate_user(values: dict[str, Any], username: str) -> Any:
    """Deactivate a user: their tokens and browser sessions stop at once."""
    session = get_session()
    return admin.deactivate(
        session, current_actor(), admin.get_user(session, username), values["reason"]
    )


@blp.route("/users/<username>/tokens", methods=["POST"])
@blp.arguments(TokenIn)
@blp.response(201, IssuedTokenOut)
@requires("user:admin")
def issue_token(values: dict[str, Any], username: str) -> Any:
    """Issue a token for a user: the answer is the only time it is shown."""
    session = get_session()
    user = admin.get_user(session, username)
    token, row = admin.issue_token(session, current_actor(), user, values["days"])
    return {
        "username": user.username,
        "token": token,
        "id": row.id,
        "hint": row.hint,
        "expires_at": row.expires_at,
    }


@blp.route("/users/<username>/tokens/<token_id>/revoke", methods=["POST"])
@blp.response(200, TokenOut)
@requires("user:admin")
def revoke_token(username: str, token_id: str) -> Any:
    """Revoke one of a user's tokens."""
    session = get_session()
    return admin.revoke_token(
        session, current_actor(), admin.get_user(session, username), token_number(token_id)
    )


@blp.route("/users/<username>/tokens/revoke", methods=["POST"])
@blp.response(200, RevokedOut)
@requires("user:admin")
def revoke_tokens(username: str) -> Any:
    """Revoke every live token of a user."""
    session = get_session()
    count = admin.revoke_all(session, current_actor(), admin.get_user(session, username))
    return {"revoked": count}
