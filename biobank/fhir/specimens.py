"""Specimens: the queries behind Specimen reads, searches and the export.

A primary sample is ``Specimen/sample-N``, a tube split from it ``Specimen/aliquot-N``. A
search walks samples, then aliquots, in id order, a page at a time (keyset: the next link's
``_cursor`` is the last id of the page, so a page costs the same anywhere in a million).
Each page is one statement for its rows plus one per detail kind (places, storage times,
condition notes), never one per tube.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from biobank.custody.models import CustodyEvent
from biobank.fhir import access
from biobank.fhir.access import Viewer
from biobank.fhir.search import Interval
from biobank.fhir.terminology import type_codings
from biobank.patients.models import Patient
from biobank.reference.models import AliquotType, Material
from biobank.samples.models import Aliquot, Sample
from biobank.storage.models import BoxType, Condition, Container, Position, Thaw
from biobank.storage.service import labeller, lineages

A, S, P = Aliquot.__table__, Sample.__table__, Patient.__table__
M, T = Material.__table__, AliquotType.__table__
POS, BOX, BT, THAW = Position.__table__, Container.__table__, BoxType.__table__, Thaw.__table__
EV = CustodyEvent.__table__

_ID = re.compile(r"^(sample|aliquot)-([1-9][0-9]{0,17})$")


def parse_id(fhir_id: str) -> tuple[str, int] | None:
    """("sample" | "aliquot", database id) of a Specimen id, or None."""
    match = _ID.match(fhir_id)
    return None if match is None else (match.group(1), int(match.group(2)))


def _last_event(column: ColumnElement[int], key: ColumnElement[int]) -> Any:
    # Events are appended in id order: the newest is the one with the highest id (the
    # index on (aliquot_id, id) / (sample_id, id) finds it in one step).
    return (
        select(EV.c.occurred_at)
        .where(column == key)
        .order_by(EV.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _aliquot_columns() -> list[Any]:
    return [
        A.c.id,
        A.c.barcode,
        A.c.status,
        A.c.volume_ml,
        A.c.volume_remaining_ml,
        A.c.cell_count,
        A.c.sprec_code,
        A.c.freeze_thaw_count,
        A.c.created_at,
        A.c.parent_aliquot_id,
        A.c.sample_id,
        T.c.code.label("type_code"),
        T.c.name.label("type_name"),
        T.c.sprec_type.label("type_sprec"),
        T.c.unit,
        S.c.barcode.label("sample_barcode"),
        S.c.collected_at,
        S.c.received_at,
        S.c.accession_number,
        S.c.container_code,
        M.c.code.label("material"),
        M.c.name.label("material_name"),
        M.c.sprec_type.label("material_sprec"),
        P.c.study_id,
        POS.c.box_id,
        POS.c.row_no,
        POS.c.col_no,
        POS.c.out_since,
        THAW.c.thawed_at,
        _last_event(EV.c.aliquot_id, A.c.id).label("last_updated"),
    ]


def _aliquot_base() -> Select[Any]:
    return select(*_aliquot_columns()).select_from(
        A.join(T, T.c.id == A.c.aliquot_type_id)
        .join(S, S.c.id == A.c.sample_id)
        .join(M, M.c.id == S.c.material_id)
        .join(P, P.c.id == S.c.patient_id)
        .outerjoin(POS, POS.c.aliquot_id == A.c.id)
        .outerjoin(THAW, THAW.c.aliquot_id == A.c.id)
    )


def _sample_base() -> Select[Any]:
    return select(
        S.c.id,
        S.c.barcode,
        S.c.volume_ml,
        S.c.volume_remaining_ml,
        S.c.collected_at,
        S.c.received_at,
        S.c.accession_number,
        S.c.container_code,
        S.c.precentrifugation_delay_hours,
        S.c.precentrifugation_temperature,
        S.c.notes,
        M.c.code.label("material"),
        M.c.name.label("material_name"),
        M.c.sprec_type.label("material_sprec"),
        P.c.study_id,
        _last_event(EV.c.sample_id, S.c.id).label("last_updated"),
    ).select_from(S.join(M, M.c.id == S.c.material_id).join(P, P.c.id == S.c.patient_id))


@dataclass
class Criteria:
    """A Specimen search, parsed: None means the parameter was not given."""

    patient_ids: list[int] | None = None
    # (aliquot type id, material id) pairs and material ids that the type token matched.
    aliquot_kinds: list[tuple[int, int]] | None = None
    sample_materials: list[int] | None = None
    states: list[str] | None = None
    sample_statuses: list[str] | None = None
    parents: list[tuple[str, int]] | None = None
    last_updated: list[Interval] = field(default_factory=list)

    @property
    def samples_possible(self) -> bool:
        """Whether any primary sample can match (a parent search finds only aliquots)."""
        return self.parents is None and (self.sample_statuses is None or bool(self.sample_statuses))


def _interval_condition(column: Any, interval: Interval) -> ColumnElement[bool]:
    if interval.prefix == "ge":
        return column >= interval.start
    if interval.prefix == "gt":
        return column >= interval.end
    if interval.prefix == "le":
        return column < interval.end
    if interval.prefix == "lt":
        return column < interval.start
    return and_(column >= interval.start, column < interval.end)


def _aliquot_query(viewer: Viewer, criteria: Criteria) -> Select[Any]:
    query = access.scope(_aliquot_base(), viewer, S.c.patient_id, A.c.id)
    if criteria.patient_ids is not None:
        query = query.where(S.c.patient_id.in_(criteria.patient_ids))
    if criteria.aliquot_kinds is not None:
        query = query.where(
            tuple_(A.c.aliquot_type_id, S.c.material_id).in_(criteria.aliquot_kinds)
            if criteria.aliquot_kinds
            else false()
        )
    if criteria.states is not None:
        query = query.where(A.c.status.in_(criteria.states))
    if criteria.parents is not None:
        query = query.where(
            or_(
                false(),
                *[
                    and_(A.c.sample_id == key, A.c.parent_aliquot_id.is_(None))
                    if kind == "sample"
                    else A.c.parent_aliquot_id == key
                    for kind, key in criteria.parents
                ],
            )
        )
    for interval in criteria.last_updated:
        query = query.where(_interval_condition(_last_event(EV.c.aliquot_id, A.c.id), interval))
    return query


def _sample_query(viewer: Viewer, criteria: Criteria) -> Select[Any]:
    if viewer.researcher:
        # Researchers receive tubes, never the primary sample.
        return _sample_base().where(false())
    query = access.scope(_sample_base(), viewer, S.c.patient_id)
    if criteria.patient_ids is not None:
        query = query.where(S.c.patient_id.in_(criteria.patient_ids))
    if criteria.sample_materials is not None:
        query = query.where(
            S.c.material_id.in_(criteria.sample_materials) if criteria.sample_materials else false()
        )
    if criteria.sample_statuses is not None:
        remaining = func.coalesce(S.c.volume_remaining_ml, literal(0))
        query = query.where(
            or_(
                false(),
                *[
                    remaining > 0 if status == "available" else remaining <= 0
                    for status in criteria.sample_statuses
                ],
            )
        )
    for interval in criteria.last_updated:
        query = query.where(_interval_condition(_last_event(EV.c.sample_id, S.c.id), interval))
    return query


@dataclass
class Page:
    """One page of a search: its rows (samples first) and the cursor of the next page."""

    samples: list[Any]
    aliquots: list[Any]
    next_cursor: str | None


def search(
    session: Session, viewer: Viewer, criteria: Criteria, size: int, cursor: tuple[str, int] | None
) -> Page:
    """A page of ``size`` Specimens after ``cursor`` (None: the first page)."""
    samples: list[Any] = []
    aliquots: list[Any] = []
    after_kind, after_id = cursor or ("sample", 0)
    if after_kind == "sample" and criteria.samples_possible:
        samples = list(
            session.execute(
                _sample_query(viewer, criteria)
                .where(S.c.id > after_id)
                .order_by(S.c.id)
                .limit(size + 1)
            ).mappings()
        )
    if len(samples) <= size:
        start = after_id if after_kind == "aliquot" else 0
        aliquots = list(
            session.execute(
                _aliquot_query(viewer, criteria)
                .where(A.c.id > start)
                .order_by(A.c.id)
                .limit(size + 1 - len(samples))
            ).mappings()
        )
    rows_left = len(samples) + len(aliquots) > size
    samples, aliquots = samples[:size], aliquots[: max(0, size - len(samples))]
    next_cursor = None
    if rows_left:
        next_cursor = f"aliquot-{aliquots[-1]['id']}" if aliquots else f"sample-{samples[-1]['id']}"
    return Page(samples, aliquots, next_cursor)


def one(session: Session, viewer: Viewer, fhir_id: str) -> tuple[str, Any] | None:
    """("sample" | "aliquot", row) of one Specimen the viewer may see, or None."""
    parsed = parse_id(fhir_id)
    if parsed is None:
        return None
    kind, key = parsed
    if kind == "sample":
        row = session.execute(_sample_query(viewer, Criteria()).where(S.c.id == key)).mappings()
    else:
        row = session.execute(_aliquot_query(viewer, Criteria()).where(A.c.id == key)).mappings()
    found = row.first()
    return None if found is None else (kind, found)


def of_patient(session: Session, viewer: Viewer, patient_id: int) -> Page:
    """Every Specimen of one patient the viewer may see ($everything)."""
    criteria = Criteria(patient_ids=[patient_id])
    samples = list(session.execute(_sample_query(viewer, criteria).order_by(S.c.id)).mappings())
    aliquots = list(session.execute(_aliquot_query(viewer, criteria).order_by(A.c.id)).mappings())
    return Page(samples, aliquots, None)


def stream(session: Session, viewer: Viewer, chunk: int = 2000) -> Iterator[Page]:
    """Every Specimen, a page at a time (the bulk export): constant memory at any size."""
    cursor: tuple[str, int] | None = None
    while True:
        page = search(session, viewer, Criteria(), chunk, cursor)
        if page.samples or page.aliquots:
            yield page
        if page.next_cursor is None:
            return
        cursor = parse_id(page.next_cursor)


# --- the details of a page ------------------------------------------------------------------


@dataclass
class Details:
    """What a page's Specimens need beyond their rows, read once per page."""

    places: dict[int, tuple[str, str | None, str | None]] = field(default_factory=dict)
    stored_at: dict[int, dt.datetime] = field(default_factory=dict)
    notes: dict[int, list[str]] = field(default_factory=dict)
    visible_parents: set[int] | None = None  # None: every parent is visible


