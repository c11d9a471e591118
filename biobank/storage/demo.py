"""Demo storage: freezers at the sponsor's lab with the demo tubes stored in them.

Builds on whatever demo aliquots exist. Idempotent: containers are found by name under
their parent, and only tubes without a place (and still in the biobank) are stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.reference.models import AliquotType, Site
from biobank.samples.models import Aliquot
from biobank.samples.service import Numbering
from biobank.samples.states import IN_HOUSE
from biobank.storage import naming, operations, service
from biobank.storage.models import Container, Position

SITE = "NL-PMC"
ROOM = "Biobank lab, B.02.113"
# Where each kind of tube lives: freezer, holder kind, holders' name, box type, boxes'
# name, boxes per holder. Viable cells go to liquid nitrogen; DNA to 2D-coded racks.
Plan = tuple[str, str, str, str, str, int]
PLAN: dict[str, Plan] = {
    "MNC-V": ("LN2-01", "tower", "Tower", "10X10", "Viable cells", 6),
    "DNA": ("F-80-01", "rack", "Rack D", "SBS96", "DNA", 4),
    "PLASMA": ("F-80-01", "rack", "Rack P", "9X9", "Plasma", 4),
    "CSF-SUP": ("F-80-01", "rack", "Rack C", "9X9", "CSF", 4),
    "PELLET": ("F-80-01", "rack", "Rack X", "9X9", "Pellets", 4),
}
OTHER: Plan = ("F-80-01", "rack", "Rack O", "9X9", "Other", 4)
FREEZERS = {"F-80-01": "mechanical-80", "LN2-01": "ln2-vapour"}


@dataclass
class StorageDemo:
    """What a load added."""

    freezers: int = 0
    containers: int = 0
    boxes: int = 0
    stored: int = 0
    box_codes: list[str] = field(default_factory=list)


def _child(session: Session, parent: Container, name: str) -> Container | None:
    return session.scalar(
        select(Container).where(Container.parent_id == parent.id, Container.name == name)
    )


def _freezer(
    session: Session, actor: str, site: Site, name: str, numbering: Numbering, result: StorageDemo
) -> Container:
    found = session.scalar(
        select(Container).where(Container.site_id == site.id, Container.name == name)
    )
    if found is not None:
        return found
    result.freezers += 1
    return service.create_freezer(
        session,
        actor,
        {"site": site.code, "name": name, "freezer_type": FREEZERS[name], "room": ROOM},
        numbering,
    )


class _Shelf:
    """Boxes of one kind, in holders of a freezer, created as they fill up."""

    def __init__(
        self,
        session: Session,
        actor: str,
        freezer: Container,
        plan: Plan,
        numbering: Numbering,
        result: StorageDemo,
    ) -> None:
        self.session, self.actor, self.freezer, self.numbering = session, actor, freezer, numbering
        _, self.holder_kind, self.holder_name, self.box_type, self.box_name, self.per_holder = plan
        self.result = result
        self.number = 0

    def _holder(self, index: int) -> Container:
        name = (
            f"{self.holder_name} {index}"
            if self.holder_kind == "tower"
            else (f"{self.holder_name}{index}")
        )
        found = _child(self.session, self.freezer, name)
        if found is not None:
            return found
        self.result.containers += 1
        return service.create_container(
            self.session,
            self.actor,
            {"kind": self.holder_kind, "name": name, "parent": self.freezer.barcode},
            self.numbering,
        )

    def boxes(self) -> Iterator[Container]:
        """Boxes in order, existing ones first, then new ones for ever."""
        while True:
            self.number += 1
            holder = self._holder((self.number - 1) // self.per_holder + 1)
            name = f"{self.box_name} {self.number:02d}"
            box = _child(self.session, holder, name)
            if box is None:
                box = service.create_box(
                    self.session,
                    self.actor,
                    {"box_type": self.box_type, "parent": holder.barcode, "name": name},
                    self.numbering,
                )
                self.result.boxes += 1
                self.result.box_codes.append(box.barcode)
            yield box


def load_demo(session: Session, actor: str, numbering: Numbering | None = None) -> StorageDemo:
    """Freezers, racks and boxes at the sponsor's lab, with every unstored demo tube in them."""
    numbering = numbering or Numbering()
    result = StorageDemo()
    site = session.scalar(select(Site).where(Site.code == SITE))
    if site is None:
        return result  # no reference data yet: nothing to build on
    service.load_default_box_types(session, actor)
    freezers = {name: _freezer(session, actor, site, name, numbering, result) for name in FREEZERS}
    unstored = session.execute(
        select(Aliquot, AliquotType.code)
        .join(AliquotType, AliquotType.id == Aliquot.aliquot_type_id)
        .outerjoin(Position, Position.aliquot_id == Aliquot.id)
        .where(Position.id.is_(None), Aliquot.status.in_(IN_HOUSE))
        .order_by(Aliquot.id)
    ).all()
    by_kind: dict[Plan, list[Aliquot]] = {}
    for aliquot, kind in unstored:
        by_kind.setdefault(PLAN.get(kind, OTHER), []).append(aliquot)
    for plan, tubes in by_kind.items():
        shelf = _Shelf(session, actor, freezers[plan[0]], plan, numbering, result)
        targets: list[operations.Target] = []
        for box in shelf.boxes():
            if not tubes:
                break
            box_type = box.box_type
            assert box_type is not None and box_type.rows and box_type.columns
            taken = {
                (p.row_no, p.col_no)
                for p in session.scalars(select(Position).where(Position.box_id == box.id))
                if p.row_no is not None and p.col_no is not None  # always, in a box with a grid
            }
            places, _ = naming.free_positions(box_type.rows, box_type.columns, taken, len(tubes))
            for (row, col), tube in zip(places, tubes, strict=False):
                targets.append(operations.Target(tube, box, row, col))
            tubes = tubes[len(places) :]
        operations.relocate(session, actor, targets, "demo data: stored on receipt")
        result.stored += len(targets)
    return result
