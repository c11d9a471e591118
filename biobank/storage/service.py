"""The storage hierarchy: box types, freezers, holders and boxes, their paths and moves."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CTE,
    BindParameter,
    ScalarSelect,
    Select,
    bindparam,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.custody.service import record_audit, record_events
from biobank.db import json_rows, utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.inputs import bad_character
from biobank.reference.models import Site
from biobank.samples import barcodes
from biobank.samples.models import Aliquot
from biobank.samples.service import Numbering, check_code
from biobank.storage import naming
from biobank.storage.models import (
    DEFAULT_BAND,
    HOLDER_KINDS,
    BoxType,
    Container,
    Position,
)

DEFAULT_BOX_TYPES = (
    {
        "code": "9X9",
        "name": "9×9 cryobox, 81 × 2 mL vials",
        "rows": 9,
        "columns": 9,
        "scheme": "letter-number",
    },
    {
        "code": "9X9-NUM",
        "name": "9×9 cryobox numbered 1…81",
        "rows": 9,
        "columns": 9,
        "scheme": "numeric",
    },
    {
        "code": "10X10",
        "name": "10×10 cryobox, 100 × 1–2 mL vials",
        "rows": 10,
        "columns": 10,
        "scheme": "letter-number",
    },
    {
        "code": "SBS96",
        "name": "8×12 SBS rack, 96 2D-coded tubes",
        "rows": 8,
        "columns": 12,
        "scheme": "letter-number-padded",
    },
    {"code": "BAG", "name": "bag (no grid)", "rows": None, "columns": None, "scheme": "none"},
)


# --- box types -------------------------------------------------------------------------


def create_box_type(session: Session, actor: str, values: dict[str, Any]) -> BoxType:
    """Add a box type; a grid needs rows and columns, a grid-free type has neither."""
    gridded = values["scheme"] != "none"
    if gridded and not (values.get("rows") and values.get("columns")):
        raise Invalid("a box with a grid needs rows and columns", field="rows")
    if not gridded and (values.get("rows") or values.get("columns")):
        raise Invalid("a grid-free box type has no rows or columns", field="rows")
    if gridded and values.get("capacity") is not None:
        raise Invalid("a grid holds rows × columns tubes: leave capacity out", field="capacity")
    if session.scalar(select(BoxType.id).where(BoxType.code == values["code"])) is not None:
        raise Conflict(f"box type {values['code']} exists already", field="code")
    box_type = BoxType(**values)
    session.add(box_type)
    session.flush()
    record_audit(session, actor, "box_type", box_type.code, "created", new_values=values)
    return box_type


def load_default_box_types(session: Session, actor: str) -> int:
    """Add the usual box types that are missing; returns how many were added."""
    known = set(session.scalars(select(BoxType.code)))
    added = [
        create_box_type(session, actor, dict(v))
        for v in DEFAULT_BOX_TYPES
        if v["code"] not in known
    ]
    return len(added)


def box_type_by_code(session: Session, code: str, field_name: str = "box_type") -> BoxType:
    """A box type by code; an unknown one is a 422 naming the field."""
    box_type = session.scalar(select(BoxType).where(BoxType.code == code))
    if box_type is None:
        raise Invalid(f"unknown box type {code!r}", field=field_name)
    return box_type


# --- creating containers ---------------------------------------------------------------


def _issue(session: Session, prefix: str, numbering: Numbering) -> str:
    [code] = barcodes.issue(session, prefix, 1, numbering.digits)
    return code


def create_freezer(
    session: Session, actor: str, values: dict[str, Any], numbering: Numbering
) -> Container:
    """Register a freezer (or LN2 tank) at a site; its MIABIS band defaults from its type."""
    site = session.scalar(select(Site).where(Site.code == values["site"]))
    if site is None:
        raise Invalid(f"unknown site {values['site']!r}", field="site")
    scope.require_site(scope.of(session), site.code)
    if session.scalar(
        select(Container.id).where(Container.site_id == site.id, Container.name == values["name"])
    ):
        raise Conflict(f"{site.code} has a freezer called {values['name']} already", field="name")
    band = values.get("temperature_band") or DEFAULT_BAND[values["freezer_type"]]
    freezer = Container(
        barcode=_issue(session, naming.CONTAINER_PREFIX, numbering),
        kind="freezer",
        name=values["name"],
        site_id=site.id,
        freezer_type=values["freezer_type"],
        temperature_band=band,
        room=values.get("room"),
    )
    session.add(freezer)
    session.flush()
    record_audit(
        session,
        actor,
        "container",
        freezer.barcode,
        "created",
        new_values={
            "kind": "freezer",
            "name": freezer.name,
            "site": site.code,
            "freezer_type": freezer.freezer_type,
            "temperature_band": band,
            "room": freezer.room,
        },
    )
    return freezer


def _check_parent(session: Session, parent: Container, name: str) -> None:
    # A box's name goes on its label: no line breaks or other control characters, whoever
    # calls (the API's schemas refuse them already).
    if why := bad_character(name):
        raise Invalid(f"the name {why}", field="name")
    if parent.kind == "box":
        raise Invalid(f"{parent.barcode} is a box: it holds tubes, not containers", field="parent")
    if session.scalar(
        select(Container.id).where(Container.parent_id == parent.id, Container.name == name)
    ):
        raise Conflict(f"{parent.name} holds a {name} already", field="name")


def create_container(
    session: Session, actor: str, values: dict[str, Any], numbering: Numbering
) -> Container:
    """Add a shelf, rack, drawer… inside a freezer or another holder."""
    if values["kind"] not in HOLDER_KINDS:
        raise Invalid(f"kind must be one of {', '.join(HOLDER_KINDS)}", field="kind")
    parent = get_container(session, values["parent"], numbering, "parent")
    _check_parent(session, parent, values["name"])
    container = Container(
        barcode=_issue(session, naming.CONTAINER_PREFIX, numbering),
        kind=values["kind"],
        name=values["name"],
        parent_id=parent.id,
    )
    session.add(container)
    session.flush()
    record_audit(
        session,
        actor,
        "container",
        container.barcode,
        "created",
        new_values={"kind": container.kind, "name": container.name, "parent": parent.barcode},
    )
    return container


def create_box(
    session: Session, actor: str, values: dict[str, Any], numbering: Numbering
) -> Container:
    """Add a box (or a grid-free bag or bin) inside a holder; named by its barcode unless
    a name is given."""
    box_type = box_type_by_code(session, values["box_type"])
    parent = get_container(session, values["parent"], numbering, "parent")
    external = values.get("external_barcode")
    if external:
        external = barcodes.normalize(external)
        if why := barcodes.external_problem(external):
            raise Invalid(why, field="external_barcode")
        if barcodes.looks_own(external, numbering.prefixes):
            raise Invalid(
                f"{external} looks like a code this service issues", field="external_barcode"
            )
        if session.scalar(select(Container.id).where(Container.external_barcode == external)):
            raise Conflict(f"a box with code {external} exists already", field="external_barcode")
    code = _issue(session, naming.BOX_PREFIX, numbering)
    name = values.get("name") or code
    _check_parent(session, parent, name)
    box = Container(
        barcode=code,
        kind="box",
        name=name,
        parent_id=parent.id,
        box_type_id=box_type.id,
        external_barcode=external,
    )
    session.add(box)
    session.flush()
    record_audit(
        session,
        actor,
        "container",
        code,
        "created",
        new_values={
            "kind": "box",
            "name": name,
            "parent": parent.barcode,
            "box_type": box_type.code,
            "external_barcode": external,
        },
    )
    return box


# --- looking up ------------------------------------------------------------------------


def get_container(
    session: Session, code: str, numbering: Numbering, field_name: str | None = None
) -> Container:
    """A container by its barcode or a rack's own code: 404, or 422 naming the field."""
    code = check_code(code, numbering, field_name or "code")
    container = session.scalar(
        select(Container).where(
            (Container.barcode == code) | (Container.external_barcode == code),
            scope.container_filter(scope.of(session), Container.id),
        )
    )
    if container is None:
        if field_name:
            raise Invalid(f"no container {code}", field=field_name)
        raise NotFound(f"no container {code}")
    return container


