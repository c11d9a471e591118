"""Rack-scanner reconciliation: a preview that changes nothing, a confirm that applies it all."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from biobank.custody.models import CustodyEvent
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.storage import operations, service
from biobank.storage.models import Position

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()
SCANS = Path(__file__).parent / "data" / "rack-scans"
CSV = {"Content-Type": "text/csv"}
# The example scan has an unread well (B5) and a tube the biobank does not know (C12).
ACK = {"acknowledge": ["unknown_tubes", "unreadable_wells"]}


def fx(n: int) -> str:
    """The made-up tube code of the example scan for position number n (1 = A1)."""
    return f"FX056537{n:02d}"


@pytest.fixture
def rack(session, make_sample):  # type: ignore[no-untyped-def]
    """An SBS rack (own code TR00012345) registered as the example scan shows it, except:
    A2/A3 swapped, B5 (unread in the scan) present, D2 registered in another box, H12's tube
    registered nowhere and another tube registered at H12, C12 not registered at all, and
    G6 destroyed."""
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-01", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    shelf = service.create_container(
        session, ACTOR, {"kind": "shelf", "name": "Shelf 1", "parent": freezer.barcode}, NUMBERING
    )
    sbs = service.create_box(
        session,
        ACTOR,
        {"box_type": "SBS96", "parent": shelf.barcode, "external_barcode": "TR00012345"},
        NUMBERING,
    )
    other = service.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": shelf.barcode}, NUMBERING
    )
    codes = [fx(n) for n in range(1, 97) if n != 36]  # C12 = 36: never registered
    tubes = {
        a.barcode: a
        for a in samples.split(
            session,
            ACTOR,
            make_sample(volume_ml=Decimal("4")),
            [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.01"), "barcode": c} for c in codes],
            NUMBERING,
        )
    }
    [stranger] = samples.split(
        session,
        ACTOR,
        make_sample(),
        [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.5")}],
        NUMBERING,
    )
    swap = {2: 3, 3: 2}
    targets = []
    for n in range(1, 97):
        code = fx(n)
        if n in (36, 96):  # unregistered; registered but never stored
            continue
        if n == 38:  # D2 sits in another box, per the records
            targets.append(operations.Target(tubes[code], other, 1, 1))
            continue
        where = swap.get(n, n)
        targets.append(
            operations.Target(tubes[code], sbs, (where - 1) // 12 + 1, (where - 1) % 12 + 1)
        )
    targets.append(operations.Target(stranger, sbs, 8, 12))
    operations.relocate(session, ACTOR, targets)
    samples.change_status(session, ACTOR, tubes[fx(78)], "destroyed", "dropped")  # G6
    session.commit()
    return SimpleNamespace(sbs=sbs, other=other, tubes=tubes, stranger=stranger)


def upload(tech, box, text, headers=CSV):  # type: ignore[no-untyped-def]
    return tech.post(f"/api/v1/boxes/{box.barcode}/scan-upload", data=text, headers=headers)


def location(tech, code):  # type: ignore[no-untyped-def]
    return tech.get(f"/api/v1/aliquots/{code}/location").json["location"]


def test_the_preview_sorts_every_tube_and_changes_nothing(tech, rack, session):
    """Matches, swaps, moves from elsewhere, unknown, unreadable, refused and missing."""
    events = session.scalar(select(func.count()).select_from(CustodyEvent))
    response = upload(tech, rack.sbs, (SCANS / "per-line-rack.csv").read_text())
    assert response.status_code == 200, response.json
    report = response.json
    assert (report["rack"], report["scanned"]) == ("TR00012345", 96)
    assert len(report["matches"]) == 96 - 2 - 1 - 1 - 1 - 1 - 1  # swaps, D2, H12, C12, B5, G6
    moved = {m["barcode"]: m for m in report["moved"]}
    assert set(moved) == {fx(2), fx(3), fx(38), fx(96)}
    assert moved[fx(2)]["position"] == "A02" and moved[fx(2)]["from"]["position"] == "A03"
    assert moved[fx(38)]["from"]["box"] == rack.other.barcode
    assert moved[fx(96)]["from"] is None  # never stored before
    assert report["unknown"] == [{"position": "C12", "barcode": fx(36)}]
    assert report["unreadable"] == [{"position": "B05", "expected": fx(17)}]
    assert [r["barcode"] for r in report["refused"]] == [fx(78)]
    assert report["missing"] == [{"position": "H12", "barcode": rack.stranger.barcode}]
    assert report["displaced"] == [{"position": "H12", "barcode": rack.stranger.barcode}]
    assert report["token"]
    assert session.scalar(select(func.count()).select_from(CustodyEvent)) == events
    assert location(tech, fx(2))["position"] == "A03"


def test_confirming_applies_every_move_at_once(tech, rack, session):
    """Swaps and moves land, the displaced tube loses its place, one event per tube."""
    token = upload(tech, rack.sbs, (SCANS / "per-line-rack.csv").read_text()).json["token"]
    response = tech.post(f"/api/v1/boxes/{rack.sbs.barcode}/scan-upload/{token}/confirm", json=ACK)
    assert response.status_code == 200, response.json
    assert (response.json["moved"], response.json["displaced"]) == (4, 1)
    assert location(tech, fx(2))["position"] == "A02"
    assert location(tech, fx(3))["position"] == "A03"
    assert location(tech, fx(38))["box"] == rack.sbs.barcode
    assert location(tech, fx(96))["position"] == "H12"
    assert location(tech, rack.stranger.barcode) is None
    kinds = dict(
        session.execute(
            select(Aliquot.barcode, CustodyEvent.event_type)
            .join(CustodyEvent, CustodyEvent.aliquot_id == Aliquot.id)
            .where(CustodyEvent.reason.like("%rack scan%"))
        ).all()
    )
    assert kinds == {
        fx(2): "moved",
        fx(3): "moved",
        fx(38): "moved",
        fx(96): "stored",
        rack.stranger.barcode: "unstored",
    }
    again = tech.post(f"/api/v1/boxes/{rack.sbs.barcode}/scan-upload/{token}/confirm", json=ACK)
    assert again.status_code == 409 and "already" in again.json["message"]


def test_a_confirm_after_the_box_changed_is_a_409(tech, rack, make_aliquots, session):
    """A tube placed in the box between preview and confirm voids the preview."""
    token = upload(tech, rack.sbs, (SCANS / "per-line-rack.csv").read_text()).json["token"]
    tech.post(f"/api/v1/aliquots/{fx(17)}/take-out", json={})
    response = tech.post(f"/api/v1/boxes/{rack.sbs.barcode}/scan-upload/{token}/confirm", json=ACK)
    assert response.status_code == 409 and "changed" in response.json["message"]
    assert location(tech, fx(2))["position"] == "A03"  # nothing applied


def test_an_unknown_token_is_a_404(tech, rack):
    """A token never issued, or issued for another box, does not exist."""
    assert (
        tech.post(f"/api/v1/boxes/{rack.sbs.barcode}/scan-upload/nope/confirm").status_code == 404
    )
    token = upload(tech, rack.sbs, "A1,FX05653701\n").json["token"]
    assert (
        tech.post(f"/api/v1/boxes/{rack.other.barcode}/scan-upload/{token}/confirm").status_code
        == 404
    )


def test_the_rack_on_first_line_layout_reconciles(tech, session, make_aliquots):
    """A Traxcer file for a box without a rack code: D04 and D05 were empty in the scan."""
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-09", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    box = service.create_box(
        session, ACTOR, {"box_type": "SBS96", "parent": freezer.barcode}, NUMBERING
    )
    expected = make_aliquots(1)[0]
    operations.relocate(session, ACTOR, [operations.Target(expected, box, 4, 4)])
    session.commit()
    report = upload(tech, box, (SCANS / "rack-on-first-line.csv").read_text()).json
    assert report["rack"] == "RK-000881"
    assert len(report["unknown"]) == 94
    assert report["missing"] == [{"position": "D04", "barcode": expected.barcode}]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("TR00012345,A1,FX1\nTR00012345,A01,FX2\n", "listed twice"),
        ("TR00012345,A1,FX1\nTR00012345,A2,FX1\n", "listed twice"),
        ("TR00012345,I1,FX1\n", "outside this 8×12 box"),
        ("garbage", "line 1"),
        ("", "empty"),
    ],
)
def test_bad_scan_files_are_422s_naming_the_problem(tech, rack, text, words):
    """Duplicates, places off the grid, another rack's file, garbage: 422, nothing held."""
    response = upload(tech, rack.sbs, text)
    assert response.status_code == 422, response.json
    assert words in response.json["message"]


