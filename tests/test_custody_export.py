"""Audit export for inspectors: a tube's history, and every event of a date range."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from biobank.custody.service import record_events

DAY = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def tube(make_aliquots, session):  # type: ignore[no-untyped-def]
    """An aliquot with two more events, on 9, 10 and 11 March 2026."""
    aliquot = make_aliquots(n=1)[0]
    for offset, kind in ((-1, "checked"), (0, "thawed"), (1, "refrozen")):
        record_events(
            session,
            [
                {
                    "event_type": kind,
                    "aliquot_id": aliquot.id,
                    "reason": f"{kind}, day {offset}",
                    "new_values": {"note": 'ü, "quoted"'},
                }
            ],
            "tech-x",
            at=DAY + dt.timedelta(days=offset),
        )
    session.commit()
    return aliquot


def test_a_tubes_history_as_csv(manager, tube):
    """Header, one row per event oldest first, with the tube, its sample and the hashes."""
    response = manager.get(f"/api/v1/aliquots/{tube.barcode}/events/export?format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["event_type"] for r in rows] == ["aliquoted", "checked", "thawed", "refrozen"]
    assert {r["aliquot"] for r in rows} == {tube.barcode}
    assert {r["sample"] for r in rows} == {tube.sample.barcode}
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert json.loads(rows[2]["new_values"]) == {"note": 'ü, "quoted"'}
    assert rows[2]["occurred_at"] == "2026-03-10T12:00:00+00:00"


def test_a_tubes_history_as_json_says_whether_its_chain_is_intact(manager, tube):
    """The JSON export carries who exported it, when, and the chain's verification."""
    body = manager.get(f"/api/v1/aliquots/{tube.barcode}/events/export").json
    assert body["aliquot"] == tube.barcode
    assert body["exported_by"] == manager.username
    assert body["chain_intact"] is True and body["first_broken"] is None
    assert [e["event_type"] for e in body["events"]] == [
        "aliquoted",
        "checked",
        "thawed",
        "refrozen",
    ]
    assert body["events"][1]["reason"] == "checked, day -1"


def test_all_events_of_a_date_range(manager, tube):
    """from and to are UTC days, both included; other days are left out."""
    body = manager.get("/api/v1/custody/events?from=2026-03-10&to=2026-03-11").json
    assert [e["event_type"] for e in body["events"]] == ["thawed", "refrozen"]
    assert (body["from"], body["to"]) == ("2026-03-10", "2026-03-11")
    text = manager.get("/api/v1/custody/events?from=2026-03-09&to=2026-03-09&format=csv")
    rows = list(csv.DictReader(io.StringIO(text.get_data(as_text=True))))
    assert [(r["event_type"], r["aliquot"]) for r in rows] == [("checked", tube.barcode)]


def test_a_large_range_streams(manager, make_aliquots, session):
    """Thousands of events come back complete, in id order."""
    tubes = make_aliquots(n=50, volume="0.05")
    record_events(
        session,
        [{"event_type": "checked", "aliquot_id": t.id} for t in tubes for _ in range(60)],
        "bulk",
        at=DAY,
    )
    session.commit()
    response = manager.get("/api/v1/custody/events?from=2026-03-10&to=2026-03-10&format=csv")
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 3000
    assert [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "from=2026-03-10",
        "from=2026-03-11&to=2026-03-10",
        "from=yesterday&to=2026-03-10",
        "from=2026-03-10&to=2026-03-10&format=xml",
    ],
)
def test_bad_ranges_are_422(manager, query):
    """Missing, reversed or malformed days and unknown formats."""
    assert manager.get(f"/api/v1/custody/events?{query}").status_code == 422


def test_exports_are_for_managers_and_admins(tech, tube):
    """Technicians read events but do not export them."""
    assert tech.get(f"/api/v1/aliquots/{tube.barcode}/events/export").status_code == 403
    assert tech.get("/api/v1/custody/events?from=2026-03-10&to=2026-03-10").status_code == 403