def details(session: Session, viewer: Viewer, aliquots: Sequence[Any]) -> Details:
    """Places (path, position, freezer band), first storage times, condition notes and, for
    researchers, which parents they may follow."""
    found = Details()
    if not aliquots:
        return found
    ids = [row["id"] for row in aliquots]
    placed = {row["box_id"] for row in aliquots if row["box_id"] is not None}
    paths = lineages(session, placed) if placed else {}
    bands = (
        dict(
            session.execute(
                select(BOX.c.id, BOX.c.temperature_band).where(
                    BOX.c.id.in_({lineage.freezer_id for lineage in paths.values()})
                )
            ).all()
        )
        if paths
        else {}
    )
    kinds = (
        {
            box_id: labeller(scheme, columns)
            for box_id, scheme, columns in session.execute(
                select(BOX.c.id, BT.c.scheme, BT.c.columns)
                .join(BT, BT.c.id == BOX.c.box_type_id)
                .where(BOX.c.id.in_(placed))
            )
        }
        if placed
        else {}
    )
    for row in aliquots:
        lineage = paths.get(row["box_id"])
        if lineage is not None:
            position = kinds[row["box_id"]](row["row_no"], row["col_no"])
            found.places[row["id"]] = (lineage.path, position, bands.get(lineage.freezer_id))
    found.stored_at = dict(
        session.execute(
            select(EV.c.aliquot_id, func.min(EV.c.occurred_at))
            .where(EV.c.aliquot_id.in_(ids), EV.c.event_type == "stored")
            .group_by(EV.c.aliquot_id)
        ).all()
    )
    for aliquot_id, note in session.execute(
        select(Condition.aliquot_id, Condition.note)
        .where(Condition.aliquot_id.in_(ids))
        .order_by(Condition.id)
    ):
        found.notes.setdefault(aliquot_id, []).append(note)
    if viewer.researcher:
        parents = {row["parent_aliquot_id"] for row in aliquots if row["parent_aliquot_id"]}
        found.visible_parents = (
            set(
                session.scalars(
                    select(A.c.id).where(
                        A.c.id.in_(parents), access.released_filter(viewer, A.c.id)
                    )
                )
            )
            if parents
            else set()
        )
    return found


# --- the type token -------------------------------------------------------------------------


def type_matches(
    session: Session, tokens: list[tuple[str | None, str]], base: str
) -> tuple[list[tuple[int, int]], list[int]]:
    """The (aliquot type, material) pairs and the materials whose Specimen.type carries one
    of the ``(system, code)`` tokens."""
    materials = session.execute(select(M.c.id, M.c.code, M.c.sprec_type)).all()
    types = session.execute(select(T.c.id, T.c.code, T.c.sprec_type)).all()

    def matches(codings: list[dict[str, Any]]) -> bool:
        return any(
            (system is None or system == c["system"]) and code == c["code"]
            for c in codings
            for system, code in tokens
        )

    samples = [
        m.id
        for m in materials
        if matches(type_codings(base, m.sprec_type, None, m.code, m.sprec_type))
    ]
    pairs = [
        (t.id, m.id)
        for t in types
        for m in materials
        if matches(type_codings(base, t.sprec_type, t.code, None, m.sprec_type))
    ]
    return pairs, samples
