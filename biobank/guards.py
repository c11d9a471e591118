"""Request guards: what every request is held to before a view reads it.

- The body: at most ``MAX_BODY_BYTES`` (a small default for JSON; a view may declare its
  own with ``body_limit``), refused with 413 before anything is read; a chunked body is cut
  off at the same limit while it is read.
- JSON bodies: nested at most ``MAX_JSON_DEPTH`` deep (400 beyond), checked on the raw text
  before any parser recurses into it.
- Path parameters, on every route, keep the text policy of ``biobank.inputs`` (422 naming
  the parameter); API operations refuse query parameters they do not declare (422 naming
  them, as unknown body fields are).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from biobank.db import F
from biobank.errors import DomainError, Invalid
from biobank.inputs import MAX_PATH_PARAMETER, bad_character

MAX_JSON_DEPTH = 400
_BODY_LIMIT = "biobank_body_limit"
# A JSON string, escapes included (unrolled, possessive: no backtracking); brackets inside
# strings are text, not nesting.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_AS_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # signed bytes: +1, -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BadRequest(DomainError):
    """The request cannot be read at all (malformed or too deeply nested JSON)."""

    status_code = 400


def body_limit(limit: int) -> Callable[[F], F]:
    """Declare a view's own body limit in bytes (an upload route), instead of MAX_BODY_BYTES."""

    def decorate(view: F) -> F:
        view.__dict__[_BODY_LIMIT] = limit
        return view

    return decorate


def _view() -> Any:
    return current_app.view_functions.get(request.endpoint) if request.endpoint else None


def _has_body() -> bool:
    # Read from the WSGI environment: most requests (every scan) have none, and this is
    # cheaper than Werkzeug's parsed headers.
    environ = request.environ
    return bool(environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING"))


def limit_body() -> None:
    """Before anything reads the body (the login check included): 413 when it is too large."""
    if not _has_body():
        return  # Werkzeug reads no body without Content-Length or Transfer-Encoding
    limit = getattr(_view(), _BODY_LIMIT, None) or current_app.config["MAX_BODY_BYTES"]
    request.max_content_length = limit  # Werkzeug cuts a chunked body off there too
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(
            f"the request body is larger than {limit:,} bytes, the most this endpoint accepts"
        )


def read_body() -> bytes:
    """The request body (kept for the parsers), 413 if a chunked one reaches the limit.

    Werkzeug stops reading a body without Content-Length at the limit and returns what it
    read: without this check the cut-off text would be parsed as if it were the body.
    """
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        raise RequestEntityTooLarge(
            f"the request body reaches {limit:,} bytes, the most this endpoint accepts"
        )
    return raw


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects deeper than ``limit`` (an opener never
    closed counts as well: a parser recurses into it before it finds the text cut short).

    Strings are dropped and the brackets kept as +1 / -1; the depth is the largest running
    sum. All of it runs in C: a megabyte of brackets is some tens of milliseconds.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # cannot nest deeper than it has brackets
    steps = _JSON_STRING.sub(b"", raw).translate(_AS_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", steps)), default=0) > limit


def check_json_depth() -> None:
    """A JSON body nested too deeply is a 400, before a recursive parser meets it."""
    if not _has_body() or not request.is_json:
        return
    try:
        raw = read_body()  # bounded by limit_body; webargs reads the cache
    except RequestEntityTooLarge as exc:
        _refuse(exc)
    if raw and json_depth_exceeds(raw, MAX_JSON_DEPTH):
        _refuse(
            BadRequest(
                f"the JSON body is nested too deep (more than {MAX_JSON_DEPTH} "
                "levels of arrays and objects)"
            )
        )


def _query_names(view: Any) -> frozenset[str] | None:
    """The query parameters an API operation declares (None: not an API operation)."""
    cached = getattr(view, "biobank_query_names", None)
    if cached is not None or not hasattr(view, "_apidoc"):
        return cached
    names: set[str] = set()
    for parameter in view._apidoc.get("arguments", {}).get("parameters", []):
        if parameter.get("in") == "query":
            schema = parameter["schema"]
            schema = schema() if isinstance(schema, type) else schema
            names |= {field.data_key or name for name, field in schema.load_fields.items()}
    if "pagination" in view._apidoc:
        names |= {"page", "page_size"}
    view.biobank_query_names = frozenset(names)
    return view.biobank_query_names


def _refuse(error: Exception) -> None:
    # A view that checks the bearer token in its own statement (the scan) has not run: the
    # token is checked now, so who asks is answered before what is wrong with the request.
    from biobank.auth.web import settle_by_lookup

    settle_by_lookup()
    raise error


def check_parameters() -> None:
    """Path parameters that break the text policy (any route: API, pages, FHIR), and query
    parameters an API operation does not declare: a 422 naming them.

    A path parameter's surrounding whitespace is the client's (a scanner ends a code with a
    newline): the rule holds for what is inside it.
    """
    for name, value in (request.view_args or {}).items():
        if not isinstance(value, str):
            continue
        why = bad_character(value.strip(" \t\r\n"))
        if why is None and len(value) > MAX_PATH_PARAMETER:
            why = f"is longer than {MAX_PATH_PARAMETER} characters"
        if why:
            _refuse(Invalid(f"{name} {why}", errors={"path": {name: [why]}}))
    if not request.environ.get("QUERY_STRING"):
        return
    known = _query_names(_view())
    if known is None:
        return  # pages and the FHIR API read their own query strings
    unknown = sorted(name for name in request.args if name not in known)
    if unknown:
        _refuse(
            Invalid(
                f"unknown query parameter{'s' if len(unknown) > 1 else ''}: "
                f"{', '.join(_shown(n) for n in unknown)}",
                errors={"query": {_shown(n): ["Unknown field."] for n in unknown}},
            )
        )


def _shown(name: str) -> str:
    # A name that breaks the policy is shown escaped: the error does not repeat the fault.
    return name if bad_character(name) is None else name.encode("unicode_escape").decode()


def check_request() -> None:
    """The checks that follow the login check (who asks is answered before what is wrong
    with the request): the JSON body's depth, the path and query parameters."""
    check_json_depth()
    check_parameters()
