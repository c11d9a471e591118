"""Reading storage: box maps, where to put new tubes, capacity (what the scan shows of a
tube's place is ``biobank.storage.location``).

Each reader costs a fixed number of queries whatever the size of the box or the freezer.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    ScalarSelect,
    Select,
    bindparam,
    exists,
    func,
    select,
)
from sqlalchemy.orm import Session

from biobank import clock
from biobank.auth import scope
from biobank.consent import rule
from biobank.consent.models import ConsentEntry
from biobank.db import json_rows
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Timepoint
from biobank.samples.models import Aliquot, Sample
from biobank.samples.states import DEPARTED
from biobank.storage import naming
from biobank.storage.models import BoxType, Condition, Container, Position, Thaw
from biobank.storage.service import (
    Lineage,
    lineage_column,
    lineage_of,
    lineages,
    occupancy,
    subtree_ids,
)

# The consent of a tube whose link to a patient was cut (biobank.consent.anonymise).
ANONYMISED = "anonymised"


def _storage_log(patient_ids: Any) -> ScalarSelect[Any]:
    """The storage entries of these patients' consent logs as one JSON value (the consent
    rule's JSON-log form, read back by ``_states_of``)."""
    return rule.log_column(ConsentEntry.patient_id.in_(patient_ids), storage_only=True)


def _states_of(log: list[dict[str, Any]] | None) -> dict[int, str | None]:
    """Each patient's storage consent as it stands today (the rule's standing: given,
    withdrawn, declined, reconsent_needed), from the JSON of ``_storage_log``."""
    today = clock.today()
    found: dict[int, str | None] = {}
    for patient, lines in rule.read_log(log).items():
        entry = rule.state_on(lines, today).get(rule.STORAGE)
        found[patient] = None if entry is None else rule.standing(entry, today, entry.of_age)
    return found


def box_summary(box: Container, lineage: Lineage, occupied: int) -> dict[str, Any]:
    """A box as lists show it."""
    box_type = box.box_type
    assert box_type is not None
    size = box_type.size
    return {
        "barcode": box.barcode,
        "external_barcode": box.external_barcode,
        "name": box.name,
        "path": lineage.path,
        "freezer": lineage.freezer,
        "box_type": box_type.code,
        "rows": box_type.rows,
        "columns": box_type.columns,
        "scheme": box_type.scheme,
        "capacity": size,
        "occupied": occupied,
        "free": None if size is None else max(size - occupied, 0),
    }


def describe_boxes(session: Session, boxes: list[Container]) -> list[dict[str, Any]]:
    """Summaries of many boxes: two queries (paths, occupancy)."""
    ids = [b.id for b in boxes]
    paths = lineages(session, ids)
    counts = occupancy(session, ids)
    return [box_summary(b, paths[b.id], counts.get(b.id, 0)) for b in boxes]


@functools.cache
def _map_statement() -> Select[Any]:
    """The box ``:box_id``'s chain up to its freezer, its tubes (with type, patient,
    timepoint, thaw and condition flags) and its patients' storage consent log (with the
    consent domain), as three JSON values of one row; built once."""
    box_id = bindparam("box_id")
    position, aliquot, sample = Position.__table__, Aliquot.__table__, Sample.__table__
    patient, timepoint, thaw = Patient.__table__, Timepoint.__table__, Thaw.__table__
    kind, condition = AliquotType.__table__, Condition.__table__
    in_box = position.join(aliquot, aliquot.c.id == position.c.aliquot_id).join(
        sample, sample.c.id == aliquot.c.sample_id
    )
    tubes = (
        select(
            json_rows(
                row_no=position.c.row_no,
                col_no=position.c.col_no,
                out_since=position.c.out_since,
                barcode=aliquot.c.barcode,
                status=aliquot.c.status,
                freeze_thaw_count=aliquot.c.freeze_thaw_count,
                aliquot_type=kind.c.code,
                patient_id=patient.c.id,
                study_id=patient.c.study_id,
                timepoint=timepoint.c.code,
                thawed_at=thaw.c.thawed_at,
                flagged=exists().where(condition.c.aliquot_id == position.c.aliquot_id),
            )
        )
        .select_from(
            in_box.join(kind, kind.c.id == aliquot.c.aliquot_type_id)
            .outerjoin(patient, patient.c.id == sample.c.patient_id)
            .outerjoin(timepoint, timepoint.c.id == sample.c.timepoint_id)
            .outerjoin(thaw, thaw.c.aliquot_id == position.c.aliquot_id)
        )
        .where(position.c.box_id == box_id)
        .scalar_subquery()
    )
    consent = _storage_log(
        select(sample.c.patient_id).select_from(in_box).where(position.c.box_id == box_id)
    )
    return select(
        lineage_column(box_id).label("nodes"), tubes.label("tubes"), consent.label("consent")
    )


