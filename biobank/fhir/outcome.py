"""FHIR answers: resources as ``application/fhir+json``, errors as ``OperationOutcome``."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

MEDIA_TYPE = "application/fhir+json"

# HTTP status → OperationOutcome issue type (FHIR R4 value set issue-type).
ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    422: "processing",
    429: "throttled",
    500: "exception",
    503: "transient",
}


class FhirError(Exception):
    """A refusal answered as an OperationOutcome (no Flask in the services that raise it)."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, expression: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or ISSUE_TYPES.get(status, "processing")
        self.expression = expression


def operation_outcome(
    status: int, message: str, code: str | None = None, expression: str | None = None
) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    issue: dict[str, Any] = {
        "severity": "error" if status >= 400 else "information",
        "code": code or ISSUE_TYPES.get(status, "processing"),
        "diagnostics": message,
    }
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    """A resource as the answer."""
    return Response(orjson.dumps(body), status=status, mimetype=MEDIA_TYPE)


def error_response(exc: FhirError) -> Response:
    """A refusal as the answer."""
    return fhir_response(
        operation_outcome(exc.status, exc.message, exc.code, exc.expression), exc.status
    )
