"""Freezer storage: the hierarchy, one tube per place, and every way a tube changes place."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from biobank.custody.models import CustodyEvent
from biobank.samples import barcodes
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.storage import service
from biobank.storage.models import Container, Position

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()


@pytest.fixture
def store(session):  # type: ignore[no-untyped-def]
    """NL-PMC / F-80-01 / Shelf 1 / Rack A with a 9×9 box, an SBS rack and a bag; and an
    LN2 tank with one tower."""
    service.load_default_box_types(session, ACTOR)
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    shelf = service.create_container(
        session, ACTOR, {"kind": "shelf", "name": "Shelf 1", "parent": freezer.barcode}, NUMBERING
    )
    rack = service.create_container(
        session, ACTOR, {"kind": "rack", "name": "Rack A", "parent": shelf.barcode}, NUMBERING
    )
    box = service.create_box(session, ACTOR, {"box_type": "9X9", "parent": rack.barcode}, NUMBERING)
    other = service.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": "Spare"}, NUMBERING
    )
    sbs = service.create_box(
        session,
        ACTOR,
        {"box_type": "SBS96", "parent": rack.barcode, "external_barcode": "TR00012345"},
        NUMBERING,
    )
    bag = service.create_box(
        session, ACTOR, {"box_type": "BAG", "parent": shelf.barcode, "name": "Bag 1"}, NUMBERING
    )
    tank = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "LN2-01", "freezer_type": "ln2-vapour"},
        NUMBERING,
    )
    tower = service.create_container(
        session, ACTOR, {"kind": "tower", "name": "Tower 1", "parent": tank.barcode}, NUMBERING
    )
    session.commit()
    return SimpleNamespace(
        freezer=freezer,
        shelf=shelf,
        rack=rack,
        box=box,
        other=other,
        sbs=sbs,
        bag=bag,
        tank=tank,
        tower=tower,
    )


def events(session, aliquot, kind=None):  # type: ignore[no-untyped-def]
    """An aliquot's custody events (of one type), oldest first."""
    query = select(CustodyEvent).where(CustodyEvent.aliquot_id == aliquot.id)
    if kind:
        query = query.where(CustodyEvent.event_type == kind)
    return list(session.scalars(query.order_by(CustodyEvent.id)))


def count(session, model) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model))


def place(tech, aliquot, box, position):  # type: ignore[no-untyped-def]
    return tech.post(
        f"/api/v1/aliquots/{aliquot.barcode}/place", json={"box": box.barcode, "position": position}
    )


# --- the hierarchy ---------------------------------------------------------------------


def test_a_freezer_shelf_rack_and_box_get_barcodes_and_a_readable_path(manager, tech):
    """Each container gets a checked service barcode; the box's path reads top to bottom."""
    response = manager.post(
        "/api/v1/freezers",
        json={"site": "NL-PMC", "name": "F-80-03", "freezer_type": "mechanical-80", "room": "B.2"},
    )
    assert response.status_code == 201, response.json
    freezer = response.json
    assert freezer["temperature_band"] == "-60to-85"  # MIABIS band from the type
    parent = freezer["barcode"]
    for kind, name in (("shelf", "Shelf 2"), ("rack", "Rack B")):
        response = tech.post(
            "/api/v1/containers", json={"kind": kind, "name": name, "parent": parent}
        )
        assert response.status_code == 201, response.json
        parent = response.json["barcode"]
    response = tech.post("/api/v1/boxes", json={"box_type": "10X10", "parent": parent})
    assert response.status_code == 201, response.json
    box = response.json
    assert box["barcode"].startswith("BX") and barcodes.check_ok(box["barcode"])
    assert parent.startswith("CT") and barcodes.check_ok(parent)
    assert box["path"] == f"NL-PMC / F-80-03 / Shelf 2 / Rack B / {box['barcode']}"
    assert (box["capacity"], box["occupied"], box["free"]) == (100, 0, 100)
    listed = tech.get("/api/v1/boxes").json
    assert box["barcode"] in {b["barcode"] for b in listed}
    shown = tech.get(f"/api/v1/containers/{freezer['barcode']}").json
    assert [c["name"] for c in shown["children"]] == ["Shelf 2"]


