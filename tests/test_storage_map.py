"""Box maps, where to store new tubes, and capacity: complete answers in fixed queries."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from consent_helpers import days_ago, give, studies  # noqa: F401

from biobank.samples import service as samples
from biobank.storage import operations, service

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()


@pytest.fixture
def racks(session):  # type: ignore[no-untyped-def]
    """NL-PMC / F-80-01 / Rack 1 with a 10×10, a 20×20 and an 8×12 box; and LN2-01."""
    service.create_box_type(
        session,
        ACTOR,
        {"code": "20X20", "name": "20×20", "rows": 20, "columns": 20, "scheme": "letter-number"},
    )
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    rack = service.create_container(
        session, ACTOR, {"kind": "rack", "name": "Rack 1", "parent": freezer.barcode}, NUMBERING
    )
    boxes = {
        code: service.create_box(
            session,
            ACTOR,
            {"box_type": code, "parent": rack.barcode, "name": f"Box {code}"},
            NUMBERING,
        )
        for code in ("10X10", "20X20", "SBS96")
    }
    tank = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "LN2-01", "freezer_type": "ln2-vapour"},
        NUMBERING,
    )
    canister = service.create_container(
        session,
        ACTOR,
        {"kind": "canister", "name": "Canister 1", "parent": tank.barcode},
        NUMBERING,
    )
    ln2_box = service.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": canister.barcode}, NUMBERING
    )
    session.commit()
    return SimpleNamespace(
        freezer=freezer,
        rack=rack,
        tank=tank,
        ln2_box=ln2_box,
        **{"b10": boxes["10X10"], "b20": boxes["20X20"], "sbs": boxes["SBS96"]},
    )


@pytest.fixture
def fill(session, make_aliquots):  # type: ignore[no-untyped-def]
    """``fill(box, n)``: n new tubes stored in the box's first n places, in one bulk move."""

    def fill(box, n):  # type: ignore[no-untyped-def]
        tubes = make_aliquots(n, volume="0.005")
        columns = box.box_type.columns
        operations.relocate(
            session,
            ACTOR,
            [
                operations.Target(t, box, i // columns + 1, i % columns + 1)
                for i, t in enumerate(tubes)
            ],
        )
        session.commit()
        return tubes

    return fill


def test_the_map_shows_every_position_and_every_tube(tech, racks, fill):
    """A 10×10 map has 100 labelled cells; occupied ones carry the tube's details."""
    tubes = fill(racks.b10, 12)
    response = tech.get(f"/api/v1/boxes/{racks.b10.barcode}/map")
    assert response.status_code == 200, response.json
    grid = response.json
    assert (grid["rows"], grid["columns"], grid["occupied"], grid["free"]) == (10, 10, 12, 88)
    assert grid["path"] == "NL-PMC / F-80-01 / Rack 1 / Box 10X10"
    assert [c["position"] for c in grid["positions"][:11]] == [
        "A1",
        "A2",
        "A3",
        "A4",
        "A5",
        "A6",
        "A7",
        "A8",
        "A9",
        "A10",
        "B1",
    ]
    first = grid["positions"][0]["aliquot"]
    assert first["barcode"] == tubes[0].barcode
    assert first["aliquot_type"] == "PLASMA" and first["timepoint"] == "DX"
    assert first["study_id"] == tubes[0].sample.patient.study_id
    assert first["status"] == "available" and "consent" in first
    assert grid["positions"][12]["aliquot"] is None
    sbs = tech.get(f"/api/v1/boxes/{racks.sbs.barcode}/map").json
    assert sbs["positions"][-1]["position"] == "H12" and len(sbs["positions"]) == 96


def test_the_map_costs_the_same_queries_for_10x10_and_20x20(tech, racks, fill, count_queries):
    """A full 10×10 box and a full 20×20 box: the same, small number of queries."""
    fill(racks.b10, 100)
    fill(racks.b20, 400)
    counts = {}
    for box in (racks.b10, racks.b20):
        with count_queries() as counted:
            response = tech.get(f"/api/v1/boxes/{box.barcode}/map")
        assert response.status_code == 200
        assert (
            sum(1 for c in response.json["positions"] if c["aliquot"]) == response.json["capacity"]
        )
        counts[box.box_type.code] = counted.count
    # token + box (with its type) + the map: path, tubes (with type, patient, timepoint,
    # flags) and the storage consent log of the box's patients, in one statement
    assert counts["10X10"] == counts["20X20"] <= 3, counts


def test_the_map_shows_each_tube_s_storage_consent_in_force(
    tech, racks, session, make_patient, make_sample, make_aliquots, give
):  # noqa: F811
    """The map reads the consent log: the storage entry in force
    today, a correction replacing what it corrects, other components ignored, and nothing on
    record shown as null."""
    given, corrected, substudy_only, nobody = (make_patient() for _ in range(4))
    give(given, "storage", days_ago(40))
    declined = give(corrected, "storage", days_ago(40), decision="declined")
    give(corrected, "storage", days_ago(40), corrects=declined.id, reason="entered wrongly")
    give(substudy_only, "DEMO", days_ago(40))
    tubes = [
        make_aliquots(1, parent=make_sample(p))[0]
        for p in (given, corrected, substudy_only, nobody)
    ]
    operations.relocate(
        session, ACTOR, [operations.Target(t, racks.b10, 1, i + 1) for i, t in enumerate(tubes)]
    )
    session.commit()
    cells = tech.get(f"/api/v1/boxes/{racks.b10.barcode}/map").json["positions"][:4]
    assert [c["aliquot"]["study_id"] for c in cells] == [
        p.study_id for p in (given, corrected, substudy_only, nobody)
    ]
    assert [c["aliquot"]["consent"] for c in cells] == ["given", "given", None, None]


def test_a_box_of_any_size_is_listed_with_its_barcode(tech, racks):
    """GET /boxes lists every box with barcode, path and counts; filters work."""
    listed = tech.get("/api/v1/boxes").json
    assert {racks.b10.barcode, racks.b20.barcode, racks.sbs.barcode, racks.ln2_box.barcode} <= {
        b["barcode"] for b in listed
    }
    in_tank = tech.get(f"/api/v1/boxes?within={racks.tank.barcode}").json
    assert [b["barcode"] for b in in_tank] == [racks.ln2_box.barcode]
    assert in_tank[0]["path"].startswith("NL-PMC / LN2-01 / Canister 1 / ")
    sbs = tech.get("/api/v1/boxes?box_type=SBS96").json
    assert [b["barcode"] for b in sbs] == [racks.sbs.barcode]


def test_suggestions_keep_new_tubes_together(tech, racks, fill, session):
    """With A1–A3 and A5 taken, 3 tubes go to A6–A8; too many for the gap never split it."""
    tubes = fill(racks.b10, 5)
    operations.vacate(session, ACTOR, [tubes[3].id], "test")  # A4 free again
    session.commit()
    offer = tech.get(f"/api/v1/boxes/{racks.b10.barcode}/suggest?count=3").json
    assert offer == {
        "box": racks.b10.barcode,
        "path": offer["path"],
        "contiguous": True,
        "positions": ["A6", "A7", "A8"],
    }
    assert tech.get(f"/api/v1/boxes/{racks.b10.barcode}/suggest?count=0").status_code == 422


def test_suggestions_across_boxes(tech, racks, fill):
    """The first box (by path) with room in one run wins; otherwise the tubes spread."""
    fill(racks.b10, 100)
    offers = tech.get(f"/api/v1/storage/suggest?count=5&within={racks.freezer.barcode}").json
    assert len(offers) == 1 and offers[0]["contiguous"]
    assert offers[0]["box"] in {racks.b20.barcode, racks.sbs.barcode}
    offers = tech.get(
        f"/api/v1/storage/suggest?count=100&box_type=9X9&within={racks.tank.barcode}"
    ).json
    assert [len(o["positions"]) for o in offers] == [81]  # all there is
    many = tech.get(f"/api/v1/storage/suggest?count=500&within={racks.freezer.barcode}").json
    assert sum(len(o["positions"]) for o in many) == 496  # 400 + 96 free
    assert tech.get("/api/v1/storage/suggest?count=1&box_type=NOPE").status_code == 422


def test_capacity_per_freezer_and_per_box_type(tech, racks, fill):
    """Positions, occupied and free per freezer and per box type."""
    fill(racks.b10, 30)
    fill(racks.ln2_box, 9)
    report = tech.get("/api/v1/storage/capacity").json
    freezers = {f["path"]: f for f in report["freezers"]}
    minus80 = freezers["NL-PMC / F-80-01"]
    assert (minus80["boxes"], minus80["positions"], minus80["occupied"], minus80["free"]) == (
        3,
        100 + 400 + 96,
        30,
        566,
    )
    assert freezers["NL-PMC / LN2-01"]["occupied"] == 9
    types = {t["box_type"]: t for t in report["box_types"]}
    assert (types["10X10"]["occupied"], types["10X10"]["free"]) == (30, 70)
    assert types["9X9"]["free"] == 72


def test_capacity_names_a_freezer_whose_name_holds_a_slash(tech, session):
    """A freezer called "F-80 / Room 2": capacity gives its whole name as its path."""
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80 / Room 2", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    rack = service.create_container(
        session, ACTOR, {"kind": "rack", "name": "Rack 1", "parent": freezer.barcode}, NUMBERING
    )
    service.create_box(session, ACTOR, {"box_type": "9X9", "parent": rack.barcode}, NUMBERING)
    session.commit()
    report = tech.get("/api/v1/storage/capacity").json
    [entry] = [f for f in report["freezers"] if f["freezer"] == freezer.barcode]
    assert entry["path"] == "NL-PMC / F-80 / Room 2"
    assert entry["site"] == "NL-PMC"
