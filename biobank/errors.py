"""Domain exceptions, and one JSON error shape for everything the API answers.

Services raise the exceptions below (no Flask there); the handlers registered by
``init_app`` turn them, database integrity errors and HTTP errors into
``{"code", "status", "message", "errors"}``.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException


class DomainError(Exception):
    """A rule of the biobank refused the request."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: dict[str, Any] | None = None,
        location: str = "json",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if errors is None and field is not None:
            errors = {location: {field: [message]}}
        self.errors = errors


class Forbidden(DomainError):
    """The asker's role may do this kind of thing, but not this one: another's request,
    a part of the request the role may not do."""

    status_code = 403


class NotFound(DomainError):
    """The object named does not exist (or is not visible to the asker)."""

    status_code = 404


class Conflict(DomainError):
    """The request clashes with the current state: a duplicate, an illegal transition."""

    status_code = 409


class Invalid(DomainError):
    """The request is well-formed but its content breaks a rule."""

    status_code = 422


class UnsupportedMediaType(DomainError):
    """The body is not in a format this endpoint reads."""

    status_code = 415


def error_body(
    status_code: int, message: str | None = None, errors: dict[str, Any] | None = None
) -> dict[str, Any]:
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


def http_error_body(exc: HTTPException) -> dict[str, Any]:
    """The error shape for an HTTP error raised by Flask, Werkzeug or webargs (parsing).

    webargs' ``abort`` (flask-smorest's) carries a message and the field errors in ``data``.
    """
    data = getattr(exc, "data", None) or {}
    message = data.get("message") or exc.description
    errors = data.get("errors") or data.get("messages")
    return error_body(exc.code or 500, message, errors)


def wants_page() -> bool:
    """Whether a browser asks for a page (not the API): it is sent to log in, not given JSON."""
    return not request.path.startswith("/api/") and request.accept_mimetypes.accept_html


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    # Werkzeug's own headers (Allow on a 405, Retry-After...), but not its HTML type.
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    headers += list(((getattr(exc, "data", None) or {}).get("headers") or {}).items())
    if wants_page():  # a browser asking for a page gets one, as the login check does
        return (
            render_template("error.html", status=status, message=exc.description),
            status,
            headers,
        )
    return jsonify(http_error_body(exc)), status, headers


def init_app(app: Flask) -> None:
    """Register the handlers that give every error the same JSON shape."""

    # Flask's and Werkzeug's own errors (404, 405, 413...) and parsing errors: the one shape.
    app.register_error_handler(HTTPException, _http_error)

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError) -> ResponseReturnValue:
        return jsonify(error_body(exc.status_code, exc.message, exc.errors)), exc.status_code

    @app.errorhandler(IntegrityError)
    def _integrity_error(exc: IntegrityError) -> ResponseReturnValue:
        field = integrity_field(exc)
        if field:
            message = f"{field}: this value is already taken or refers to nothing"
            errors = {"json": {field: ["already exists or breaks a constraint"]}}
        else:
            message, errors = "the request breaks a database constraint", None
        return jsonify(error_body(409, message, errors)), 409

    @app.errorhandler(OperationalError)
    def _operational_error(exc: OperationalError) -> ResponseReturnValue:
        # SQLite lets one writer at a time; a writer that cannot get the lock is told to
        # retry rather than shown a crash.
        if "database is locked" in str(exc.orig):
            return _busy("the database is busy with another change; try again in a moment")
        # PostgreSQL ended this transaction to let a concurrent one through (a deadlock the
        # lock order of biobank.locking did not prevent, a serialization failure): nothing
        # of this request was kept, and sending it again is safe.
        if sqlstate(exc) in TRANSACTION_ROLLBACK:
            response = jsonify(error_body(409, CLASHED))
            response.headers["Retry-After"] = "1"
            return response, 409
        if database_unavailable(exc):
            return _busy(UNAVAILABLE)
        raise exc

    @app.errorhandler(InterfaceError)
    def _interface_error(exc: InterfaceError) -> ResponseReturnValue:
        # The driver's connection was closed under it (psycopg: "the connection is closed").
        if database_unavailable(exc):
            return _busy(UNAVAILABLE)
        raise exc

    @app.errorhandler(PoolTimeout)
    def _pool_timeout(_exc: PoolTimeout) -> ResponseReturnValue:
        # Every pooled connection stayed in use for the pool's whole wait: the service is
        # busy, not broken; the client is told to retry.
        return _busy(
            "the service is busy: every database connection is in use; try again in a moment"
        )


# SQLSTATEs of a transaction the server rolled back for a concurrent one's sake.
TRANSACTION_ROLLBACK = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
CLASHED = (
    "another change to the same records got in the way; nothing was changed: "
    "look again and repeat the request"
)


UNAVAILABLE = (
    "the database is unavailable or did not answer; nothing was changed: try again in a moment"
)
# SQLSTATE classes of a server that cannot serve now: connection exception, insufficient
# resources (too many connections), operator intervention (shutting down, starting up,
# cancelled), system error.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
# SQLite: a file that cannot be opened or read (a missing volume, a full disk).
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk I/O error", "database or disk is full")


def database_unavailable(exc: DBAPIError) -> bool:
    """Whether a database error means the database cannot be reached or cannot serve now
    (a 503: the service cannot fix it, and the client may retry), rather than a fault of
    the request or of the code. psycopg gives no SQLSTATE for a connection that failed or
    dropped (refused, reset, closed by the server, timed out)."""
    if exc.connection_invalidated:
        return True
    code = sqlstate(exc)
    if getattr(exc.orig, "__module__", "").startswith("sqlite3"):
        return any(text in str(exc.orig) for text in _SQLITE_UNAVAILABLE)
    if code is None:
        return isinstance(exc, OperationalError | InterfaceError)
    return code.startswith(_UNAVAILABLE_CLASSES)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (PostgreSQL's; None when the driver gives none)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def _busy(message: str) -> ResponseReturnValue:
    response = jsonify(error_body(503, message))
    response.headers["Retry-After"] = "1"
    return response, 503