def test_box_types_with_grids_and_without(manager, tech, session):
    """A manager adds a 20×20 type; grid-free types have no rows; bad shapes are 422."""
    service.load_default_box_types(session, ACTOR)
    response = manager.post(
        "/api/v1/box-types",
        json={
            "code": "20X20",
            "name": "20×20 box",
            "rows": 20,
            "columns": 20,
            "scheme": "letter-number",
        },
    )
    assert response.status_code == 201, response.json
    assert response.json["capacity"] == 400
    bad = manager.post("/api/v1/box-types", json={"code": "X", "name": "x", "scheme": "numeric"})
    assert bad.status_code == 422 and "rows" in bad.json["errors"]["json"]
    assert (
        manager.post(
            "/api/v1/box-types",
            json={"code": "20X20", "name": "again", "rows": 2, "columns": 2, "scheme": "numeric"},
        ).status_code
        == 409
    )
    codes = {t["code"] for t in tech.get("/api/v1/box-types").json}
    assert {"9X9", "10X10", "SBS96", "BAG", "20X20"} <= codes


def test_who_may_do_what(as_role, store):
    """Technicians store tubes but register no freezers; researchers see no storage."""
    tech, researcher = as_role("technician"), as_role("researcher")
    body = {"site": "NL-PMC", "name": "F-2", "freezer_type": "mechanical-80"}
    assert tech.post("/api/v1/freezers", json=body).status_code == 403
    assert researcher.get("/api/v1/boxes").status_code == 403
    assert as_role("consent_officer").get("/api/v1/boxes").status_code == 200


def test_an_unknown_box_type_or_parent_is_a_422(tech, store, session):
    """Unknown type, unknown parent, a box as parent: 422 naming the field, nothing made."""
    before = count(session, Container)
    for body, field in (
        ({"box_type": "7X7", "parent": store.rack.barcode}, "box_type"),
        ({"box_type": "9X9", "parent": "CT99999999"}, "parent"),
        ({"box_type": "9X9", "parent": store.box.barcode}, "parent"),
    ):
        response = tech.post("/api/v1/boxes", json=body)
        assert response.status_code == 422, response.json
        assert field in response.json["errors"]["json"]
    assert count(session, Container) == before


def test_a_mistyped_container_code_is_a_422(tech, store):
    """A wrong check character on a box code says so, like on tube codes."""
    code = store.box.barcode
    wrong = code[:-1] + ("A" if code[-1] != "A" else "B")
    response = tech.get(f"/api/v1/boxes/{wrong}/map")
    assert response.status_code == 422
    assert "check character" in response.json["message"]


def test_a_container_cannot_go_into_itself_or_its_descendants(tech, store):
    """Rack into itself, shelf into its own rack, freezer anywhere: 422; nothing moves."""
    for moved, into in (
        (store.rack, store.rack),
        (store.shelf, store.rack),
        (store.freezer, store.tower),
        (store.rack, store.box),
    ):
        response = tech.post(
            f"/api/v1/containers/{moved.barcode}/move", json={"into": into.barcode}
        )
        assert response.status_code == 422, (moved.name, into.name, response.json)
    assert tech.get(f"/api/v1/containers/{store.rack.barcode}").json["path"] == (
        "NL-PMC / F-80-01 / Shelf 1 / Rack A"
    )


def test_sibling_names_are_unique(tech, store):
    """Two 'Rack A' on one shelf would make paths ambiguous: 409."""
    response = tech.post(
        "/api/v1/containers", json={"kind": "rack", "name": "Rack A", "parent": store.shelf.barcode}
    )
    assert response.status_code == 409


# --- one tube, one place ---------------------------------------------------------------


