"""Putting tubes in places: place, move (one or many), take out, put back, thaw, refreeze,
missing and found.

Every change of place goes through ``relocate``: the tubes' old rows go first and the new
ones are inserted after, so swaps inside a box work, while the unique constraints on
(box, row, column) and on the aliquot stop two tubes in one place even under concurrency.

Every operation starts by locking its tubes (``biobank.locking``, which defines the one lock
order) and reads their place, thaw and status only after that: a take-out committed while
a move waited makes the move a 409, never a put-back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from biobank.custody.service import record_events
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid
from biobank.locking import lock_tubes
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.samples.states import DEPARTED, IN_HOUSE, THAWABLE
from biobank.storage import naming
from biobank.storage.models import Container, Position, Thaw
from biobank.storage.service import labellers, lineages, where_values


@dataclass(frozen=True)
class Target:
    """Where one tube should go."""

    aliquot: Aliquot
    box: Container
    row: int | None
    col: int | None


def resolve(
    box: Container, text: str | None, field: str = "position"
) -> tuple[int | None, int | None]:
    """(row, col) of a position label in a box: 422 outside the grid, None for bags."""
    box_type = box.box_type
    assert box_type is not None
    if not box_type.gridded:
        if text:
            raise Invalid(f"{box.barcode} has no grid: leave the position out", field=field)
        return None, None
    if not text:
        raise Invalid(f"give the position in {box.barcode}", field=field)
    try:
        return naming.parse(text, box_type.scheme, box_type.rows, box_type.columns)  # type: ignore[arg-type]
    except naming.PositionError as exc:
        raise Invalid(str(exc), field=field) from exc


def _label(box: Container, row: int | None, col: int | None) -> str:
    if row is None or col is None or box.box_type is None or box.box_type.columns is None:
        return box.barcode
    return f"{naming.label(box.box_type.scheme, box.box_type.columns, row, col)} of {box.barcode}"


def relocate(
    session: Session,
    actor: str,
    targets: list[Target],
    reason: str | None = None,
    field: str = "position",
    unplaced_only: bool = False,
) -> None:
    """Put every tube at its target at once, with one custody event each.

    The event says what happened: ``stored`` (first place), ``moved``, ``put_back`` (it was
    taken out) or ``refrozen`` (it was thawed). The tubes' rows are locked first, so the
    places read after that are the latest; ``unplaced_only`` refuses tubes that have one.
    """
    if not targets:
        return
    ids = [t.aliquot.id for t in targets]
    if len(set(ids)) != len(ids):
        raise Invalid("the same tube is given twice", field=field)
    places = [(t.box.id, t.row, t.col) for t in targets if t.row is not None]
    if len(set(places)) != len(places):
        raise Invalid("two tubes are sent to the same position", field=field)
    statuses = lock_tubes(session, ids)
    for target in targets:
        status = statuses[target.aliquot.id]
        if status == "missing":
            raise Conflict(
                f"{target.aliquot.barcode} is missing: record it found (with where it is) instead",
                field=field,
            )
        if status not in IN_HOUSE:
            raise Conflict(
                f"{target.aliquot.barcode} is {status}: it cannot be stored", field=field
            )
    current = {
        p.aliquot_id: p
        for p in session.scalars(
            select(Position)
            .where(Position.aliquot_id.in_(ids))
            .execution_options(populate_existing=True)
        )
    }
    if unplaced_only and current:
        placed = next(t.aliquot for t in targets if t.aliquot.id in current)
        raise Conflict(f"{placed.barcode} has a place already: move it instead", field="barcode")
    thawed = set(session.scalars(select(Thaw.aliquot_id).where(Thaw.aliquot_id.in_(ids))))
    departed = _clear_targets(session, targets, ids, field)
    boxes = {t.box.id for t in targets} | {p.box_id for p in current.values()}
    where = lineages(session, boxes)
    labels = labellers(session, boxes)
    if departed:
        vacate(
            session,
            actor,
            departed,
            "its place was recorded for another tube; the tube itself had left the biobank",
        )
    session.execute(delete(Position).where(Position.aliquot_id.in_(ids)))
    now = utcnow()
    try:
        session.execute(
            insert(Position),
            [
                {
                    "aliquot_id": t.aliquot.id,
                    "box_id": t.box.id,
                    "row_no": t.row,
                    "col_no": t.col,
                    "placed_at": now,
                    "out_since": None,
                }
                for t in targets
            ],
        )
    except IntegrityError as exc:
        # Another transaction took a place (or placed a tube) since we looked.
        raise Conflict(
            "a position or a tube was taken meanwhile by someone else; look at the box again",
            field=field,
        ) from exc
    if thawed:
        session.execute(delete(Thaw).where(Thaw.aliquot_id.in_(thawed)))
    events = []
    for target in targets:
        old = current.get(target.aliquot.id)
        if target.aliquot.id in thawed:
            kind = "refrozen"
        elif old is None:
            kind = "stored"
        elif old.out_since is not None:
            kind = "put_back"
        else:
            kind = "moved"
        new = where_values(
            where[target.box.id], target.box.id, labels[target.box.id](target.row, target.col), None
        )
        before = (
            where_values(
                where[old.box_id],
                old.box_id,
                labels[old.box_id](old.row_no, old.col_no),
                old.out_since,
            )
            if old
            else None
        )
        events.append(
            {
                "event_type": kind,
                "aliquot_id": target.aliquot.id,
                "reason": reason,
                "old_values": before,
                "new_values": new,
            }
        )
    record_events(session, events, actor, now)


def _clear_targets(
    session: Session, targets: list[Target], moving: list[int], field: str
) -> list[int]:
    """Check the target places are free; returns departed tubes still recorded there."""
    boxes = {t.box.id: t.box for t in targets}
    box_ids = set(boxes)
    held = {
        (row.box_id, row.row_no, row.col_no): row
        for row in session.execute(
            select(
                Position.aliquot_id,
                Position.box_id,
                Position.row_no,
                Position.col_no,
                Aliquot.status,
                Aliquot.barcode,
            )
            .join(Aliquot, Aliquot.id == Position.aliquot_id)
            .where(Position.box_id.in_(box_ids), Position.aliquot_id.not_in(moving))
        )
    }
    departed = []
    for target in targets:
        box_type = target.box.box_type
        assert box_type is not None
        if not box_type.gridded:
            continue
        occupant = held.get((target.box.id, target.row, target.col))
        if occupant is None:
            continue
        if occupant.status in DEPARTED:
            departed.append(occupant.aliquot_id)
        else:
            raise Conflict(
                f"{_label(target.box, target.row, target.col)} holds {occupant.barcode} already",
                field=field,
            )
    for box_id, box in boxes.items():
        capacity = box.box_type.capacity if box.box_type else None
        if capacity is not None and not box.box_type.gridded:  # type: ignore[union-attr]
            staying = sum(1 for key in held if key[0] == box_id)
            coming = sum(1 for t in targets if t.box.id == box_id)
            if staying + coming > capacity:
                raise Conflict(
                    f"{box.barcode} takes {capacity} tubes; it holds {staying}", field=field
                )
    return departed


def vacate(session: Session, actor: str, aliquot_ids: list[int], reason: str) -> int:
    """Forget where tubes were (they left, or are not where the record said)."""
    rows = (
        session.execute(select(Position).where(Position.aliquot_id.in_(aliquot_ids)))
        .scalars()
        .all()
    )
    if not rows:
        return 0
    where = lineages(session, {p.box_id for p in rows})
    labels = labellers(session, {p.box_id for p in rows})
    session.execute(delete(Position).where(Position.aliquot_id.in_(aliquot_ids)))
    record_events(
        session,
        [
            {
                "event_type": "unstored",
                "aliquot_id": p.aliquot_id,
                "reason": reason,
                "old_values": where_values(
                    where[p.box_id], p.box_id, labels[p.box_id](p.row_no, p.col_no), p.out_since
                ),
                "new_values": {"freezer_id": None},
            }
            for p in rows
        ],
        actor,
    )
    return len(rows)


def position_of(session: Session, aliquot: Aliquot) -> Position | None:
    """The tube's position row, if it has one (as the database has it now, not as the
    session may remember it: read after the tube's lock)."""
    return session.scalar(
        select(Position)
        .where(Position.aliquot_id == aliquot.id)
        .execution_options(populate_existing=True)
    )


