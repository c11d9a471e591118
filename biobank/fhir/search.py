"""FHIR search parameters: what each search accepts, parsed and refused as FHIR servers do
(an unknown parameter, a malformed value or a ``_count`` out of range is a 400)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from biobank import clock
from biobank.fhir.outcome import FhirError

# Parameters any search takes: the page size, the page (an opaque cursor from a next link),
# and the format (JSON only).
COMMON = frozenset({"_count", "_cursor", "_format"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
SPECIMEN = COMMON | {"subject", "patient", "type", "status", "parent", "_lastUpdated"}
CONSENT = COMMON | {"patient", "subject"}
EVERYTHING = frozenset({"_format"})
EVALUATE = frozenset({"_format", "periodStart", "periodEnd"})
MAX_VALUE = 200

_DATE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class Interval:
    """A date parameter: the instants [start, end) its value names, and the comparison."""

    prefix: str
    start: dt.datetime
    end: dt.datetime


def check_params(args: MultiDict[str, str], allowed: frozenset[str]) -> None:
    """Refuse a parameter this search does not know, a repeated single one, control
    characters, an overlong value, or a format other than JSON."""
    for name in args:
        base = name.split(":", 1)[0]
        if base not in allowed:
            known = ", ".join(sorted(allowed))
            raise FhirError(
                400,
                f"unknown search parameter {name!r}; this search takes: {known}",
                code="not-supported",
                expression=name,
            )
        if ":" in name:
            raise FhirError(
                400, f"modifiers are not supported: {name!r}", code="not-supported", expression=name
            )
        for value in args.getlist(name):
            if len(value) > MAX_VALUE:
                raise FhirError(400, f"{name}: at most {MAX_VALUE} characters", expression=name)
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise FhirError(400, f"{name}: control characters are not allowed", expression=name)
    for name in ("_count", "_cursor", "_format", "subject", "patient", "parent", "type", "status"):
        if len(args.getlist(name)) > 1:
            raise FhirError(
                400,
                f"{name}: give it once (several values: separate them with commas)",
                expression=name,
            )
    fmt = args.get("_format")
    if fmt is not None and fmt not in JSON_FORMATS:
        raise FhirError(
            406,
            f"_format {fmt!r}: this server speaks application/fhir+json only",
            code="not-supported",
            expression="_format",
        )


def page_size(args: MultiDict[str, str], default: int, maximum: int) -> int:
    """``_count``: a whole number from 1 to ``maximum``."""
    raw = args.get("_count")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise FhirError(
            400,
            f"_count must be a whole number from 1 to {maximum}, not {raw!r}",
            expression="_count",
        )
    return int(raw)


def values(args: MultiDict[str, str], name: str) -> list[str] | None:
    """The comma-separated values of a token/reference parameter (None: not given)."""
    raw = args.get(name)
    if raw is None:
        return None
    found = [v.strip() for v in raw.split(",")]
    if not all(found):
        raise FhirError(400, f"{name}: empty value", expression=name)
    return found


def reference_id(value: str, resource_type: str, name: str) -> str:
    """The id in ``Type/id``, ``id`` or an absolute URL ending in ``Type/id``."""
    parts = value.rstrip("/").split("/")
    if len(parts) == 1:
        return parts[0]
    if parts[-2] != resource_type:
        raise FhirError(
            400, f"{name}: {value!r} is not a {resource_type} reference", expression=name
        )
    return parts[-1]


def token(value: str) -> tuple[str | None, str]:
    """``system|code``, ``|code`` or ``code`` → (system or None, code)."""
    if "|" in value:
        system, code = value.split("|", 1)
        return (system or None), code
    return None, value


def date_intervals(args: MultiDict[str, str], name: str) -> list[Interval]:
    """Every value of a date parameter (they all must hold), as instants."""
    return [_interval(value, name) for value in args.getlist(name)]


def _interval(value: str, name: str) -> Interval:
    match = _DATE.match(value)
    if match is None:
        raise FhirError(
            400,
            f"{name}: {value!r} is not a FHIR date (e.g. ge2025-01-31 or lt2025-01-31T12:00:00Z)",
            expression=name,
        )
    parts = match.groupdict()
    prefix = parts["prefix"] or "eq"
    if prefix not in {"eq", "gt", "lt", "ge", "le"}:
        raise FhirError(
            400,
            f"{name}: the prefix {prefix!r} is not supported (eq, gt, lt, ge, le)",
            code="not-supported",
            expression=name,
        )
    try:
        start, end = _bounds(parts)
    except ValueError as exc:
        raise FhirError(
            400, f"{name}: {value!r} is not a valid date ({exc})", expression=name
        ) from None
    return Interval(prefix, start, end)


def _bounds(parts: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    year = int(parts["year"])
    if parts["month"] is None:
        return _local(dt.date(year, 1, 1)), _local(dt.date(year + 1, 1, 1))
    month = int(parts["month"])
    if parts["day"] is None:
        first = dt.date(year, month, 1)
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        return _local(first), _local(following)
    day = dt.date(year, month, int(parts["day"]))
    if parts["hour"] is None:
        return _local(day), _local(day + dt.timedelta(days=1))
    if parts["zone"] is None:
        raise ValueError("a time needs its zone (Z or ±hh:mm)")
    zone = dt.UTC if parts["zone"] == "Z" else dt.datetime.strptime(parts["zone"], "%z").tzinfo
    fraction = (parts["fraction"] or "").ljust(6, "0")[:6]
    start = dt.datetime(
        year,
        day.month,
        day.day,
        int(parts["hour"]),
        int(parts["minute"]),
        int(parts["second"] or 0),
        int(fraction or 0),
        tzinfo=zone,
    )
    step = (
        dt.timedelta(minutes=1)
        if parts["second"] is None
        else dt.timedelta(microseconds=1)
        if parts["fraction"]
        else dt.timedelta(seconds=1)
    )
    return start.astimezone(dt.UTC), (start + step).astimezone(dt.UTC)


def _local(day: dt.date) -> dt.datetime:
    # A date without a time is a day where the biobank is (FHIR: the server's zone).
    return clock.start_of(day)