def box_map(session: Session, box: Container) -> dict[str, Any]:
    """The grid of a box with every tube in it, in one query: its path, its tubes and their
    patients' storage consent."""
    box_type = box.box_type
    assert box_type is not None
    found = session.execute(_map_statement(), {"box_id": box.id}).one()
    lineage = lineage_of(found.nodes)
    tubes = sorted(
        found.tubes or (), key=lambda t: (t["row_no"] or 0, t["col_no"] or 0, t["barcode"])
    )
    consent = _states_of(found.consent)

    def tube(t: dict[str, Any]) -> dict[str, Any]:
        return {
            "barcode": t["barcode"],
            "aliquot_type": t["aliquot_type"],
            "study_id": t["study_id"],
            "timepoint": t["timepoint"],
            "status": t["status"],
            # An anonymised tube has no patient, so no consent: it says so.
            "consent": ANONYMISED if t["patient_id"] is None else consent.get(t["patient_id"]),
            "freeze_thaw_count": t["freeze_thaw_count"],
            "taken_out": t["out_since"] is not None,
            "thawed": t["thawed_at"] is not None,
            "condition": bool(t["flagged"]),
        }

    summary = box_summary(box, lineage, len(tubes))
    if not box_type.gridded:
        return {**summary, "positions": [], "loose": [tube(t) for t in tubes]}
    by_place = {(t["row_no"], t["col_no"]): tube(t) for t in tubes}
    rows, columns = box_type.rows or 0, box_type.columns or 0
    grid = [
        {
            "position": naming.label(box_type.scheme, columns, r, c),
            "row": r,
            "column": c,
            "aliquot": by_place.get((r, c)),
        }
        for r in range(1, rows + 1)
        for c in range(1, columns + 1)
    ]
    return {**summary, "positions": grid, "loose": []}


def _taken(session: Session, box_ids: list[int]) -> dict[int, set[tuple[int, int]]]:
    """Places held in each box (a tube that left the biobank holds none)."""
    taken: dict[int, set[tuple[int, int]]] = {i: set() for i in box_ids}
    for box_id, row, col in session.execute(
        select(Position.box_id, Position.row_no, Position.col_no)
        .join(Aliquot, Aliquot.id == Position.aliquot_id)
        .where(
            Position.box_id.in_(box_ids),
            Position.row_no.is_not(None),
            Aliquot.status.not_in(DEPARTED),
        )
    ):
        taken[box_id].add((row, col))
    return taken


def _offer(
    box: Container, places: list[tuple[int, int]], contiguous: bool, path: str
) -> dict[str, Any]:
    box_type = box.box_type
    assert box_type is not None and box_type.columns is not None
    return {
        "box": box.barcode,
        "path": path,
        "contiguous": contiguous,
        "positions": [naming.label(box_type.scheme, box_type.columns, r, c) for r, c in places],
    }