def _lock(session: Session, aliquot: Aliquot) -> str:
    """Lock one tube (``biobank.locking``) and return its status as it is now."""
    status = lock_tubes(session, [aliquot.id])[aliquot.id]
    if status != aliquot.status:
        session.expire(aliquot, ["status"])
    return status


def place(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    box: Container,
    position: str | None,
    reason: str | None = None,
) -> None:
    """Store a tube that has no place yet."""
    _lock(session, aliquot)
    existing = position_of(session, aliquot)
    if existing is not None:
        raise Conflict(f"{aliquot.barcode} has a place already: move it instead", field="barcode")
    row, col = resolve(box, position)
    relocate(session, actor, [Target(aliquot, box, row, col)], reason, unplaced_only=True)


def store_new(
    session: Session,
    actor: str,
    aliquots: list[Aliquot],
    box: Container,
    positions: list[str | None],
    reason: str | None = None,
    field: str = "aliquots",
) -> None:
    """Store tubes just made (a split straight into a rack): each at its position, or, where
    none is given, at the box's first free places in reading order."""
    wanted = [
        resolve(box, text, f"{field}.{index}.position") if text else None
        for index, text in enumerate(positions)
    ]
    box_type = box.box_type
    assert box_type is not None
    unplaced = [index for index, place in enumerate(wanted) if place is None]
    if box_type.gridded and unplaced:
        held = {
            (row, col)
            for row, col in session.execute(
                select(Position.row_no, Position.col_no)
                .join(Aliquot, Aliquot.id == Position.aliquot_id)
                .where(Position.box_id == box.id, Aliquot.status.not_in(DEPARTED))
            )
        }
        held.update(place for place in wanted if place is not None)
        free, _ = naming.free_positions(
            box_type.rows or 0, box_type.columns or 0, held, len(unplaced)
        )
        if len(free) < len(unplaced):
            raise Conflict(
                f"{box.barcode} has {len(free)} free places for {len(unplaced)} "
                "tubes without a position",
                field="box",
            )
        for index, place in zip(unplaced, free, strict=False):
            wanted[index] = place
    relocate(
        session,
        actor,
        [
            Target(aliquot, box, *(place or (None, None)))
            for aliquot, place in zip(aliquots, wanted, strict=True)
        ],
        reason,
        field=field,
        unplaced_only=True,
    )