def test_placing_a_tube_records_where_it_is(tech, store, make_aliquots, session):
    """A01 and A1 are one place; the location, the event and the scan all show it."""
    [tube] = make_aliquots(1)
    response = place(tech, tube, store.box, "A01")
    assert response.status_code == 201, response.json
    location = response.json["location"]
    assert location["position"] == "A1" and location["box"] == store.box.barcode
    assert location["path"] == f"NL-PMC / F-80-01 / Shelf 1 / Rack A / {store.box.barcode}"
    [stored] = events(session, tube, "stored")
    assert stored.actor == tech.username
    assert stored.new_values["freezer_id"] == store.freezer.id
    assert stored.new_values["position"] == "A1"
    card = tech.get(f"/api/v1/scan/{tube.barcode}").json
    assert card["location"]["position"] == "A1"
    assert card["location"]["path"] == location["path"]
    assert card["conditions"] == []


def test_a_position_outside_the_grid_is_a_422(tech, store, make_aliquots, session):
    """Z99 in a 9×9 box: 422 naming position; nothing stored, no event."""
    [tube] = make_aliquots(1)
    before = (count(session, Position), count(session, CustodyEvent))
    response = place(tech, tube, store.box, "Z99")
    assert response.status_code == 422
    assert "outside this 9×9 box" in response.json["errors"]["json"]["position"][0]
    assert (count(session, Position), count(session, CustodyEvent)) == before


def test_an_occupied_position_is_a_409(tech, store, make_aliquots):
    """A second tube into A1 is refused, naming the tube that is there."""
    first, second = make_aliquots(2)
    assert place(tech, first, store.box, "A1").status_code == 201
    response = place(tech, second, store.box, "a01")
    assert response.status_code == 409
    assert first.barcode in response.json["message"]


def test_a_tube_has_one_place(tech, store, make_aliquots):
    """Placing a stored tube again is a 409: it must be moved."""
    [tube] = make_aliquots(1)
    assert place(tech, tube, store.box, "A1").status_code == 201
    assert place(tech, tube, store.other, "A1").status_code == 409


def test_the_database_itself_refuses_two_tubes_in_one_place_or_one_tube_in_two(
    store, make_aliquots, session
):
    """The unique constraints hold even for code that skips the service's checks."""
    first, second = make_aliquots(2)
    session.execute(
        insert(Position).values(aliquot_id=first.id, box_id=store.box.id, row_no=1, col_no=1)
    )
    for values in (
        {"aliquot_id": second.id, "box_id": store.box.id, "row_no": 1, "col_no": 1},
        {"aliquot_id": first.id, "box_id": store.other.id, "row_no": 2, "col_no": 2},
    ):
        with pytest.raises(IntegrityError), session.begin_nested():
            session.execute(insert(Position).values(**values))


@pytest.mark.parametrize("fate", ["destroyed", "consumed", "shipped"])
def test_tubes_that_left_cannot_be_placed(tech, store, make_aliquots, session, fate):
    """Destroyed, consumed or shipped: 409, and no place is taken."""
    [tube] = make_aliquots(1)
    if fate == "shipped":
        samples.change_status(session, ACTOR, tube, "reserved")
    samples.change_status(session, ACTOR, tube, fate, "test")
    session.commit()
    response = place(tech, tube, store.box, "A1")
    assert response.status_code == 409
    assert fate in response.json["message"]
    assert count(session, Position) == 0


def test_the_place_of_a_tube_that_left_can_be_taken(tech, store, make_aliquots, session):
    """A1 still recorded for a destroyed tube is freed (with an event) for a new tube."""
    old, new = make_aliquots(2)
    assert place(tech, old, store.box, "A1").status_code == 201
    samples.change_status(session, ACTOR, old, "destroyed", "cracked")
    session.commit()
    assert place(tech, new, store.box, "A1").status_code == 201
    [unstored] = events(session, old, "unstored")
    assert unstored.old_values["position"] == "A1"


