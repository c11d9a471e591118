"""Where a tube or container is, as the scan and the storage pages show it: the tube's
chain of containers and condition notes (as columns of the scan's one statement, or a query
of their own), a box, rack or freezer's card, a container with what it holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, bindparam, literal, select
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.db import json_rows, json_timestamp
from biobank.errors import NotFound
from biobank.reference.models import Site
from biobank.samples.models import Aliquot
from biobank.storage import naming
from biobank.storage.boxmap import box_summary
from biobank.storage.models import BoxType, Condition, Container, Position, Thaw
from biobank.storage.service import lineage_of, lineages, occupancy


def location_columns(
    aliquot_id: ColumnElement[int], code: ColumnElement[str]
) -> dict[str, ScalarSelect[Any]]:
    """Where a tube is, as columns of one statement (read back by ``location_of``): the chain
    of containers from its box up to the freezer, with its position, and its condition
    notes, each one JSON value. ``aliquot_id`` is the tube's id column in the enclosing
    statement; ``code`` its barcode (a recursive query cannot be correlated, so the chain
    starts from the barcode)."""
    table = Container.__table__
    chain = (
        select(Position.box_id.label("node"), literal(0).label("depth"))
        .join(Aliquot, Aliquot.id == Position.aliquot_id)
        .where(Aliquot.barcode == code)
        .cte("place", recursive=True)
    )
    chain = chain.union_all(
        select(table.c.parent_id, chain.c.depth + 1)
        .join(table, table.c.id == chain.c.node)
        .where(table.c.parent_id.is_not(None))
    )
    nodes = (
        select(
            json_rows(
                depth=chain.c.depth,
                id=Container.id,
                name=Container.name,
                barcode=Container.barcode,
                site=Site.code,
                row_no=Position.row_no,
                col_no=Position.col_no,
                out_since=Position.out_since,
                scheme=BoxType.scheme,
                columns=BoxType.columns,
            )
        )
        .select_from(chain)
        .join(Container, Container.id == chain.c.node)
        .join(Position, Position.aliquot_id == aliquot_id)
        .outerjoin(Site, Site.id == Container.site_id)
        .outerjoin(BoxType, and_(BoxType.id == Container.box_type_id, chain.c.depth == 0))
    )
    notes = select(
        json_rows(id=Condition.id, note=Condition.note, recorded_at=Condition.recorded_at)
    ).where(Condition.aliquot_id == aliquot_id)
    return {
        "location_nodes": nodes.scalar_subquery(),
        "location_conditions": notes.scalar_subquery(),
    }


def location_of(
    nodes: list[dict[str, Any]] | None, notes: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The scan's ``location`` and ``conditions`` from the columns of ``location_columns``."""
    conditions = [
        {"note": n["note"], "recorded_at": json_timestamp(n["recorded_at"])}
        for n in sorted(notes or (), key=lambda n: (n["recorded_at"], n["id"]))
    ]
    if not nodes:
        return {"location": None, "conditions": conditions}
    lineage = lineage_of(nodes)
    box = min(nodes, key=lambda r: r["depth"])
    label = (
        naming.label(box["scheme"], box["columns"], box["row_no"], box["col_no"])
        if box["row_no"] is not None
        else None
    )
    taken_out_at = json_timestamp(box["out_since"])
    return {
        "location": {
            "box": box["barcode"],
            "position": label,
            "path": lineage.path,
            "freezer": lineage.freezer,
            "taken_out": taken_out_at is not None,
            "taken_out_at": taken_out_at,
        },
        "conditions": conditions,
    }


_aliquot = Aliquot.__table__
_LOCATION = select(
    *(
        column.label(name)
        for name, column in location_columns(_aliquot.c.id, bindparam("code")).items()
    )
).where(_aliquot.c.barcode == bindparam("code"))


def scan_location(session: Session, barcode: str) -> dict[str, Any]:
    """A tube's ``location`` and ``conditions`` as the scan shows them (one query)."""
    row = session.execute(_LOCATION, {"code": barcode}).one()
    return location_of(row.location_nodes, row.location_conditions)


def container_card(session: Session, container: Container) -> dict[str, Any]:
    """The scan of a box, rack or freezer code: what it is and where."""
    lineage = lineages(session, [container.id])[container.id]
    location: dict[str, Any] = {
        "path": lineage.path,
        "freezer": lineage.freezer,
        "name": container.name,
        "kind": container.kind,
    }
    if container.kind == "box":
        location.update(
            box_summary(container, lineage, occupancy(session, [container.id]).get(container.id, 0))
        )
    return {
        "kind": "box" if container.kind == "box" else "container",
        "barcode": container.barcode,
        "location": location,
        "conditions": [],
        "recent_events": [],
    }


def aliquot_storage(session: Session, aliquot: Aliquot) -> dict[str, Any]:
    """Where a tube is, whether it is thawed, and its condition notes."""
    thawed = session.get(Thaw, aliquot.id) is not None
    return {
        "barcode": aliquot.barcode,
        "status": aliquot.status,
        "freeze_thaw_count": aliquot.freeze_thaw_count,
        "thawed": thawed,
        **scan_location(session, aliquot.barcode),
    }


def describe_container(session: Session, container: Container) -> dict[str, Any]:
    """A container with its path and what it directly holds."""
    lineage = lineages(session, [container.id])[container.id]
    inside = list(
        session.scalars(
            select(Container).where(Container.parent_id == container.id).order_by(Container.name)
        )
    )
    counts = occupancy(session, [c.id for c in inside if c.kind == "box"])
    parent_code = lineage.barcodes[-2] if len(lineage.barcodes) > 1 else None
    return {
        "barcode": container.barcode,
        "kind": container.kind,
        "name": container.name,
        "path": lineage.path,
        "freezer": lineage.freezer,
        "site": lineage.site,
        "parent": parent_code,
        "freezer_type": container.freezer_type,
        "temperature_band": container.temperature_band,
        "room": container.room,
        "box_type": container.box_type.code if container.box_type else None,
        "external_barcode": container.external_barcode,
        "children": [
            {
                "barcode": c.barcode,
                "kind": c.kind,
                "name": c.name,
                **(
                    {"box_type": c.box_type.code, "occupied": counts.get(c.id, 0)}
                    if c.box_type
                    else {}
                ),
            }
            for c in inside
        ],
    }


def scan_container(session: Session, code: str) -> dict[str, Any]:
    """The scan of a code that is no tube: a box, rack or freezer, or a 404."""
    container = session.scalar(
        select(Container).where(
            (Container.barcode == code) | (Container.external_barcode == code),
            scope.container_filter(scope.of(session), Container.id),
        )
    )
    if container is None:
        raise NotFound(f"{code} is not a code this biobank knows")
    return container_card(session, container)
