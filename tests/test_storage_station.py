"""The scan station's decision through the API (POST /api/v1/boxes/<code>/scan-in): a tube
without a place goes in, anything else is asked first, a misfit is refused unless a manager
lets the box mix; every change names from and to and undoes as a move back."""

from __future__ import annotations

from sqlalchemy import select
from test_storage import ACTOR, NUMBERING, events, store  # noqa: F401

from biobank.custody.models import AuditRecord
from biobank.storage import operations, service
from biobank.storage.station import bench_status


def scan_in(client, box, barcode, **extra):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/boxes/{box.barcode}/scan-in", json={"barcode": barcode, **extra})


def test_a_tube_without_a_place_goes_in_and_undo_takes_it_off(tech, store, make_aliquots, session):
    """Unplaced: stored at the next free place at once; undo leaves it without a place,
    recorded as an "unstored" event (nothing deleted)."""
    tube = make_aliquots(1)[0]
    answer = scan_in(tech, store.box, tube.barcode)
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["state"], body["action"], body["from"]) == ("done", "stored", None)
    assert body["to"]["position"] == "A1" and body["message"].endswith(": A1 of " + store.box.name)
    undone = tech.post(
        f"/api/v1/boxes/{store.box.barcode}/scan-in/undo",
        json={"barcode": tube.barcode, **{k: v for k, v in body["undo"].items() if v is not None}},
    )
    assert undone.status_code == 200, undone.json
    assert "has no place" in undone.json["message"]
    assert operations.position_of(session, tube) is None
    assert [e.event_type for e in events(session, tube)][-2:] == ["stored", "unstored"]


def test_a_tube_stored_elsewhere_is_asked_about_then_moved_and_moved_back(
    tech, store, make_aliquots, session
):
    """Stored in one box, scanned into another: a question (nothing changes); confirmed, it
    moves, the answer naming from and to; undo moves it back, as a second move."""
    tube = make_aliquots(1)[0]
    operations.place(session, ACTOR, tube, store.box, "B3")
    session.commit()
    asked = scan_in(tech, store.other, tube.barcode, position="F5")
    assert asked.json["state"] == "ask", asked.json
    assert asked.json["question"] == (
        f"{tube.barcode} is at B3 of {store.box.name}. Move it to F5 of Spare?"
    )
    assert operations.position_of(session, tube).box_id == store.box.id
    done = scan_in(tech, store.other, tube.barcode, position="F5", confirm=True).json
    assert done["message"] == f"{tube.barcode} moved from B3 of {store.box.name} to F5 of Spare"
    undo = {k: v for k, v in done["undo"].items() if v is not None}
    back = tech.post(
        f"/api/v1/boxes/{store.other.barcode}/scan-in/undo", json={"barcode": tube.barcode, **undo}
    )
    assert back.status_code == 200, back.json
    where = operations.position_of(session, tube)
    assert (where.box_id, where.row_no, where.col_no) == (store.box.id, 2, 3)
    moved = events(session, tube, "moved")
    assert len(moved) == 2 and moved[-1].reason == "undone at the scan station"
    again = tech.post(
        f"/api/v1/boxes/{store.other.barcode}/scan-in/undo", json={"barcode": tube.barcode, **undo}
    )
    assert again.status_code == 409 and "no longer at F5" in again.json["message"]


def test_a_missing_tube_is_asked_found_here(tech, store, make_aliquots, session):
    """A missing tube is not found by an ordinary scan: "Found here?" first."""
    tube = make_aliquots(1)[0]
    operations.mark_missing(session, ACTOR, tube, "not in its box")
    session.commit()
    asked = scan_in(tech, store.box, tube.barcode).json
    assert asked["state"] == "ask" and "recorded missing. Found here" in asked["question"]
    session.refresh(tube)
    assert tube.status == "missing"
    done = scan_in(tech, store.box, tube.barcode, confirm=True).json
    assert done["action"] == "found" and done["undo"]["missing"] is True
    session.refresh(tube)
    assert tube.status == "available"


def test_another_type_is_refused_until_a_manager_lets_the_box_mix(
    tech, manager, store, make_aliquots, session
):
    """A double-spun plasma tube into a box of single-spun plasma: 409 with the reason; a
    technician may not allow mixing, a manager may (audited); then it goes in."""
    first = make_aliquots(1)[0]
    operations.place(session, ACTOR, first, store.box, "A1")
    session.commit()
    other = make_aliquots(1, aliquot_type="PLASMA2")[0]
    refused = scan_in(tech, store.box, other.barcode)
    assert refused.status_code == 409
    assert "holds Plasma, single spun" in refused.json["message"]
    assert operations.position_of(session, other) is None
    url = f"/api/v1/boxes/{store.box.barcode}/mixing"
    assert tech.put(url, json={"allowed": True, "reason": "pilot"}).status_code == 403
    allowed = manager.put(url, json={"allowed": True, "reason": "pilot study box"})
    assert allowed.status_code == 200 and allowed.json["mixing_allowed"] is True
    assert session.scalar(
        select(AuditRecord).where(
            AuditRecord.entity_key == store.box.barcode, AuditRecord.action == "mixing"
        )
    )
    assert scan_in(tech, store.box, other.barcode).json["state"] == "done"


def test_another_temperature_is_refused(tech, store, make_aliquots, session):
    """A tube kept in liquid nitrogen scanned into an empty −80 °C box: refused, both
    temperatures named."""
    tube = make_aliquots(1)[0]
    cold = service.create_box(
        session,
        ACTOR,
        {"box_type": "9X9", "parent": store.tower.barcode, "name": "Cold 1"},
        NUMBERING,
    )
    operations.place(session, ACTOR, tube, cold, "A1")
    session.commit()
    refused = scan_in(tech, store.other, tube.barcode)
    assert refused.status_code == 409
    assert "liquid nitrogen, vapour phase" in refused.json["message"]
    assert "−60 °C to −85 °C" in refused.json["message"]


def test_bad_input_is_a_422_naming_the_field(tech, store):
    """A control character in the barcode, a missing barcode: 422 naming the field."""
    answer = scan_in(tech, store.box, "IF0\x00001")
    assert answer.status_code == 422 and "barcode" in str(answer.json["errors"])
    answer = tech.post(f"/api/v1/boxes/{store.box.barcode}/scan-in", json={})
    assert answer.status_code == 422 and "barcode" in str(answer.json["errors"])


def test_one_status_for_card_and_map():
    """In the house without storage consent given, a tube is "do not use" whatever its
    status; blocked stays blocked; gone tubes say where they went."""
    assert bench_status("available", "given")["key"] == "available"
    assert bench_status("available", None)["words"] == "do not use: no consent"
    assert bench_status("reserved", "withdrawn")["key"] == "blocked"
    assert bench_status("blocked", "withdrawn")["words"] == "blocked"
    assert bench_status("shipped", None)["key"] == "shipped"
