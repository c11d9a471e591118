"""Freezer fill over time: the positions used per freezer at each month's end are what the
boxes held at that moment, counted independently from the positions, month after month."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from reports_helpers import demo  # noqa: F401 (a fixture)
from sqlalchemy import select, text

from biobank.custody import service as custody
from biobank.reports.models import FillTally
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.samples.service import Numbering
from biobank.samples.states import DEPARTED
from biobank.storage import naming, operations
from biobank.storage import service as storage
from biobank.storage.models import Container, Position

ACTOR = "test"
SVG = "{http://www.w3.org/2000/svg}"

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


def _used_now(session):  # type: ignore[no-untyped-def]
    """freezer barcode → positions used now: the tubes (not departed) with a place in a box
    under it, found by walking each box up to its freezer in Python."""
    containers = {c.id: c for c in session.scalars(select(Container))}

    def freezer_of(box_id: int) -> str:
        node = containers[box_id]
        while node.parent_id is not None:
            node = containers[node.parent_id]
        return node.barcode

    return Counter(
        freezer_of(box)
        for box, status in session.execute(select(Position.box_id, Aliquot.status).join(Aliquot))
        if status not in DEPARTED
    )


def _mid_month(months_ago: int) -> dt.datetime:
    day = dt.datetime.now(dt.UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    for _ in range(months_ago):
        day = (day - dt.timedelta(days=1)).replace(day=1)
    return day.replace(day=min(10, dt.datetime.now(dt.UTC).day) if months_ago == 0 else 15)


@pytest.fixture
def at(monkeypatch):  # type: ignore[no-untyped-def]
    """at(moment): the services record what they do next at that moment."""

    def travel(moment: dt.datetime) -> None:
        for module in (operations, custody, samples):
            monkeypatch.setattr(module, "utcnow", lambda: moment)

    return travel


def _box(session, freezer, name, numbering):  # type: ignore[no-untyped-def]
    rack = storage.create_container(
        session, ACTOR, {"kind": "rack", "name": f"R {name}", "parent": freezer.barcode}, numbering
    )
    return storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": name}, numbering
    )


def _two_freezers(session, make_aliquots, numbering):  # type: ignore[no-untyped-def]
    """Two freezers at AU-SCH with a box each, and four tubes stored in the first box."""
    first, second = (
        storage.create_freezer(
            session,
            ACTOR,
            {"site": "AU-SCH", "name": name, "freezer_type": "mechanical-80", "room": "lab"},
            numbering,
        )
        for name in ("AU-1", "AU-2")
    )
    box_a, box_b = _box(session, first, "a", numbering), _box(session, second, "b", numbering)
    tubes = make_aliquots(4)
    operations.store_new(session, ACTOR, tubes, box_a, [None] * 4)
    session.commit()
    return first, second, box_a, box_b, tubes


def test_the_fill_of_each_freezer_month_by_month(demo, manager, make_aliquots, at):  # noqa: F811
    """Two freezers at AU-SCH over three months: tubes stored, one moved to the other
    freezer, one taken out (its place kept), one consumed, the taken-out one put back in the
    other freezer, a new tube stored on the consumed one's place. Each month's positions used,
    per freezer, are what the boxes held at that month's end; the months before are empty;
    the CSV is the JSON; the picture says the numbers."""
    numbering = Numbering()
    expected: dict[str, Counter] = {}
    at(_mid_month(2))
    first, second, box_a, box_b, tubes = _two_freezers(demo, make_aliquots, numbering)
    expected[_mid_month(2).strftime("%Y-%m")] = _used_now(demo)

    at(_mid_month(1))
    operations.move(demo, ACTOR, [operations.Target(tubes[0], box_b, 1, 1)])
    operations.take_out(demo, ACTOR, tubes[1])
    samples.change_status(demo, ACTOR, tubes[2], "consumed", "used up")
    demo.commit()
    expected[_mid_month(1).strftime("%Y-%m")] = _used_now(demo)

    at(_mid_month(0))
    kind = box_b.box_type
    operations.put_back(demo, ACTOR, tubes[1], box_b, naming.label(kind.scheme, kind.columns, 1, 2))
    consumed_at = demo.scalar(select(Position).where(Position.aliquot_id == tubes[2].id))
    late = make_aliquots(1)
    operations.relocate(
        demo,
        ACTOR,
        [operations.Target(late[0], box_a, consumed_at.row_no, consumed_at.col_no)],
        None,
    )
    demo.commit()
    expected[_mid_month(0).strftime("%Y-%m")] = _used_now(demo)

    start = _mid_month(3).date().replace(day=1)
    body = manager.get(
        f"/api/v1/reports/capacity?view=history&site=AU-SCH&from={start.isoformat()}"
    ).json
    got: dict[str, Counter] = {}
    for row in body["history"]:
        assert row["site"] == "AU-SCH"
        got.setdefault(row["month"], Counter())[row["freezer_barcode"]] = row["used"]
    assert sorted(got) == [start.strftime("%Y-%m"), *sorted(expected)]
    assert +got[start.strftime("%Y-%m")] == Counter()
    for month, counts in expected.items():
        assert +got[month] == +Counter(
            {k: v for k, v in counts.items() if k in (first.barcode, second.barcode)}
        ), month
    assert len({c[first.barcode] for c in expected.values()}) > 1  # the fill did change

    lines = list(
        csv.DictReader(
            io.StringIO(
                manager.get(
                    f"/api/v1/reports/capacity?view=history&site=AU-SCH&from={start.isoformat()}"
                    "&format=csv"
                ).get_data(as_text=True)
            )
        )
    )
    assert [(r["month"], r["freezer_barcode"], int(r["used"])) for r in lines] == [
        (r["month"], r["freezer_barcode"], r["used"]) for r in body["history"]
    ]
    svg = manager.get(
        f"/api/v1/reports/capacity?view=history&site=AU-SCH&from={start.isoformat()}&format=svg"
    )
    root = ET.fromstring(svg.get_data())
    desc = root.find(f"{SVG}desc")
    assert root.get("role") == "img" and desc is not None and desc.text
    final = expected[_mid_month(0).strftime("%Y-%m")]
    assert "AU-SCH AU-1: " in desc.text and f"{final[first.barcode]} in " in desc.text


def test_the_fill_ends_at_what_every_freezer_holds_now(demo, manager, as_role):  # noqa: F811
    """The whole trial: this month's positions used per freezer are the tubes in its boxes
    now; a user of another site asking for NL-PMC's history gets a 404, and a box type is
    no dimension of the history (422)."""
    now = _used_now(demo)
    body = manager.get("/api/v1/reports/capacity?view=history").json
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    assert {
        r["freezer_barcode"]: r["used"]
        for r in body["history"]
        if r["month"] == month and r["used"]
    } == +now
    assert sum(now.values()) > 0
    au = as_role("technician", sites=["AU-SCH"])
    assert au.get("/api/v1/reports/capacity?view=history&site=NL-PMC").status_code == 404
    assert au.get("/api/v1/reports/capacity?view=history").json["history"] == []
    response = manager.get("/api/v1/reports/capacity?view=history&box_type=9X9")
    assert response.status_code == 422 and "box_type" in response.json["errors"]["query"]


def test_the_trigger_keeps_what_the_migration_counts_from_the_log(demo, make_aliquots, at):  # noqa: F811
    """Tubes stored, moved between freezers, taken out, put back and consumed over two
    months: the fill tally the trigger kept is what the migration's backfill counts from
    the custody log."""
    numbering = Numbering()
    at(_mid_month(1))
    first, second, box_a, box_b, tubes = _two_freezers(demo, make_aliquots, numbering)
    at(_mid_month(0))
    operations.move(demo, ACTOR, [operations.Target(tubes[0], box_b, 1, 1)])
    operations.take_out(demo, ACTOR, tubes[1])
    kind = box_b.box_type
    operations.put_back(demo, ACTOR, tubes[1], box_b, naming.label(kind.scheme, kind.columns, 1, 2))
    samples.change_status(demo, ACTOR, tubes[2], "consumed", "used up")
    demo.commit()
    [path] = MIGRATIONS.glob("*_e6b8c4d2f012_fill_tally.py")
    spec = importlib.util.spec_from_file_location("fill_tally_migration", path)
    migration = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(migration)  # type: ignore[union-attr]
    counted = {
        (m, f): int(n)
        for m, f, n in demo.execute(text(migration.from_the_log(demo.get_bind().dialect.name)))
        if n
    }
    kept = {
        (m, f): n
        for m, f, n in demo.execute(select(FillTally.month, FillTally.freezer_id, FillTally.tubes))
        if n
    }
    assert kept == counted
    assert {f for _, f in kept} >= {first.id, second.id}


def test_a_custody_event_insert_builds_no_temporary_index(session):
    """SQLite: inserting a custody event runs the fill trigger without building a temporary
    index of event types (it built one for each IN list, on every row, events the trigger
    skips such as the CSV import's included); PostgreSQL builds none per row."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's way of running IN over constants")
    columns = "aliquot_id, sample_id, event_type, actor, occurred_at, new_values, prev_hash, hash"
    program = session.connection().exec_driver_sql(
        f"EXPLAIN INSERT INTO custody_event ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (None,) * 8,
    )
    assert "OpenEphemeral" not in {row[1] for row in program}
