"""The OpenAPI document's shared parts: the error shape, the answers every operation may
give, and the pagination header as it is sent.

``ErrorResponses`` is an apispec plugin: every operation registered (today's and any a
domain adds later) gets the error answers that the request hooks, the login check and the
database can give it, each with the one error shape. An operation documents what else it
may answer (a 404 without a path parameter, a second success) with ``alt_response``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from apispec import BasePlugin
from marshmallow import fields

from biobank.schema import Schema

_METHODS = {"get", "put", "post", "patch", "delete"}


class ErrorSchema(Schema):
    """The one error shape (``biobank.errors.error_body``)."""

    code = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    status = fields.String(required=True, metadata={"description": "its name"})
    message = fields.String(metadata={"description": "what is wrong, in words"})
    errors = fields.Dict(
        metadata={
            "description": "per location (json, query, path, form) and field, what is wrong with it"
        }
    )


def common_errors(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error answers an operation can give whatever it does."""
    statuses = [
        HTTPStatus.UNAUTHORIZED,  # no valid token or session
        HTTPStatus.FORBIDDEN,  # the role may not
        HTTPStatus.UNPROCESSABLE_ENTITY,  # unknown query parameter, bad path parameter
        HTTPStatus.SERVICE_UNAVAILABLE,  # the database is busy or unreachable: retry
    ]
    if "{" in path:
        statuses.append(HTTPStatus.NOT_FOUND)  # the object named does not exist
    if method != "get":
        statuses += [
            HTTPStatus.BAD_REQUEST,  # CSRF token missing (browser sessions)
            HTTPStatus.CONFLICT,
        ]  # clashes with the current state
    if "requestBody" in operation:
        statuses += [
            HTTPStatus.BAD_REQUEST,  # malformed or too deeply nested JSON
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ]
    return sorted(set(statuses))


class ErrorResponses(BasePlugin):
    """Adds the common error answers to every operation, as references to the shared
    responses flask-smorest registers for each status (with the error schema)."""

    def operation_helper(
        self,
        path: str | None = None,  # type: ignore[override]
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for method, operation in (operations or {}).items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in common_errors(path or "", method, operation):
                if int(status) not in responses and str(int(status)) not in responses:
                    responses[int(status)] = status.name


PAGINATION_HEADER = {
    "description": "Pagination metadata, as a JSON object in the header's text: total, "
    "total_pages, first_page, last_page, page, previous_page, next_page",
    "required": True,
    "schema": {"type": "string"},
    "example": '{"total": 42, "total_pages": 5, "first_page": 1, "last_page": 5, '
    '"page": 1, "next_page": 2}',
}


def also_answers(blp: Any, *statuses: int) -> Any:
    """Document error answers an operation gives beyond the common ones (``common_errors``),
    e.g. a 404 for a code named in the body or the query: ``@also_answers(blp, 404)``."""

    def decorate(view: Any) -> Any:
        for status in statuses:
            view = blp.alt_response(status, response=HTTPStatus(status).name)(view)
        return view

    return decorate
