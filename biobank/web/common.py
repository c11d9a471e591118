"""What the page views share: refusals as HTML, forms read by the API's own schemas, pieces
of pages for the pages' scripts, and ``may`` for templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, render_template, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from biobank.auth.permissions import allowed
from biobank.auth.web import optional_user
from biobank.csvsafe import to_csv
from biobank.errors import Conflict, DomainError, Invalid, integrity_field
from biobank.schema import Schema

# The pages' script sends this header when it wants a piece of a page to swap in.
FRAGMENT_HEADER = "X-Fragment"


def wants_fragment() -> bool:
    """Whether the page's script asked for a piece of a page rather than a whole one."""
    return request.headers.get(FRAGMENT_HEADER) == "1"


def may(action: str) -> bool:
    """Whether the logged-in user's role may do an action (pages offer only what works)."""
    user = optional_user()
    return user is not None and allowed(user.role, action)


def _flat(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        return [line for key, value in messages.items() for line in _flat(value, f"{prefix}{key}.")]
    problems = messages if isinstance(messages, list) else [messages]
    return [f"{prefix.rstrip('.')}: {' '.join(map(str, problems))}"]


def load_values(schema: Schema, data: dict[str, Any]) -> dict[str, Any]:
    """Values gathered from a form, read by the API's input schema: the same checks as the
    API, and a refusal is a 422 naming the fields."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise Invalid("; ".join(_flat(exc.messages)), errors={"form": exc.messages}) from None


def load_form(schema: Schema, form: Mapping[str, str]) -> dict[str, Any]:
    """A posted form read by the API's input schema; blank fields count as left out."""
    known = {f.data_key or name for name, f in schema.load_fields.items()}
    return load_values(
        schema, {key: value for key, value in form.items() if key in known and value.strip()}
    )


def refusal(exc: DomainError) -> ResponseReturnValue:
    """A rule refused what a page asked: the message in words, with the API's status."""
    if wants_fragment():
        return render_template("web/_refusal.html", error=exc.message), exc.status_code
    return render_template(
        "error.html", status=exc.status_code, message=exc.message
    ), exc.status_code


def _integrity(exc: IntegrityError) -> ResponseReturnValue:
    field = integrity_field(exc)
    return refusal(
        Conflict(
            f"{field or 'a value'} is already taken or refers to nothing: look again and retry"
        )
    )


def page_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint of pages: what its views refuse is shown as a page, not as JSON."""
    blueprint = Blueprint(name, import_name)
    blueprint.register_error_handler(DomainError, refusal)
    blueprint.register_error_handler(IntegrityError, _integrity)
    return blueprint


def install(app: Flask) -> None:
    """Give every template ``may(action)`` and ``bench_status(status, consent)``."""
    from biobank.storage.station import bench_status

    @app.context_processor
    def _page_helpers() -> dict[str, Any]:
        return {"may": may, "bench_status": bench_status}


def csv_download(name: str, header: list[str], rows: Any) -> Response:
    """A list as a CSV file, written by the safe CSV writer (formula cells as text)."""
    response = Response(to_csv(header, rows), mimetype="text/csv")
    response.charset = "utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response