def move(session: Session, actor: str, moves: list[Target], reason: str | None = None) -> None:
    """Move stored tubes to new places in one go."""
    ids = [m.aliquot.id for m in moves]
    lock_tubes(session, ids)
    rows = {
        p.aliquot_id: p
        for p in session.scalars(
            select(Position)
            .where(Position.aliquot_id.in_(ids))
            .execution_options(populate_existing=True)
        )
    }
    for index, spec in enumerate(moves):
        where = rows.get(spec.aliquot.id)
        field = f"moves.{index}.aliquot" if len(moves) > 1 else "barcode"
        if where is None:
            raise Conflict(f"{spec.aliquot.barcode} has no place yet: place it", field=field)
        if where.out_since is not None:
            raise Conflict(
                f"{spec.aliquot.barcode} is taken out: put it back (to the new place, if you like)",
                field=field,
            )
    relocate(session, actor, moves, reason, field="moves" if len(moves) > 1 else "position")


def take_out(session: Session, actor: str, aliquot: Aliquot, reason: str | None = None) -> None:
    """Take a tube out of its place; the place stays kept for it until it is put back."""
    _lock(session, aliquot)
    where = position_of(session, aliquot)
    if where is None:
        raise Conflict(f"{aliquot.barcode} has no place to be taken out of", field="barcode")
    _mark_out(session, actor, aliquot, where, "taken_out", reason)


def _mark_out(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    where: Position,
    event: str,
    reason: str | None,
    extra_old: dict[str, Any] | None = None,
    extra_new: dict[str, Any] | None = None,
) -> None:
    now = utcnow()
    changed = session.execute(
        update(Position)
        .where(Position.id == where.id, Position.out_since.is_(None))
        .values(out_since=now)
    ).rowcount
    if changed != 1 and event == "taken_out":
        raise Conflict(f"{aliquot.barcode} is taken out already", field="barcode")
    lineage = lineages(session, {where.box_id})[where.box_id]
    label = labellers(session, {where.box_id})[where.box_id](where.row_no, where.col_no)
    session.expire(where)
    old = where_values(lineage, where.box_id, label, None if changed else now)
    record_events(
        session,
        [
            {
                "event_type": event,
                "aliquot_id": aliquot.id,
                "reason": reason,
                "old_values": {**old, **(extra_old or {})},
                "new_values": {
                    **where_values(lineage, where.box_id, label, now),
                    **(extra_new or {}),
                },
            }
        ],
        actor,
        now,
    )


