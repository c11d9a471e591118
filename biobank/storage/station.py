"""The scan station's decision: what scanning a tube while a box is open may do.

Looking a tube up never changes anything. With a box open, a tube without a place goes in
at once; a tube recorded elsewhere, a thawed one and a missing one are asked about first
(the answer names where from and where to); a tube whose type or storage temperature does
not fit the box is refused with the reason, unless a manager allowed the box to mix. Every
change comes back with how to undo it: a move back (or an unstore), never a deletion.
The page and the API both call ``scan_into``; the operations themselves are the storage
operations (``biobank.storage.operations``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from biobank.custody.service import record_audit
from biobank.errors import Conflict, Invalid
from biobank.reference.models import AliquotType
from biobank.samples import service as samples
from biobank.samples.models import Aliquot
from biobank.samples.states import DEPARTED, IN_HOUSE
from biobank.storage import boxmap, operations
from biobank.storage.models import TEMPERATURE_BANDS, Container, Position, Thaw
from biobank.storage.service import labellers, lineages

UNDO_REASON = "undone at the scan station"


@dataclass(frozen=True)
class Place:
    """A place as the bench names it: position, box barcode and box name."""

    box: str
    name: str
    position: str | None
    band: str | None

    @property
    def words(self) -> str:
        """ "B3 of Viable cells 01" (a bag: just its name)."""
        return f"{self.position} of {self.name}" if self.position else self.name


def _band(session: Session, box: Container) -> str | None:
    """The box's storage temperature band (its freezer's)."""
    freezer = session.get(Container, lineages(session, {box.id})[box.id].freezer_id)
    return freezer.temperature_band if freezer else None


def place_of(session: Session, box: Container, row: int | None, col: int | None) -> Place:
    """A Place from a box and its grid coordinates."""
    label = labellers(session, {box.id})[box.id](row, col)
    band = _band(session, box)
    return Place(box.barcode, box.name, label if row is not None else None, band)


def _current(session: Session, aliquot: Aliquot) -> tuple[Position | None, Place | None]:
    where = operations.position_of(session, aliquot)
    if where is None:
        return None, None
    box = session.get(Container, where.box_id)
    assert box is not None
    return where, place_of(session, box, where.row_no, where.col_no)


def _type_name(session: Session, type_id: int) -> str:
    kind = session.get(AliquotType, type_id)
    return kind.name if kind else "?"


def misfit(
    session: Session, aliquot: Aliquot, box: Container, origin: Place | None, band: str | None
) -> str | None:
    """Why the tube does not fit the box (another type inside, another temperature), or
    None; a box a manager allowed to mix takes anything."""
    if box.mixing_allowed:
        return None
    others = set(
        session.scalars(
            select(Aliquot.aliquot_type_id)
            .join(Position, Position.aliquot_id == Aliquot.id)
            .where(
                Position.box_id == box.id, Aliquot.id != aliquot.id, Aliquot.status.not_in(DEPARTED)
            )
            .distinct()
        )
    )
    if others and others != {aliquot.aliquot_type_id}:
        held = ", ".join(sorted(_type_name(session, i) for i in others))
        return (
            f"{aliquot.barcode} is {_type_name(session, aliquot.aliquot_type_id)}; "
            f"{box.name} holds {held}. A manager can allow this box to mix."
        )
    if origin is not None and origin.band and band and origin.band != band:
        return (
            f"{aliquot.barcode} is kept at {TEMPERATURE_BANDS[origin.band]} "
            f"({origin.words}); {box.name} is at {TEMPERATURE_BANDS[band]}. "
            "A manager can allow this box to mix."
        )
    return None


def _target(
    session: Session, box: Container, position: str | None, band: str | None
) -> tuple[Place, int | None, int | None]:
    if box.box_type is not None and box.box_type.gridded and not position:
        offer = boxmap.suggest(session, box, 1)["positions"]
        if not offer:
            raise Conflict(f"{box.name} is full", field="position")
        position = offer[0]
    row, col = operations.resolve(box, position)
    label = labellers(session, {box.id})[box.id](row, col) if row is not None else None
    return Place(box.barcode, box.name, label, band), row, col


def scan_into(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    box: Container,
    position: str | None = None,
    confirm: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Scan a tube while a box is open: store it, ask first, or refuse (409 with the reason).
    ``reason``: the technician's words for the custody event (else the station's own).

    The answer: ``state`` ``done`` (with ``undo``), ``ask`` (a ``question``; send again with
    ``confirm``) or ``here`` (already in this place); ``action``, ``from``, ``to`` and
    ``message`` in words.
    """
    if aliquot.status not in IN_HOUSE and aliquot.status != "missing":
        raise Conflict(
            f"{aliquot.barcode} is {aliquot.status}: it cannot be stored", field="barcode"
        )
    where, origin = _current(session, aliquot)
    band = _band(session, box)
    refused = misfit(session, aliquot, box, origin, band)
    if refused is not None:
        raise Conflict(refused, field="box")
    thawed = session.get(Thaw, aliquot.id) is not None
    if (
        where is not None
        and where.box_id == box.id
        and where.out_since is None
        and not position
        and aliquot.status != "missing"
    ):
        return _answer(
            "here",
            "here",
            origin,
            origin,
            f"{aliquot.barcode} is in this box already, at {origin.words}",
        )
    target, row, col = _target(session, box, position, band)
    if (
        where is not None
        and (where.box_id, where.row_no, where.col_no) == (box.id, row, col)
        and where.out_since is None
        and aliquot.status != "missing"
    ):
        return _answer(
            "here", "here", origin, target, f"{aliquot.barcode} is at {target.words} already"
        )
    to = target.words
    if aliquot.status == "missing":
        action, ask = "found", f"{aliquot.barcode} is recorded missing. Found here, at {to}?"
    elif thawed:
        action, ask = "refrozen", f"{aliquot.barcode} is thawed. Refreeze it at {to}?"
    elif where is None:
        action, ask = "stored", None
    elif where.out_since is not None:
        action = "put back"
        ask = (
            None
            if where.box_id == box.id
            else f"{aliquot.barcode} was taken out of {origin.words}. Put it at {to} instead?"
        )  # type: ignore[union-attr]
    else:
        action = "moved"
        ask = f"{aliquot.barcode} is at {origin.words}. Move it to {to}?"  # type: ignore[union-attr]
    if ask and not confirm:
        return _answer("ask", action, origin, target, ask, question=ask)
    _apply(session, actor, aliquot, action, box, target.position, where, reason)
    return _answer(
        "done",
        action,
        origin,
        target,
        _done_words(aliquot, action, origin, target),
        undo=_undo_of(action, origin, where, target),
    )


