"""Temperature excursions: the tubes that were inside during it, from the custody history."""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace

import pytest

from biobank.samples import service as samples
from biobank.storage import operations, service
from biobank.storage.operations import Target

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()


def now() -> dt.datetime:
    """The current time, a little apart from the events around it."""
    time.sleep(0.01)
    moment = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    return moment


@pytest.fixture
def freezers(session):  # type: ignore[no-untyped-def]
    """A −80 °C freezer with two boxes and an LN2 tank with two boxes."""
    minus80 = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    tank = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "LN2-01", "freezer_type": "ln2-vapour"},
        NUMBERING,
    )
    boxes = [
        service.create_box(
            session, ACTOR, {"box_type": "9X9", "parent": parent.barcode, "name": name}, NUMBERING
        )
        for parent, name in ((minus80, "A"), (minus80, "B"), (tank, "C"), (tank, "D"))
    ]
    session.commit()
    return SimpleNamespace(minus80=minus80, tank=tank, boxes=boxes)


@pytest.fixture
def history(session, freezers, make_aliquots):  # type: ignore[no-untyped-def]
    """Tubes coming and going around an excursion of the −80 °C freezer."""
    a80, b80, c_ln2, d_ln2 = freezers.boxes
    t = SimpleNamespace(**dict(zip("abcdeghi", make_aliquots(8), strict=True)))

    def put(tube, box, row):  # type: ignore[no-untyped-def]
        operations.relocate(session, ACTOR, [Target(tube, box, row, 1)])

    for tube, box, row in (
        (t.a, a80, 1),
        (t.b, a80, 2),
        (t.d, a80, 4),
        (t.g, a80, 5),
        (t.i, a80, 6),
        (t.c, c_ln2, 1),
        (t.h, d_ln2, 1),
    ):
        put(tube, box, row)
    put(t.b, c_ln2, 2)  # left before the excursion
    operations.take_out(session, ACTOR, t.g)  # out during the excursion
    samples.change_status(session, ACTOR, t.i, "destroyed", "cracked")  # gone before it
    session.commit()
    start = now()
    put(t.c, b80, 3)  # came in during it
    put(t.d, c_ln2, 4)  # left during it
    service.move_container(session, ACTOR, d_ln2, freezers.minus80)  # a box came in
    session.commit()
    end = now()
    put(t.e, b80, 5)  # came in after it
    operations.put_back(session, ACTOR, t.g)
    session.commit()
    return SimpleNamespace(tubes=t, start=start, end=end)


def test_the_tubes_inside_during_the_excursion_are_flagged(tech, freezers, history):
    """In at the start, came in, left during it, in a box moved in: flagged; the others
    (left before, out, destroyed, came in after) are not, wherever they are now."""
    t = history.tubes
    response = tech.post(
        f"/api/v1/freezers/{freezers.minus80.barcode}/excursions",
        json={
            "started_at": history.start.isoformat(),
            "ended_at": history.end.isoformat(),
            "peak_celsius": "-41.5",
            "note": "compressor failure",
        },
    )
    assert response.status_code == 201, response.json
    flagged = {a["barcode"] for a in response.json["aliquots"]}
    assert flagged == {t.a.barcode, t.c.barcode, t.d.barcode, t.h.barcode}
    assert response.json["peak_celsius"] == -41.5
    card = tech.get(f"/api/v1/scan/{t.d.barcode}").json
    assert card["location"]["path"].startswith("NL-PMC / LN2-01")  # it is elsewhere now
    [note] = card["conditions"]
    assert "F-80-01" in note["note"] and "-41.5 °C" in note["note"]
    assert card["recent_events"][0]["event_type"] == "condition_noted"
    assert tech.get(f"/api/v1/scan/{t.e.barcode}").json["conditions"] == []
    grid = tech.get(f"/api/v1/boxes/{freezers.boxes[0].barcode}/map").json["positions"]
    assert grid[0]["aliquot"]["condition"] is True  # a, at A1
    listed = tech.get(f"/api/v1/freezers/{freezers.minus80.barcode}/excursions").json
    assert [e["id"] for e in listed] == [response.json["id"]]
    shown = tech.get(f"/api/v1/excursions/{response.json['id']}").json
    assert len(shown["aliquots"]) == 4


def test_an_excursion_of_the_other_freezer_flags_its_own_tubes(tech, freezers, history):
    """The LN2 tank held b, c (until moved), d (from the move), h (until its box moved)."""
    t = history.tubes
    response = tech.post(
        f"/api/v1/freezers/{freezers.tank.barcode}/excursions",
        json={
            "started_at": history.start.isoformat(),
            "ended_at": history.end.isoformat(),
            "peak_celsius": "-120",
        },
    )
    assert {a["barcode"] for a in response.json["aliquots"]} == {
        t.b.barcode,
        t.c.barcode,
        t.d.barcode,
        t.h.barcode,
    }


@pytest.mark.parametrize(
    ("shift", "field"),
    [
        ({"ended_at": -2}, "ended_at"),  # ends before it starts
        ({"ended_at": +48}, "ended_at"),  # ends in the future
    ],
)
def test_impossible_excursions_are_422s(tech, freezers, shift, field):
    """End before start, or in the future: 422 naming the field."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    end = start + dt.timedelta(hours=shift["ended_at"])
    response = tech.post(
        f"/api/v1/freezers/{freezers.minus80.barcode}/excursions",
        json={"started_at": start.isoformat(), "ended_at": end.isoformat(), "peak_celsius": "-50"},
    )
    assert response.status_code == 422
    assert field in response.json["errors"]["json"]


def test_an_excursion_belongs_to_a_freezer(tech, freezers):
    """A box is no freezer (422); an unknown excursion is a 404."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    body = {
        "started_at": start.isoformat(),
        "ended_at": (start + dt.timedelta(hours=1)).isoformat(),
        "peak_celsius": "-50",
    }
    box = freezers.boxes[0]
    assert tech.post(f"/api/v1/freezers/{box.barcode}/excursions", json=body).status_code == 422
    assert tech.get("/api/v1/excursions/999999").status_code == 404
    assert tech.get("/api/v1/excursions/x").status_code == 404
