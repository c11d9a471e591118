"""Splitting straight into a box: a rack of pre-barcoded tubes registered in one request."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from biobank.custody.models import CustodyEvent
from biobank.samples import service as samples
from biobank.samples.models import Aliquot, Sample
from biobank.storage import service
from biobank.storage.models import Position

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()
ROWS = "ABCDEFGH"


@pytest.fixture
def rack(session):  # type: ignore[no-untyped-def]
    """An empty SBS96 rack (A01…H12) on a shelf of a −80 °C freezer."""
    service.load_default_box_types(session, ACTOR)
    freezer = service.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-09", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    shelf = service.create_container(
        session, ACTOR, {"kind": "shelf", "name": "Shelf 1", "parent": freezer.barcode}, NUMBERING
    )
    box = service.create_box(
        session,
        ACTOR,
        {"box_type": "SBS96", "parent": shelf.barcode, "external_barcode": "TR00099999"},
        NUMBERING,
    )
    session.commit()
    return box


def tubes(count: int, positions: bool = True) -> list[dict]:  # type: ignore[type-arg]
    """Specs of pre-barcoded 0.05 mL plasma tubes, at A01, A02… when ``positions``."""
    return [
        {
            "aliquot_type": "PLASMA",
            "volume_ml": "0.05",
            "barcode": f"FR{9000000 + n:08d}",
            **({"position": f"{ROWS[n // 12]}{n % 12 + 1:02d}"} if positions else {}),
        }
        for n in range(count)
    ]


def places(session, codes):  # type: ignore[no-untyped-def]
    """barcode → (box id, row, column) of the tubes with these codes."""
    return {
        code: (box, row, col)
        for code, box, row, col in session.execute(
            select(Aliquot.barcode, Position.box_id, Position.row_no, Position.col_no)
            .join(Position, Position.aliquot_id == Aliquot.id)
            .where(Aliquot.barcode.in_(codes))
        )
    }


def test_96_tubes_split_into_a_rack_in_one_request(tech, make_sample, rack, session):
    """Every tube is registered, debited from the sample and stored at its position, with
    an ``aliquoted`` and a ``stored`` custody event each."""
    sample = make_sample(volume_ml=Decimal("10.0"))
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split", json={"box": "TR00099999", "aliquots": tubes(96)}
    )
    assert response.status_code == 201, response.json
    codes = [a["barcode"] for a in response.json]
    assert codes == [t["barcode"] for t in tubes(96)]
    where = places(session, codes)
    assert where[codes[0]] == (rack.id, 1, 1) and where[codes[95]] == (rack.id, 8, 12)
    assert len(set(where.values())) == 96
    stored = session.scalar(
        select(func.count())
        .select_from(CustodyEvent)
        .join(Aliquot, Aliquot.id == CustodyEvent.aliquot_id)
        .where(Aliquot.barcode.in_(codes), CustodyEvent.event_type == "stored")
    )
    assert stored == 96
    session.expire_all()
    assert session.get(Sample, sample.id).volume_remaining_ml == Decimal("5.200")


def test_tubes_without_a_position_take_the_next_free_places(tech, make_sample, rack, session):
    """With the rack's first two places taken, unplaced tubes fill in from A03 on; a tube
    with its own position keeps it."""
    sample = make_sample()
    first = tech.post(
        f"/api/v1/samples/{sample.barcode}/split", json={"box": rack.barcode, "aliquots": tubes(2)}
    )
    assert first.status_code == 201, first.json
    specs = [
        {"aliquot_type": "PLASMA", "volume_ml": "0.1"},
        {"aliquot_type": "PLASMA", "volume_ml": "0.1", "position": "H12"},
        {"aliquot_type": "PLASMA", "volume_ml": "0.1"},
    ]
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split", json={"box": rack.barcode, "aliquots": specs}
    )
    assert response.status_code == 201, response.json
    codes = [a["barcode"] for a in response.json]
    where = places(session, codes)
    assert [where[c][1:] for c in codes] == [(1, 3), (8, 12), (1, 4)]


def test_a_taken_position_refuses_the_whole_split(tech, make_sample, rack, session):
    """A tube sent to an occupied place: 409, and no tube, event or debit is left behind."""
    sample = make_sample()
    assert (
        tech.post(
            f"/api/v1/samples/{sample.barcode}/split",
            json={"box": rack.barcode, "aliquots": tubes(1)},
        ).status_code
        == 201
    )
    session.expire_all()
    before = (
        session.scalar(select(func.count()).select_from(Aliquot)),
        session.scalar(select(func.count()).select_from(CustodyEvent)),
        session.get(Sample, sample.id).volume_remaining_ml,
    )
    clash = [{"aliquot_type": "PLASMA", "volume_ml": "0.1", "position": "A01"}]
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split", json={"box": rack.barcode, "aliquots": clash}
    )
    assert response.status_code == 409, response.json
    assert "A01" in response.json["message"]
    session.expire_all()
    assert (
        session.scalar(select(func.count()).select_from(Aliquot)),
        session.scalar(select(func.count()).select_from(CustodyEvent)),
        session.get(Sample, sample.id).volume_remaining_ml,
    ) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.1", "position": "A01"}]},
            "aliquots.0.position",
        ),
        (
            {
                "box": "TR00099999",
                "aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.1", "position": "J13"}],
            },
            "aliquots.0.position",
        ),
        (
            {"box": "NOSUCHRACK", "aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.1"}]},
            "box",
        ),
    ],
)
def test_a_bad_box_or_position_is_a_422_naming_the_field(tech, make_sample, rack, body, field):
    """A position without a box, a place outside the grid, an unknown box."""
    sample = make_sample()
    response = tech.post(f"/api/v1/samples/{sample.barcode}/split", json=body)
    assert response.status_code == 422, response.json
    assert field in str(response.json["errors"])


def test_more_tubes_than_free_places_is_a_conflict(tech, make_sample, rack):
    """97 tubes do not fit a 96-place rack."""
    sample = make_sample(volume_ml=Decimal("20.0"))
    response = tech.post(
        f"/api/v1/samples/{sample.barcode}/split",
        json={"box": rack.barcode, "aliquots": tubes(97, positions=False)},
    )
    assert response.status_code == 409, response.json
    assert "96 free places" in response.json["message"]


def test_an_aliquot_split_into_a_box_too(tech, make_aliquots, rack, session):
    """DNA from a cell pellet, straight into the rack."""
    pellet = make_aliquots(n=1, aliquot_type="PELLET", volume="0.5")[0]
    response = tech.post(
        f"/api/v1/aliquots/{pellet.barcode}/split",
        json={"box": rack.barcode, "aliquots": [{"aliquot_type": "DNA", "volume_ml": "0.1"}]},
    )
    assert response.status_code == 201, response.json
    assert places(session, [response.json[0]["barcode"]])[response.json[0]["barcode"]][1:] == (1, 1)
