"""The biobank's one clock: every "today" is the calendar day in ``BIOBANK_TIMEZONE``.

A consent, a withdrawal, a diagnosis and "not in the future" are dates where the biobank
is, not in UTC and not in the server's zone: the operating system's ``TZ`` changes nothing
here. Instants stay aware UTC datetimes (``now``); only their calendar day is local.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, has_app_context

DEFAULT_ZONE = "Europe/Amsterdam"  # the sponsor's zone (Princess Máxima Center, Utrecht)


@functools.cache
def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; ValueError naming it when there is none (kept once
    found: every "today" asks for it)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"BIOBANK_TIMEZONE: {name!r} is not an IANA time zone") from exc


def zone() -> ZoneInfo:
    """The biobank's zone: the app's ``TIMEZONE`` setting (default Europe/Amsterdam)."""
    name = current_app.config.get("TIMEZONE") if has_app_context() else None
    return parse_zone(name or DEFAULT_ZONE)


def now() -> dt.datetime:
    """The current instant, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def day_of(instant: dt.datetime) -> dt.date:
    """The biobank's calendar day at an aware instant."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: give every instant a time zone")
    return instant.astimezone(zone()).date()


def today() -> dt.date:
    """Today's date where the biobank is."""
    return day_of(now())


def start_of(day: dt.date) -> dt.datetime:
    """The first instant (aware, UTC) of a calendar day in the biobank's zone."""
    local = dt.datetime.combine(day, dt.time.min, tzinfo=zone())
    return local.astimezone(dt.UTC)
