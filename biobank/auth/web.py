"""Who is asking: the bearer-token check that runs before every request."""

from __future__ import annotations

from flask import Flask, current_app, g, jsonify, request

from biobank.auth.models import User
from biobank.auth.permissions import PUBLIC, allowed
from biobank.auth.service import user_for_token
from biobank.db import get_session
from biobank.errors import error_body

# Endpoints of extensions (flask-smorest's spec and docs, static files) that are public.
_PUBLIC_ENDPOINTS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui", "static",
                     "swagger_ui_static"}
_MAX_AUTH_HEADER = 512


def current_user() -> User:
    """The authenticated user of this request."""
    return g.user


def current_actor() -> str:
    """The name recorded as actor on events: the authenticated user, never the body."""
    return g.user.username


def _deny(status: int, message: str):  # type: ignore[no-untyped-def]
    response = jsonify(error_body(status, message))
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="biobank"'
    return response, status


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if not header or len(header) > _MAX_AUTH_HEADER:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    return token if token.isascii() and token.isprintable() else None


def _permission_of(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    if endpoint in _PUBLIC_ENDPOINTS:
        return PUBLIC
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "biobank_permission", None)


def authenticate():  # type: ignore[no-untyped-def]
    """Authenticate and authorise the request; unmatched URLs still need a token."""
    permission = _permission_of(request.endpoint)
    if permission == PUBLIC:
        return None
    token = _bearer_token()
    user = user_for_token(get_session(), token) if token else None
    if user is None:
        return _deny(401, "a valid bearer token is required")
    g.user = user
    if request.endpoint is None:
        return None  # let routing answer 404 / 405, now that the asker is known
    if permission is None or not allowed(user.role, permission):
        return _deny(403, f"role {user.role!r} may not do this")
    return None


def init_app(app: Flask) -> None:
    """Install the check in front of every request."""
    app.before_request(authenticate)
