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
    result = demo.load(session, "demo", samples.Numbering())  # includes the storage demo
    session.commit()
    assert result.domains["storage"].startswith("2 freezers")
    in_house = session.scalar(
        select(func.count()).select_from(Aliquot).where(Aliquot.status.in_(IN_HOUSE))
    )
    assert session.scalar(select(func.count()).select_from(Position)) == in_house
    kinds = set(
        session.scalars(select(BoxType.code).join(Container, Container.box_type_id == BoxType.id))
    )
    assert {"9X9", "10X10", "SBS96"} <= kinds
    again = storage_demo.load_demo(session, "demo")
    assert (again.freezers, again.containers, again.boxes, again.stored) == (0, 0, 0, 0)
    freezers = {f["name"]: f for f in tech.get("/api/v1/freezers").json}
    assert freezers["LN2-01"]["temperature_band"] == "LN-vapour"
    first_box = session.scalar(
        select(Container.barcode).where(Container.box_type_id.is_not(None)).order_by(Container.id)
    )
    grid = tech.get(f"/api/v1/boxes/{first_box}/map").json
    assert grid["occupied"] > 0 and grid["path"].startswith("NL-PMC / ")