def test_a_bag_holds_tubes_without_positions(tech, store, make_aliquots):
    """Grid-free: no position needed, and one given is a 422."""
    first, second = make_aliquots(2)
    response = place(tech, first, store.bag, None)
    assert response.status_code == 201, response.json
    assert response.json["location"]["position"] is None
    assert place(tech, second, store.bag, "A1").status_code == 422
    bag_map = tech.get(f"/api/v1/boxes/{store.bag.barcode}/map").json
    assert [t["barcode"] for t in bag_map["loose"]] == [first.barcode]


# --- moves -----------------------------------------------------------------------------


def test_moving_a_tube_logs_old_and_new_place(tech, store, make_aliquots, session):
    """One event names both places."""
    [tube] = make_aliquots(1)
    place(tech, tube, store.box, "A1")
    response = tech.post(
        f"/api/v1/aliquots/{tube.barcode}/move", json={"box": store.other.barcode, "position": "I9"}
    )
    assert response.status_code == 200, response.json
    [moved] = events(session, tube, "moved")
    assert (moved.old_values["box"], moved.old_values["position"]) == (store.box.barcode, "A1")
    assert (moved.new_values["box"], moved.new_values["position"]) == (store.other.barcode, "I9")


def test_a_bulk_move_swaps_tubes_at_once(tech, store, make_aliquots, session):
    """A1 ↔ A2 and a third tube to another box: one request, one event per tube."""
    a, b, c = make_aliquots(3)
    for tube, where in ((a, "A1"), (b, "A2"), (c, "A3")):
        assert place(tech, tube, store.box, where).status_code == 201
    response = tech.post(
        "/api/v1/storage/moves",
        json={
            "moves": [
                {"aliquot": a.barcode, "box": store.box.barcode, "position": "A2"},
                {"aliquot": b.barcode, "box": store.box.barcode, "position": "A1"},
                {"aliquot": c.barcode, "box": store.other.barcode, "position": "B1"},
            ]
        },
    )
    assert response.status_code == 200, response.json
    where = {
        t.barcode: tech.get(f"/api/v1/aliquots/{t.barcode}/location").json["location"]
        for t in (a, b, c)
    }
    assert where[a.barcode]["position"] == "A2" and where[b.barcode]["position"] == "A1"
    assert where[c.barcode]["box"] == store.other.barcode
    assert [len(events(session, t, "moved")) for t in (a, b, c)] == [1, 1, 1]


def test_a_bulk_move_with_one_bad_entry_changes_nothing(tech, store, make_aliquots, session):
    """The third move targets an occupied place: 409, and the first two did not happen."""
    a, b, c, d = make_aliquots(4)
    for tube, where in ((a, "A1"), (b, "A2"), (c, "A3"), (d, "A4")):
        place(tech, tube, store.box, where)
    before = count(session, CustodyEvent)
    response = tech.post(
        "/api/v1/storage/moves",
        json={
            "moves": [
                {"aliquot": a.barcode, "box": store.other.barcode, "position": "A1"},
                {"aliquot": b.barcode, "box": store.other.barcode, "position": "A2"},
                {"aliquot": c.barcode, "box": store.box.barcode, "position": "A4"},
            ]
        },
    )
    assert response.status_code == 409
    assert count(session, CustodyEvent) == before
    assert tech.get(f"/api/v1/aliquots/{a.barcode}/location").json["location"]["box"] == (
        store.box.barcode
    )
    unknown = tech.post(
        "/api/v1/storage/moves",
        json={"moves": [{"aliquot": "IF99999999X", "box": store.box.barcode, "position": "A9"}]},
    )
    assert unknown.status_code == 422 and "moves.0.aliquot" in unknown.json["errors"]["json"]


