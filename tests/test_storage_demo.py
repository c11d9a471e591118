"""Demo storage: the demo tubes stored in freezers at the sponsor's lab, idempotently."""

from __future__ import annotations

from sqlalchemy import func, select

from biobank.demo import service as demo
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.samples.states import IN_HOUSE
from biobank.storage import demo as storage_demo
from biobank.storage.models import BoxType, Container, Position


def test_the_demo_stores_every_demo_tube_once(session, tech):
    """Freezers, racks and 9×9, 10×10 and 8×12 boxes; a second load adds nothing."""
    demo.load(session, "demo", samples.Numbering())
    first = storage_demo.load_demo(session, "demo")
    session.commit()
    assert (first.freezers, first.stored) == (2, first.stored) and first.stored > 40
    in_house = session.scalar(select(func.count()).select_from(Aliquot)
                              .where(Aliquot.status.in_(IN_HOUSE)))
    assert session.scalar(select(func.count()).select_from(Position)) == in_house
    kinds = set(session.scalars(select(BoxType.code).join(
        Container, Container.box_type_id == BoxType.id)))
    assert {"9X9", "10X10", "SBS96"} <= kinds
    again = storage_demo.load_demo(session, "demo")
    assert (again.freezers, again.containers, again.boxes, again.stored) == (0, 0, 0, 0)
    freezers = {f["name"]: f for f in tech.get("/api/v1/freezers").json}
    assert freezers["LN2-01"]["temperature_band"] == "LN-vapour"
    grid = tech.get(f"/api/v1/boxes/{first.box_codes[0]}/map").json
    assert grid["occupied"] > 0 and grid["path"].startswith("NL-PMC / ")
