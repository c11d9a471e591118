"""Freezer capacity: used and free positions per site, freezer and box type; the empty
positions; boxes that could be merged (defragmentation).

A position is used while a tube that has not left the biobank holds it (a tube taken out for
a moment keeps its place), as the storage pages count it (``storage.operations.DEPARTED``).
Boxes without a grid count their tubes as loose, with positions only when the box type states
a capacity. Each box's freezer is found by one recursive query up the container tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from biobank.auth import scope as sites
from biobank.reference.models import Site
from biobank.reports.scope import ReportScope, sites_asked
from biobank.samples.models import Aliquot
from biobank.storage import naming
from biobank.storage.models import BoxType, Container, Position
from biobank.storage.operations import DEPARTED

SUMMARY_HEADER = (
    "site",
    "freezer",
    "freezer_barcode",
    "box_type",
    "boxes",
    "positions",
    "occupied",
    "free",
    "loose",
    "fill_percent",
)
EMPTY_HEADER = ("site", "freezer", "box", "box_name", "box_type", "position")
DEFRAG_HEADER = (
    "site",
    "freezer",
    "box_type",
    "box",
    "box_name",
    "occupied",
    "merge_into",
    "merge_into_name",
    "free_there",
)


def _boxes(session: Session, scope: ReportScope, args: dict[str, Any]) -> Any:
    """Each box in scope with its freezer, its size (None: unknown) and its tubes."""
    table = Container.__table__
    up = (
        select(table.c.id.label("box_id"), table.c.parent_id.label("node"))
        .where(table.c.kind == "box")
        .cte("up", recursive=True)
    )
    up = up.union_all(
        select(up.c.box_id, table.c.parent_id)
        .join(table, table.c.id == up.c.node)
        .where(table.c.parent_id.is_not(None))
    )
    freezer = aliased(Container, name="freezer")
    box = aliased(Container, name="box")
    # Tubes per box from the positions' (box, row, column) index alone, less the few that
    # left (found through the status index): no lookup of a million tubes' statuses.
    placed = (
        select(Position.box_id, func.count().label("tubes"))
        .group_by(Position.box_id)
        .subquery("placed")
    )
    departed = (
        select(Position.box_id, func.count().label("tubes"))
        .join(Aliquot, Aliquot.id == Position.aliquot_id)
        .where(Aliquot.status.in_(DEPARTED))
        .group_by(Position.box_id)
        .subquery("departed")
    )
    used = (
        select(
            placed.c.box_id, (placed.c.tubes - func.coalesce(departed.c.tubes, 0)).label("tubes")
        )
        .outerjoin(departed, departed.c.box_id == placed.c.box_id)
        .subquery("used")
    )
    size = case((BoxType.rows.is_not(None), BoxType.rows * BoxType.columns), else_=BoxType.capacity)
    query: Any = (
        select(
            Site.code.label("site"),
            freezer.name.label("freezer"),
            freezer.barcode.label("freezer_barcode"),
            freezer.id.label("freezer_id"),
            box.id.label("box_id"),
            box.barcode.label("box"),
            box.name.label("box_name"),
            BoxType.code.label("box_type"),
            BoxType.scheme,
            BoxType.rows,
            BoxType.columns,
            size.label("size"),
            func.coalesce(used.c.tubes, 0).label("tubes"),
        )
        .select_from(up)
        .join(freezer, and_(freezer.id == up.c.node, freezer.kind == "freezer"))
        .join(box, box.id == up.c.box_id)
        .join(BoxType, BoxType.id == box.box_type_id)
        .join(Site, Site.id == freezer.site_id)
        .outerjoin(used, used.c.box_id == box.id)
    )
    covered = sites_asked(session, scope, args.get("site"), args.get("country"))
    query = query.where(sites.site_filter(covered, Site.code))  # the freezer's site
    if args.get("box_type"):
        query = query.where(BoxType.code == args["box_type"])
    return query.subquery("boxes")


def summary(session: Session, scope: ReportScope, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Boxes, positions, used and free positions per site, freezer and box type."""
    boxes = _boxes(session, scope, args)
    sized = boxes.c.size.is_not(None)
    rows = session.execute(
        select(
            boxes.c.site,
            boxes.c.freezer,
            boxes.c.freezer_barcode,
            boxes.c.box_type,
            func.count().label("boxes"),
            func.coalesce(func.sum(boxes.c.size), 0).label("positions"),
            func.coalesce(func.sum(case((sized, boxes.c.tubes), else_=0)), 0).label("occupied"),
            func.coalesce(
                func.sum(
                    case(
                        (sized & (boxes.c.size > boxes.c.tubes), boxes.c.size - boxes.c.tubes),
                        else_=0,
                    )
                ),
                0,
            ).label("free"),
            func.coalesce(func.sum(case((sized, 0), else_=boxes.c.tubes)), 0).label("loose"),
        )
        .group_by(boxes.c.site, boxes.c.freezer, boxes.c.freezer_barcode, boxes.c.box_type)
        .order_by(boxes.c.site, boxes.c.freezer, boxes.c.box_type)
    ).all()
    return [
        {
            "site": r.site,
            "freezer": r.freezer,
            "freezer_barcode": r.freezer_barcode,
            "box_type": r.box_type,
            "boxes": r.boxes,
            "positions": int(r.positions),
            "occupied": int(r.occupied),
            "free": int(r.free),
            "loose": int(r.loose),
            "fill_percent": round(100 * int(r.occupied) / int(r.positions), 1)
            if r.positions
            else None,
        }
        for r in rows
    ]


