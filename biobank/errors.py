"""Domain exceptions, and one JSON error shape for everything the API answers.

Services raise the exceptions below (no Flask there); the handlers registered by
``init_app`` turn them, database integrity errors and HTTP errors into
``{"code", "status", "message", "errors"}``.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from flask import Flask, jsonify
from sqlalchemy.exc import IntegrityError, OperationalError


class DomainError(Exception):
    """A rule of the biobank refused the request."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None,
                 errors: dict[str, Any] | None = None, location: str = "json") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if errors is None and field is not None:
            errors = {location: {field: [message]}}
        self.errors = errors


class NotFound(DomainError):
    """The object named does not exist (or is not visible to the asker)."""

    status_code = 404


class Conflict(DomainError):
    """The request clashes with the current state: a duplicate, an illegal transition."""

    status_code = 409


class Invalid(DomainError):
    """The request is well-formed but its content breaks a rule."""

    status_code = 422


def error_body(status_code: int, message: str | None = None,
               errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape."""
    body: dict[str, Any] = {"code": status_code, "status": HTTPStatus(status_code).phrase}
    if message:
        body["message"] = message
    if errors:
        body["errors"] = errors
    return body


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: ([\w.]+)")
_PG_KEY = re.compile(r"Key \((?P<cols>[^)]+)\)=")


def integrity_field(exc: IntegrityError) -> str | None:
    """Best effort: the column an integrity error is about, for the error message."""
    text = str(exc.orig)
    match = _SQLITE_UNIQUE.search(text)
    if match:
        return match.group(1).split(".")[-1]
    match = _PG_KEY.search(text)
    if match:
        return match.group("cols").split(",")[-1].strip()
    return None


def init_app(app: Flask) -> None:
    """Register the handlers that give every error the same JSON shape."""

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):  # type: ignore[no-untyped-def]
        return jsonify(error_body(exc.status_code, exc.message, exc.errors)), exc.status_code

    @app.errorhandler(IntegrityError)
    def _integrity_error(exc: IntegrityError):  # type: ignore[no-untyped-def]
        field = integrity_field(exc)
        if field:
            message = f"{field}: this value is already taken or refers to nothing"
            errors = {"json": {field: ["already exists or breaks a constraint"]}}
        else:
            message, errors = "the request breaks a database constraint", None
        return jsonify(error_body(409, message, errors)), 409

    @app.errorhandler(OperationalError)
    def _operational_error(exc: OperationalError):  # type: ignore[no-untyped-def]
        # SQLite lets one writer at a time; a writer that cannot get the lock is told to
        # retry rather than shown a crash. Any other database failure stays a 500.
        if "database is locked" not in str(exc.orig):
            raise exc
        response = jsonify(error_body(503, "the database is busy with another change; "
                                           "try again in a moment"))
        response.headers["Retry-After"] = "1"
        return response, 503
