"""The tube actions as one table: name → input schema → operation.

The API registers one endpoint per action (``POST /aliquots/<code>/<name>``, with ``-`` for
``_``) from it, and the scan station's card takes its actions from it, so an action is
written once: what it reads (``box``, ``position``, ``reason``), which storage operation it
runs and what the card says after it. The values are the API's, loaded by ``schema``, or
the card's form, as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from biobank.samples.models import Aliquot
from biobank.samples.service import Numbering
from biobank.schema import Schema
from biobank.storage import operations, schemas
from biobank.storage.models import Container
from biobank.storage.service import get_box

# An operation: (session, actor, tube, values, numbering); values has ``box`` (a code or
# None), ``position`` and ``reason`` as far as the action reads them.
Operation = Callable[[Session, str, Aliquot, dict[str, Any], Numbering], None]


@dataclass(frozen=True)
class TubeAction:
    """One thing done to a tube's place."""

    name: str
    schema: type[Schema]
    run: Operation
    summary: str  # the API document's words for it
    done: str  # what the card says after it: "<barcode> <done>"
    created: bool = False  # the API answers 201 (a first place), else 200
    on_card: bool = True  # the card's Store (the station's decision) places and moves

    @property
    def path(self) -> str:
        """The last part of its URL: ``take-out`` for ``take_out``."""
        return self.name.replace("_", "-")


def _box(session: Session, values: dict[str, Any], numbering: Numbering) -> Container | None:
    """The box the values name, if they name one."""
    code = values.get("box")
    return get_box(session, code, numbering, "box") if code else None


def _place(
    session: Session, actor: str, aliquot: Aliquot, values: dict[str, Any], numbering: Numbering
) -> None:
    operations.place(
        session,
        actor,
        aliquot,
        get_box(session, values["box"], numbering, "box"),
        values.get("position"),
        values.get("reason"),
    )


def _move(
    session: Session, actor: str, aliquot: Aliquot, values: dict[str, Any], numbering: Numbering
) -> None:
    box = get_box(session, values["box"], numbering, "box")
    row, col = operations.resolve(box, values.get("position"))
    operations.move(
        session, actor, [operations.Target(aliquot, box, row, col)], values.get("reason")
    )


def _simple(operation: Callable[..., Any]) -> Operation:
    """An operation that reads only a reason."""

    def run(
        session: Session, actor: str, aliquot: Aliquot, values: dict[str, Any], numbering: Numbering
    ) -> None:
        operation(session, actor, aliquot, values.get("reason"))

    return run


def _elsewhere(operation: Callable[..., Any]) -> Operation:
    """An operation that puts a tube in its kept place, or in the box and position given."""

    def run(
        session: Session, actor: str, aliquot: Aliquot, values: dict[str, Any], numbering: Numbering
    ) -> None:
        operation(
            session,
            actor,
            aliquot,
            _box(session, values, numbering),
            values.get("position"),
            values.get("reason"),
        )

    return run


TUBE_ACTIONS: dict[str, TubeAction] = {
    action.name: action
    for action in (
        TubeAction(
            "place",
            schemas.PlaceIn,
            _place,
            "Store a tube in a box position: 422 outside the grid, 409 if the place is taken.",
            "stored",
            created=True,
            on_card=False,
        ),
        TubeAction(
            "move",
            schemas.PlaceIn,
            _move,
            "Move a stored tube to another position (in this box or another).",
            "moved",
            on_card=False,
        ),
        TubeAction(
            "take_out",
            schemas.ReasonIn,
            _simple(operations.take_out),
            "Take a tube out of the freezer; its place stays kept for it.",
            "taken out",
        ),
        TubeAction(
            "put_back",
            schemas.ElsewhereIn,
            _elsewhere(operations.put_back),
            "Put a taken-out tube back: in its kept place, or in the box and position given.",
            "put back",
        ),
        TubeAction(
            "thaw",
            schemas.ReasonIn,
            _simple(operations.thaw),
            "Thaw a tube: its freeze–thaw count goes up; it leaves its (kept) place.",
            "thawed",
        ),
        TubeAction(
            "refreeze",
            schemas.ElsewhereIn,
            _elsewhere(operations.refreeze),
            "Refreeze a thawed tube, in its kept place or in the box and position given.",
            "refrozen",
        ),
        TubeAction(
            "missing",
            schemas.MissingIn,
            _simple(operations.mark_missing),
            "Mark a tube missing (not where it should be); its place stays kept.",
            "marked missing",
        ),
        TubeAction(
            "found",
            schemas.ElsewhereIn,
            _elsewhere(operations.mark_found),
            "A missing tube is found: available again, in its kept place or where it was found.",
            "found",
        ),
    )
}