def test_a_scan_must_be_sent_as_csv_text(tech, rack):
    """JSON is a 415; binary bytes are a 422; a file over the route's limit is a 413."""
    assert (
        tech.post(f"/api/v1/boxes/{rack.sbs.barcode}/scan-upload", json={"a": 1}).status_code == 415
    )
    assert upload(tech, rack.sbs, b"\xff\xfe\x00garbage").status_code == 422
    huge = upload(tech, rack.sbs, "TR00012345,A1,FX05653701\n" * 20_000)
    assert huge.status_code == 413 and "262,144 bytes" in huge.json["message"]


def test_a_bag_cannot_be_reconciled(tech, session):
    """A grid-free box has no positions to compare."""
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-10", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    bag = service.create_box(
        session, ACTOR, {"box_type": "BAG", "parent": freezer.barcode}, NUMBERING
    )
    session.commit()
    assert upload(tech, bag, "A1,FX1\n").status_code == 422


def test_a_missing_tube_seen_by_the_scan_is_found(tech, rack, session):
    """A tube marked missing that the scanner sees at its place is available again."""
    samples.change_status(session, ACTOR, rack.tubes[fx(5)], "missing", "inventory")
    session.commit()
    report = upload(tech, rack.sbs, (SCANS / "per-line-rack.csv").read_text()).json
    assert {"position": "A05", "barcode": fx(5), "found": True} in report["matches"]
    confirmed = tech.post(
        f"/api/v1/boxes/{rack.sbs.barcode}/scan-upload/{report['token']}/confirm", json=ACK
    ).json
    assert confirmed["found"] == 1
    session.expire_all()
    assert session.get(Aliquot, rack.tubes[fx(5)].id).status == "available"
    # All 96 places but C12 (an unregistered tube) are now recorded as the scanner saw them.
    assert (
        session.scalar(
            select(func.count()).select_from(Position).where(Position.box_id == rack.sbs.id)
        )
        == 95
    )