def _apply(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    action: str,
    box: Container,
    position: str | None,
    where: Position | None,
    reason: str | None,
) -> None:
    why = reason or "stored at the scan station"
    if action == "found":
        operations.mark_found(
            session, actor, aliquot, box, position, reason or "found at the scan station"
        )
    elif action == "refrozen":
        operations.refreeze(session, actor, aliquot, box, position, why)
    elif action == "stored":
        operations.place(session, actor, aliquot, box, position, why)
    elif action == "put back":
        operations.put_back(session, actor, aliquot, box, position, why)
    else:
        row, col = operations.resolve(box, position)
        operations.move(
            session,
            actor,
            [operations.Target(aliquot, box, row, col)],
            reason or "moved at the scan station",
        )


def _done_words(aliquot: Aliquot, action: str, origin: Place | None, target: Place) -> str:
    if origin is None:
        return f"{aliquot.barcode} {action}: {target.words}"
    return f"{aliquot.barcode} {action} from {origin.words} to {target.words}"


def _undo_of(
    action: str, origin: Place | None, where: Position | None, target: Place
) -> dict[str, Any]:
    return {
        "at_box": target.box,
        "at_position": target.position,
        "box": origin.box if origin else None,
        "position": origin.position if origin else None,
        "taken_out": bool(where is not None and where.out_since is not None),
        "missing": action == "found",
    }


def _answer(
    state: str,
    action: str,
    origin: Place | None,
    target: Place | None,
    message: str,
    question: str | None = None,
    undo: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "state": state,
        "action": action,
        "message": message,
        "question": question,
        "from": asdict(origin) if origin else None,
        "to": asdict(target) if target else None,
        "undo": undo,
    }


def undo(
    session: Session,
    actor: str,
    aliquot: Aliquot,
    at_box: Container,
    at_position: str | None,
    back_box: Container | None,
    back_position: str | None,
    taken_out: bool = False,
    missing: bool = False,
) -> str:
    """Undo a station change: the tube goes back where it was (a move, recorded as one), or
    loses the place it was just given; a tube found by mistake is missing again. Refused
    when the tube is no longer where the station put it."""
    where = operations.position_of(session, aliquot)
    row, col = operations.resolve(at_box, at_position, "at_position")
    if where is None or (where.box_id, where.row_no, where.col_no) != (at_box.id, row, col):
        raise Conflict(
            f"{aliquot.barcode} is no longer at {at_position or at_box.name}: nothing undone",
            field="barcode",
        )
    now_at = place_of(session, at_box, row, col)
    if back_box is None:
        operations.vacate(session, actor, [aliquot.id], UNDO_REASON)
        done = f"Undone: {aliquot.barcode} taken off {now_at.words}; it has no place"
    else:
        back_row, back_col = operations.resolve(back_box, back_position, "position")
        operations.relocate(
            session, actor, [operations.Target(aliquot, back_box, back_row, back_col)], UNDO_REASON
        )
        back = place_of(session, back_box, back_row, back_col)
        done = f"Undone: {aliquot.barcode} moved back from {now_at.words} to {back.words}"
        if taken_out:
            operations.take_out(session, actor, aliquot, UNDO_REASON)
    if missing:
        samples.change_status(session, actor, aliquot, "missing", UNDO_REASON)
        done += "; missing again"
    return done


def allow_mixing(
    session: Session, actor: str, box: Container, allowed: bool, reason: str | None
) -> Container:
    """Let a box take tubes of other types and temperatures (or stop it), audited."""
    if box.kind != "box":
        raise Invalid(f"{box.barcode} is not a box", field="box")
    old = box.mixing_allowed
    session.execute(update(Container).where(Container.id == box.id).values(mixing_allowed=allowed))
    session.expire(box, ["mixing_allowed"])
    record_audit(
        session,
        actor,
        "container",
        box.barcode,
        "mixing",
        reason=reason,
        old_values={"mixing_allowed": old},
        new_values={"mixing_allowed": allowed},
    )
    return box


# What a card's badge and a box map's cell say: the tube's status, unless its consent says
# otherwise (one rule, so a card never shows "available" beside "do not use").
_SHORT = {
    "available": "avail",
    "reserved": "res",
    "blocked": "BLOCK",
    "missing": "MISS",
    "shipped": "ship",
    "consumed": "used",
    "destroyed": "destr",
}


def bench_status(status: str, storage_consent: str | None) -> dict[str, str]:
    """The one status shown for a tube: ``key`` (its colour), ``words`` and ``short`` (a map
    cell); a tube in the house without storage consent given is "do not use"."""
    if status in ("available", "reserved") and storage_consent != "given":
        return {"key": "blocked", "words": "do not use: no consent", "short": "NO USE"}
    return {"key": status, "words": status, "short": _SHORT.get(status, status)}