def put_back(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    box: Container | None = None,
    position: str | None = None,
    reason: str | None = None,
) -> None:
    """Put a taken-out tube back: in its kept place, or in a new one."""
    _lock(session, aliquot)
    where = position_of(session, aliquot)
    if where is None or where.out_since is None:
        raise Conflict(f"{aliquot.barcode} is not taken out", field="barcode")
    _back(session, actor, aliquot, where, box, position, reason)


def _back(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    where: Position | None,
    box: Container | None,
    position: str | None,
    reason: str | None,
) -> None:
    if box is not None:
        row, col = resolve(box, position)
    elif where is not None:
        box = session.get(Container, where.box_id)
        row, col = where.row_no, where.col_no
    else:
        raise Invalid(f"{aliquot.barcode} has no kept place: say which box", field="box")
    relocate(session, actor, [Target(aliquot, box, row, col)], reason)  # type: ignore[arg-type]


def thaw(session: Session, actor: str, aliquot: Aliquot, reason: str | None = None) -> int:
    """Thaw a tube: its freeze–thaw count goes up by one and it leaves its place (kept)."""
    status = _lock(session, aliquot)
    if status not in THAWABLE:
        raise Conflict(f"{aliquot.barcode} is {status}: it cannot be thawed", field="barcode")
    if session.get(Thaw, aliquot.id, populate_existing=True) is not None:
        raise Conflict(f"{aliquot.barcode} is thawed already: refreeze it first", field="barcode")
    try:
        session.execute(
            insert(Thaw).values(aliquot_id=aliquot.id, thawed_at=utcnow(), thawed_by=actor)
        )
    except IntegrityError as exc:
        raise Conflict(f"{aliquot.barcode} was thawed meanwhile", field="barcode") from exc
    count = session.execute(
        update(Aliquot)
        .where(Aliquot.id == aliquot.id, Aliquot.status.in_(THAWABLE))
        .values(freeze_thaw_count=Aliquot.freeze_thaw_count + 1)
        .returning(Aliquot.freeze_thaw_count)
    ).scalar()
    if count is None:
        raise Conflict(f"{aliquot.barcode} changed meanwhile; scan it again", field="barcode")
    session.expire(aliquot, ["freeze_thaw_count"])
    where = position_of(session, aliquot)
    counts = ({"freeze_thaw_count": count - 1}, {"freeze_thaw_count": count})
    if where is not None:
        _mark_out(session, actor, aliquot, where, "thawed", reason, *counts)
    else:
        record_events(
            session,
            [
                {
                    "event_type": "thawed",
                    "aliquot_id": aliquot.id,
                    "reason": reason,
                    "old_values": counts[0],
                    "new_values": {**counts[1], "freezer_id": None},
                }
            ],
            actor,
        )
    return count


def refreeze(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    box: Container | None = None,
    position: str | None = None,
    reason: str | None = None,
) -> None:
    """Freeze a thawed tube again: in its kept place, or in the place given."""
    _lock(session, aliquot)
    if session.get(Thaw, aliquot.id, populate_existing=True) is None:
        raise Conflict(f"{aliquot.barcode} is not thawed", field="barcode")
    _back(session, actor, aliquot, position_of(session, aliquot), box, position, reason)


def mark_missing(session: Session, actor: str, aliquot: Aliquot, reason: str) -> None:
    """Record that a tube is not where it should be; its place stays kept for it."""
    samples.change_status(session, actor, aliquot, "missing", reason)


def mark_found(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    box: Container | None,
    position: str | None,
    reason: str | None = None,
) -> None:
    """A missing tube turned up: available again, and in the place given (if one is)."""
    if box is not None:
        row, col = resolve(box, position)
    samples.change_status(session, actor, aliquot, "available", reason or "found")
    if box is not None:
        relocate(session, actor, [Target(aliquot, box, row, col)], reason or "found here")