def containers_query(within: scope.Scope, kind: str) -> Select[Any]:
    """The containers of one kind (freezers, boxes…) at the scope's sites, by id."""
    return (
        select(Container)
        .where(Container.kind == kind, scope.container_filter(within, Container.id))
        .order_by(Container.id)
    )


def get_box(
    session: Session, code: str, numbering: Numbering, field_name: str | None = None
) -> Container:
    """A box by barcode; a container that is not a box is refused like an unknown one."""
    box = get_container(session, code, numbering, field_name)
    if box.kind != "box":
        message = f"{box.barcode} is a {box.kind}, not a box"
        if field_name:
            raise Invalid(message, field=field_name)
        raise NotFound(message)
    return box


def path_text(site: str | None, names: Iterable[str]) -> str:
    """A place as people read it, from its site and the names of its chain of containers:
    "NL-PMC / F-80-01 / Shelf 2 / Rack B / BX…" (the one place a path is written)."""
    return " / ".join([site or "", *names])


@dataclass(frozen=True)
class Lineage:
    """A container's place in the tree: its site and its chain of containers from the
    freezer down to itself (names and barcodes, in that order)."""

    freezer_id: int
    site: str
    names: tuple[str, ...]
    barcodes: tuple[str, ...]

    @property
    def freezer(self) -> str:
        """The freezer's barcode."""
        return self.barcodes[0]

    @property
    def path(self) -> str:
        """The container's path, site first."""
        return path_text(self.site, self.names)

    @property
    def freezer_path(self) -> str:
        """The freezer's path: site and freezer."""
        return path_text(self.site, self.names[:1])