def empty_positions(
    session: Session, scope: ReportScope, args: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Every free position of every gridded box in scope, in freezer and box order."""
    boxes = _boxes(session, scope, args)
    open_boxes = session.execute(
        select(boxes)
        .where(boxes.c.rows.is_not(None), boxes.c.size > boxes.c.tubes)
        .order_by(boxes.c.site, boxes.c.freezer, boxes.c.box)
    ).all()
    taken: dict[int, set[tuple[int, int]]] = {}
    ids = [b.box_id for b in open_boxes]
    for start in range(0, len(ids), 500):
        for box_id, row_no, col_no in session.execute(
            select(Position.box_id, Position.row_no, Position.col_no)
            .join(Aliquot, Aliquot.id == Position.aliquot_id)
            .where(
                Position.box_id.in_(ids[start : start + 500]),
                Aliquot.status.not_in(DEPARTED),
                Position.row_no.is_not(None),
            )
        ):
            taken.setdefault(box_id, set()).add((row_no or 0, col_no or 0))
    for b in open_boxes:
        used = taken.get(b.box_id, set())
        for row in range(1, b.rows + 1):
            for col in range(1, b.columns + 1):
                if (row, col) not in used:
                    yield {
                        "site": b.site,
                        "freezer": b.freezer,
                        "box": b.box,
                        "box_name": b.box_name,
                        "box_type": b.box_type,
                        "position": naming.label(b.scheme, b.columns, row, col),
                    }


def defragmentation(
    session: Session, scope: ReportScope, args: dict[str, Any]
) -> list[dict[str, Any]]:
    """Boxes whose tubes would fit into another box of the same type in the same freezer:
    the emptiest boxes first, each into the fullest box that still has room (first fit), no
    box both emptied and filled."""
    boxes = _boxes(session, scope, args)
    partial = session.execute(
        select(boxes)
        .where(boxes.c.size.is_not(None), boxes.c.tubes > 0, boxes.c.tubes < boxes.c.size)
        .order_by(boxes.c.freezer_id, boxes.c.box_type, boxes.c.tubes, boxes.c.box)
    ).all()
    groups: dict[tuple[int, str], list[Any]] = {}
    for b in partial:
        groups.setdefault((b.freezer_id, b.box_type), []).append(b)
    merges = []
    for members in groups.values():
        room = {b.box_id: b.size - b.tubes for b in members}
        emptied: set[int] = set()
        filled: set[int] = set()
        for source in members:  # emptiest first
            if source.box_id in filled:
                continue
            for target in reversed(members):  # fullest first
                if (
                    target.box_id == source.box_id
                    or target.box_id in emptied
                    or room[target.box_id] < source.tubes
                ):
                    continue
                room[target.box_id] -= source.tubes
                emptied.add(source.box_id)
                filled.add(target.box_id)
                merges.append(
                    {
                        "site": source.site,
                        "freezer": source.freezer,
                        "box_type": source.box_type,
                        "box": source.box,
                        "box_name": source.box_name,
                        "occupied": source.tubes,
                        "merge_into": target.box,
                        "merge_into_name": target.box_name,
                        "free_there": target.size - target.tubes,
                    }
                )
                break
    return sorted(merges, key=lambda m: (m["site"], m["freezer"], m["box_type"], m["box"]))