def suggest(session: Session, box: Container, count: int) -> dict[str, Any]:
    """Free positions in one box for ``count`` tubes, in one unbroken run if possible."""
    box_type = box.box_type
    assert box_type is not None
    if not box_type.gridded:
        return {
            "box": box.barcode,
            "path": lineages(session, [box.id])[box.id].path,
            "contiguous": True,
            "positions": [],
        }
    places, contiguous = naming.free_positions(
        box_type.rows or 0, box_type.columns or 0, _taken(session, [box.id])[box.id], count
    )
    return _offer(box, places, contiguous, lineages(session, [box.id])[box.id].path)


def suggest_anywhere(
    session: Session, count: int, within: Container | None = None, box_type: BoxType | None = None
) -> list[dict[str, Any]]:
    """Where to store ``count`` new tubes: the first box (in path order) with an unbroken run
    of free places; else the places in path order, across boxes."""
    query = (
        select(Container)
        .join(BoxType, BoxType.id == Container.box_type_id)
        .where(
            Container.kind == "box",
            BoxType.scheme != "none",
            scope.container_filter(scope.of(session), Container.id),
        )
    )
    if within is not None:
        query = query.where(Container.id.in_(subtree_ids(session, within.id)))
    if box_type is not None:
        query = query.where(Container.box_type_id == box_type.id)
    boxes = list(session.scalars(query))
    paths = lineages(session, [b.id for b in boxes])
    taken = _taken(session, [b.id for b in boxes])
    boxes.sort(key=lambda b: paths[b.id].path)
    for box in boxes:
        bt = box.box_type
        places, contiguous = naming.free_positions(bt.rows, bt.columns, taken[box.id], count)  # type: ignore[union-attr,arg-type]
        if len(places) == count and contiguous:
            return [_offer(box, places, True, paths[box.id].path)]
    offers, left = [], count
    for box in boxes:
        bt = box.box_type
        places, contiguous = naming.free_positions(bt.rows, bt.columns, taken[box.id], left)  # type: ignore[union-attr,arg-type]
        if places:
            offers.append(_offer(box, places, contiguous, paths[box.id].path))
            left -= len(places)
        if left == 0:
            break
    return offers


def capacity(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Occupied and free positions per freezer and per box type (three queries)."""
    boxes = session.execute(
        select(
            Container.id,
            BoxType.code,
            BoxType.name,
            BoxType.rows,
            BoxType.columns,
            BoxType.capacity,
        )
        .join(BoxType, BoxType.id == Container.box_type_id)
        .where(scope.container_filter(scope.of(session), Container.id))
    ).all()
    paths = lineages(session, [b.id for b in boxes])
    counts = dict(
        session.execute(
            select(Position.box_id, func.count())
            .join(Aliquot, Aliquot.id == Position.aliquot_id)
            .where(Aliquot.status.not_in(DEPARTED))
            .group_by(Position.box_id)
        ).all()
    )
    freezers: dict[str, dict[str, Any]] = {}
    types: dict[str, dict[str, Any]] = {}
    for box_id, code, name, rows, columns, loose_capacity in boxes:
        size = rows * columns if rows else loose_capacity
        lineage = paths[box_id]
        occupied = counts.get(box_id, 0)
        for key, table, extra in (
            (
                lineage.freezer,
                freezers,
                {"freezer": lineage.freezer, "path": lineage.freezer_path, "site": lineage.site},
            ),
            (code, types, {"box_type": code, "name": name}),
        ):
            entry = table.setdefault(
                key, {**extra, "boxes": 0, "positions": 0, "occupied": 0, "free": 0, "loose": 0}
            )
            entry["boxes"] += 1
            if size is None:
                entry["loose"] += occupied
                continue
            entry["positions"] += size
            entry["occupied"] += occupied
            entry["free"] += max(size - occupied, 0)
    return {
        "freezers": sorted(freezers.values(), key=lambda e: e["path"]),
        "box_types": sorted(types.values(), key=lambda e: e["box_type"]),
    }