def test_moving_a_box_changes_one_row_and_logs_every_tube(
    tech, store, make_aliquots, session, count_queries
):
    """The box's parent changes; tube rows are untouched; each tube gets a 'moved' event
    with its new path and freezer."""
    tubes = make_aliquots(5)
    for index, tube in enumerate(tubes, 1):
        place(tech, tube, store.box, f"B{index}")
    with count_queries() as counted:
        response = tech.post(
            f"/api/v1/containers/{store.box.barcode}/move",
            json={"into": store.tower.barcode, "reason": "to LN2"},
        )
    assert response.status_code == 200, response.json
    assert response.json["path"] == f"NL-PMC / LN2-01 / Tower 1 / {store.box.barcode}"
    writes = [s for s in counted.statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1 and "storage_container" in writes[0]
    for tube in tubes:
        [moved] = events(session, tube, "moved")
        assert moved.old_values["freezer_id"] == store.freezer.id
        assert moved.new_values["freezer_id"] == store.tank.id
        assert moved.new_values["path"].startswith("NL-PMC / LN2-01 / Tower 1")
        assert moved.reason == "to LN2"
    card = tech.get(f"/api/v1/scan/{tubes[0].barcode}").json
    assert card["location"]["path"].startswith("NL-PMC / LN2-01")


def test_moving_a_rack_moves_its_boxes(tech, store, make_aliquots, session):
    """A rack with two boxes goes to the LN2 tank: both boxes' tubes follow."""
    a, b = make_aliquots(2)
    place(tech, a, store.box, "A1")
    place(tech, b, store.sbs, "H12")
    response = tech.post(
        f"/api/v1/containers/{store.rack.barcode}/move", json={"into": store.tower.barcode}
    )
    assert response.status_code == 200, response.json
    for tube in (a, b):
        location = tech.get(f"/api/v1/aliquots/{tube.barcode}/location").json["location"]
        assert location["path"].startswith("NL-PMC / LN2-01 / Tower 1 / Rack A / ")
    assert events(session, b, "moved")[0].new_values["position"] == "H12"


# --- out and back, thaw, missing -------------------------------------------------------


def test_a_tube_taken_out_keeps_its_place_until_put_back(tech, store, make_aliquots, session):
    """Out: the place is kept (409 for others); back: in the same place again."""
    tube, other = make_aliquots(2)
    place(tech, tube, store.box, "C3")
    response = tech.post(f"/api/v1/aliquots/{tube.barcode}/take-out", json={})
    assert response.status_code == 200, response.json
    assert response.json["location"]["taken_out"] is True
    assert tech.post(f"/api/v1/aliquots/{tube.barcode}/take-out", json={}).status_code == 409
    assert place(tech, other, store.box, "C3").status_code == 409
    moved = tech.post(
        f"/api/v1/aliquots/{tube.barcode}/move", json={"box": store.box.barcode, "position": "C4"}
    )
    assert moved.status_code == 409  # put it back instead
    response = tech.post(f"/api/v1/aliquots/{tube.barcode}/put-back", json={})
    assert response.status_code == 200, response.json
    assert response.json["location"]["taken_out"] is False
    assert response.json["location"]["position"] == "C3"
    kinds = [e.event_type for e in events(session, tube)][-3:]
    assert kinds == ["stored", "taken_out", "put_back"]
    assert events(session, tube, "taken_out")[0].new_values["freezer_id"] is None


def test_put_back_elsewhere(tech, store, make_aliquots):
    """A taken-out tube can go back to another box."""
    [tube] = make_aliquots(1)
    place(tech, tube, store.box, "A1")
    tech.post(f"/api/v1/aliquots/{tube.barcode}/take-out", json={})
    response = tech.post(
        f"/api/v1/aliquots/{tube.barcode}/put-back",
        json={"box": store.other.barcode, "position": "B2"},
    )
    assert response.status_code == 200, response.json
    assert response.json["location"]["box"] == store.other.barcode


def test_thawing_counts_and_refreezing_puts_the_tube_back(tech, store, make_aliquots, session):
    """Thaw: count +1 and out of the freezer; a second thaw is a 409; refreeze: back."""
    [tube] = make_aliquots(1)
    place(tech, tube, store.box, "D4")
    response = tech.post(f"/api/v1/aliquots/{tube.barcode}/thaw", json={"reason": "assay"})
    assert response.status_code == 200, response.json
    assert response.json["freeze_thaw_count"] == 1 and response.json["thawed"] is True
    assert response.json["location"]["taken_out"] is True
    assert tech.post(f"/api/v1/aliquots/{tube.barcode}/thaw", json={}).status_code == 409
    response = tech.post(f"/api/v1/aliquots/{tube.barcode}/refreeze", json={})
    assert response.status_code == 200, response.json
    assert response.json["thawed"] is False
    assert response.json["location"]["position"] == "D4"
    assert not response.json["location"]["taken_out"]
    assert tech.post(f"/api/v1/aliquots/{tube.barcode}/refreeze", json={}).status_code == 409
    tech.post(f"/api/v1/aliquots/{tube.barcode}/thaw", json={})
    session.expire_all()
    assert session.get(Aliquot, tube.id).freeze_thaw_count == 2
    thawed = events(session, tube, "thawed")
    assert [e.new_values["freeze_thaw_count"] for e in thawed] == [1, 2]
    assert len(events(session, tube, "refrozen")) == 1


def test_a_tube_that_never_had_a_place_is_refrozen_where_told(tech, store, make_aliquots):
    """Refreezing a tube with no kept place needs a box: 422 without, 200 with."""
    [tube] = make_aliquots(1)
    tech.post(f"/api/v1/aliquots/{tube.barcode}/thaw", json={})
    assert tech.post(f"/api/v1/aliquots/{tube.barcode}/refreeze", json={}).status_code == 422
    response = tech.post(
        f"/api/v1/aliquots/{tube.barcode}/refreeze",
        json={"box": store.box.barcode, "position": "E5"},
    )
    assert response.status_code == 200
    assert response.json["location"]["position"] == "E5"


def test_missing_and_found(tech, store, make_aliquots, session):
    """Missing needs a reason and keeps the place; found elsewhere moves it there."""
    [tube] = make_aliquots(1)
    place(tech, tube, store.box, "F6")
    assert tech.post(f"/api/v1/aliquots/{tube.barcode}/missing", json={}).status_code == 422
    response = tech.post(
        f"/api/v1/aliquots/{tube.barcode}/missing", json={"reason": "not at F6 during inventory"}
    )
    assert response.status_code == 200, response.json
    assert response.json["status"] == "missing"
    cell = tech.get(f"/api/v1/boxes/{store.box.barcode}/map").json["positions"][5 * 9 + 5]
    assert cell["position"] == "F6" and cell["aliquot"]["status"] == "missing"
    moved = tech.post(
        f"/api/v1/aliquots/{tube.barcode}/move", json={"box": store.other.barcode, "position": "A1"}
    )
    assert moved.status_code == 409 and "found" in moved.json["message"]
    response = tech.post(
        f"/api/v1/aliquots/{tube.barcode}/found",
        json={"box": store.other.barcode, "position": "A1"},
    )
    assert response.status_code == 200, response.json
    assert response.json["status"] == "available"
    assert response.json["location"]["box"] == store.other.barcode
    kinds = [e.event_type for e in events(session, tube)]
    assert kinds[-3:] == ["marked_missing", "found", "moved"]


# --- the scan --------------------------------------------------------------------------


def test_scanning_a_box_rack_or_freezer_code(tech, store, make_aliquots):
    """Box codes (own or the rack's) and container codes resolve, with their paths."""
    [tube] = make_aliquots(1)
    place(tech, tube, store.box, "A1")
    card = tech.get(f"/api/v1/scan/{store.box.barcode.lower()}").json
    assert card["kind"] == "box"
    assert card["location"]["path"].endswith(store.box.barcode)
    assert card["location"]["occupied"] == 1
    card = tech.get("/api/v1/scan/TR00012345").json
    assert (card["kind"], card["barcode"]) == ("box", store.sbs.barcode)
    card = tech.get(f"/api/v1/scan/{store.rack.barcode}").json
    assert card["kind"] == "container"
    assert card["location"]["path"] == "NL-PMC / F-80-01 / Shelf 1 / Rack A"
    assert tech.get("/api/v1/scan/CT99999999").status_code in (404, 422)