def _ancestors(ids: Iterable[Any] | BindParameter[Any]) -> CTE[Any]:
    table = Container.__table__
    anchor = (
        select(
            table.c.id.label("start"),
            table.c.id.label("node"),
            table.c.parent_id.label("up"),
            literal(0).label("depth"),
        )
        .where(table.c.id.in_(ids))
        .cte("chain", recursive=True)
    )
    return anchor.union_all(
        select(anchor.c.start, table.c.id, table.c.parent_id, anchor.c.depth + 1).join(
            table, table.c.id == anchor.c.up
        )
    )


def _lineages_query() -> Select[Any]:
    chain = _ancestors(bindparam("ids", expanding=True))
    table, site = Container.__table__, Site.__table__
    return (
        select(chain.c.start, chain.c.depth, table.c.id, table.c.name, table.c.barcode, site.c.code)
        .join(table, table.c.id == chain.c.node)
        .outerjoin(site, site.c.id == table.c.site_id)
        .order_by(chain.c.start, chain.c.depth.desc())
    )


# Built once, read as plain rows: box maps, scans of boxes and every move ask for paths.
_LINEAGES = _lineages_query()


def lineages(session: Session, ids: list[int] | set[int]) -> dict[int, Lineage]:
    """Path ("NL-PMC / F-80-01 / Shelf 2 / Rack B / BX…") and freezer of each container, in
    one recursive query."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    rows = session.execute(_LINEAGES, {"ids": ids}).all()
    chains: dict[int, list[dict[str, Any]]] = {}
    for start, depth, node_id, name, code, site in rows:
        chains.setdefault(start, []).append(
            {"depth": depth, "id": node_id, "name": name, "barcode": code, "site": site}
        )
    return {start: lineage_of(nodes) for start, nodes in chains.items()}


def lineage_column(container_id: Any) -> ScalarSelect[Any]:
    """A container's chain up to its freezer as one JSON value of an enclosing statement
    (read back by ``lineage_of``)."""
    chain = _ancestors([container_id])
    table, site = Container.__table__, Site.__table__
    return (
        select(
            json_rows(
                depth=chain.c.depth,
                id=table.c.id,
                name=table.c.name,
                barcode=table.c.barcode,
                site=site.c.code,
            )
        )
        .select_from(chain)
        .join(table, table.c.id == chain.c.node)
        .outerjoin(site, site.c.id == table.c.site_id)
        .scalar_subquery()
    )


def lineage_of(nodes: list[dict[str, Any]]) -> Lineage:
    """The Lineage from a chain of containers (each with ``depth``, 0 for the container
    itself, and ``id``, ``name``, ``barcode`` and, at the freezer, ``site``), as
    ``lineage_column`` and ``lineages`` read it."""
    chain = sorted(nodes, key=lambda n: -n["depth"])
    root = chain[0]
    return Lineage(
        freezer_id=root["id"],
        site=root["site"],
        names=tuple(n["name"] for n in chain),
        barcodes=tuple(n["barcode"] for n in chain),
    )


def ancestor_ids(session: Session, container_id: int) -> set[int]:
    """The container and every container above it."""
    chain = _ancestors([container_id])
    return set(session.scalars(select(chain.c.node)))


def subtree_ids(session: Session, container_id: int) -> set[int]:
    """The container and everything inside it, at any depth."""
    table = Container.__table__
    down = select(table.c.id).where(table.c.id == container_id).cte("down", recursive=True)
    down = down.union_all(select(table.c.id).join(down, table.c.parent_id == down.c.id))
    return set(session.scalars(select(down.c.id)))


def children(session: Session, container: Container) -> list[Container]:
    """The containers directly inside one, by name."""
    return list(
        session.scalars(
            select(Container)
            .where(Container.parent_id == container.id)
            .order_by(Container.kind, Container.name)
        )
    )


def occupancy(session: Session, box_ids: list[int]) -> dict[int, int]:
    """How many tubes each box holds."""
    if not box_ids:
        return {}
    return dict(
        session.execute(
            select(Position.box_id, func.count())
            .where(Position.box_id.in_(box_ids))
            .group_by(Position.box_id)
        ).all()
    )


# --- moving a box or a rack ------------------------------------------------------------


def move_container(
    session: Session, actor: str, container: Container, into: Container, reason: str | None = None
) -> Container:
    """Move a box or a holder (with everything in it) into another container.

    One container row changes; every tube inside gets one custody event, inserted in bulk.
    The rows on the path are locked in id order, then the path is read again, so two
    crossing moves can never make a loop.
    """
    if container.kind == "freezer":
        raise Invalid("a freezer stands at a site; it cannot go into a container", field="barcode")
    if into.kind == "box":
        raise Invalid(f"{into.barcode} is a box: it holds tubes, not containers", field="into")
    if into.id == container.id:
        raise Invalid("a container cannot go into itself", field="into")
    above = ancestor_ids(session, into.id)
    session.execute(
        select(Container.id)
        .where(Container.id.in_(above | {container.id}))
        .order_by(Container.id)
        .with_for_update()
    )
    if container.id in ancestor_ids(session, into.id):
        raise Invalid(
            f"{into.barcode} is inside {container.barcode}: a container cannot go "
            "into its own descendant",
            field="into",
        )
    if container.parent_id == into.id:
        raise Conflict(f"{container.barcode} is in {into.barcode} already", field="into")
    if session.scalar(
        select(Container.id).where(Container.parent_id == into.id, Container.name == container.name)
    ):
        raise Conflict(f"{into.name} holds a {container.name} already", field="into")
    inside = subtree_ids(session, container.id)
    tubes = session.execute(
        select(
            Position.aliquot_id,
            Position.box_id,
            Position.row_no,
            Position.col_no,
            Position.out_since,
            Aliquot.barcode,
        )
        .join(Aliquot, Aliquot.id == Position.aliquot_id)
        .where(Position.box_id.in_(inside))
    ).all()
    boxes = {t.box_id for t in tubes}
    before = lineages(session, boxes | {container.id})
    old_parent = session.get(Container, container.parent_id)
    session.execute(update(Container).where(Container.id == container.id).values(parent_id=into.id))
    session.expire(container, ["parent_id"])
    after = lineages(session, boxes | {container.id})
    labels = labellers(session, boxes)
    events = []
    for tube in tubes:
        label = labels[tube.box_id](tube.row_no, tube.col_no)
        events.append(
            {
                "event_type": "moved",
                "aliquot_id": tube.aliquot_id,
                "reason": reason,
                "old_values": where_values(
                    before[tube.box_id],
                    tube.box_id,
                    label,
                    tube.out_since,
                    container=old_parent.barcode if old_parent else None,
                ),
                "new_values": where_values(
                    after[tube.box_id], tube.box_id, label, tube.out_since, container=into.barcode
                ),
            }
        )
    record_events(session, events, actor, utcnow())
    record_audit(
        session,
        actor,
        "container",
        container.barcode,
        "moved",
        reason=reason,
        old_values={
            "parent": old_parent.barcode if old_parent else None,
            "path": before[container.id].path,
        },
        new_values={"parent": into.barcode, "path": after[container.id].path, "tubes": len(tubes)},
    )
    return container


# (row, col) → a position's label as people read it ("A1", "12"); None where there is none.
Labeller = Callable[[int | None, int | None], str | None]


def labellers(session: Session, box_ids: set[int]) -> dict[int, Labeller]:
    """box id → a function (row, col) → label, from one query."""
    if not box_ids:
        return {}
    kinds = session.execute(
        select(Container.id, BoxType.scheme, BoxType.columns)
        .join(BoxType, BoxType.id == Container.box_type_id)
        .where(Container.id.in_(box_ids))
    ).all()
    return {box_id: labeller(scheme, columns) for box_id, scheme, columns in kinds}


def labeller(scheme: str, columns: int | None) -> Labeller:
    """The labeller of a box of this scheme and width (None: a box without a grid)."""

    def render(row: int | None, col: int | None) -> str | None:
        if row is None or col is None or columns is None:
            return None
        return naming.label(scheme, columns, row, col)

    return render


def where_values(
    lineage: Lineage, box_id: int, label: str | None, out_since: Any, **extra: Any
) -> dict[str, Any]:
    """A tube's place as custody events record it; ``freezer_id`` is None when out."""
    return {
        "box": lineage.barcodes[-1],
        "box_id": box_id,
        "position": label,
        "freezer_id": None if out_since else lineage.freezer_id,
        "path": lineage.path,
        **extra,
    }
