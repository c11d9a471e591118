"""The one clock: "today" is the calendar day in BIOBANK_TIMEZONE, whatever the server's TZ."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from biobank import clock, create_app


@pytest.fixture
def server_tz():
    """Set the process's TZ for a test (far east or west of UTC), restored afterwards."""
    saved = os.environ.get("TZ")

    def set_tz(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_tz
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize("server_zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
def test_the_biobank_day_follows_its_configured_zone_not_the_servers(app, server_tz, server_zone):
    """At 23:30 UTC the biobank in Amsterdam is already on the next day, in any server TZ."""
    server_tz(server_zone)
    app.config["TIMEZONE"] = "Europe/Amsterdam"
    instant = dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC)
    assert clock.day_of(instant) == dt.date(2026, 12, 6)
    app.config["TIMEZONE"] = "America/Los_Angeles"
    assert clock.day_of(instant) == dt.date(2026, 12, 5)


def test_the_first_instant_of_a_day_is_local_midnight(app):
    """A day in Amsterdam starts at 23:00 UTC the evening before (winter time)."""
    app.config["TIMEZONE"] = "Europe/Amsterdam"
    assert clock.start_of(dt.date(2026, 12, 6)) == dt.datetime(2026, 12, 5, 23, 0, tzinfo=dt.UTC)


def test_a_naive_instant_is_refused(app):
    """An instant without a zone has no calendar day."""
    with pytest.raises(ValueError):
        clock.day_of(dt.datetime(2026, 12, 5, 12, 0))


def test_an_unknown_zone_stops_the_app_at_start():
    """A misspelt BIOBANK_TIMEZONE is refused when the app is built, naming the setting."""
    with pytest.raises(ValueError, match="BIOBANK_TIMEZONE"):
        create_app({"TESTING": True, "DATABASE_URL": "sqlite://", "TIMEZONE": "Europe/Utrect"})
