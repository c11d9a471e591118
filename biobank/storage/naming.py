"""Position naming (A1…I9, A01…H12, 1…81), free-position runs and container barcode prefixes.

Positions are stored as integer row and column (1-based); labels are only rendered and
parsed here. No imports from the rest of the service: samples.service reads the prefixes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

# Service-issued container codes: boxes and racks of tubes, and everything else.
BOX_PREFIX = "BX"
CONTAINER_PREFIX = "CT"
PREFIXES = frozenset({BOX_PREFIX, CONTAINER_PREFIX})

# scheme → (example, description)
SCHEMES = {
    "letter-number": "A1…I9: row letter, column number",
    "letter-number-padded": "A01…H12: row letter, two-digit column (SBS racks)",
    "numeric": "1…81: counted along the rows",
    "none": "no grid: bags and bins",
}
LETTERS = string.ascii_uppercase
_LETTER = re.compile(r"^(?P<row>[A-Z])\s*-?\s*0*(?P<col>\d{1,3})$")
_NUMBER = re.compile(r"^0*(?P<n>\d{1,4})$")


class PositionError(ValueError):
    """A position label that does not name a place in this box."""


def label(scheme: str, columns: int, row: int, col: int) -> str:
    """The label of a position, as this box type names it."""
    if scheme == "numeric":
        return str((row - 1) * columns + col)
    if scheme == "letter-number-padded":
        return f"{LETTERS[row - 1]}{col:02d}"
    return f"{LETTERS[row - 1]}{col}"


def span(scheme: str, rows: int, columns: int) -> str:
    """First…last label, for messages."""
    return f"{label(scheme, columns, 1, 1)}…{label(scheme, columns, rows, columns)}"


def parse(text: str, scheme: str, rows: int, columns: int) -> tuple[int, int]:
    """(row, col) of a label; A1 and A01 are the same place; numbers only in numeric boxes."""
    cleaned = str(text).strip().upper()
    match = _LETTER.match(cleaned)
    if match:
        row, col = LETTERS.index(match.group("row")) + 1, int(match.group("col"))
    else:
        number = _NUMBER.match(cleaned)
        if number is None:
            raise PositionError(
                f"{text!r} is not a position: use a label like {label(scheme, columns, 1, 1)}"
            )
        if scheme != "numeric":
            raise PositionError(
                f"{text!r}: this box names its positions {span(scheme, rows, columns)}"
            )
        n = int(number.group("n"))
        if not 1 <= n <= rows * columns:
            raise PositionError(
                f"{text!r} is outside this {rows}×{columns} box ({span(scheme, rows, columns)})"
            )
        return (n - 1) // columns + 1, (n - 1) % columns + 1
    if not (1 <= row <= rows and 1 <= col <= columns):
        raise PositionError(
            f"{cleaned} is outside this {rows}×{columns} box ({span(scheme, rows, columns)})"
        )
    return row, col


def normalize_label(text: str) -> str:
    """A scanner's label in one spelling (A01 → A1), for spotting duplicates early."""
    cleaned = str(text).strip().upper()
    match = _LETTER.match(cleaned)
    if match:
        return f"{match.group('row')}{int(match.group('col'))}"
    number = _NUMBER.match(cleaned)
    if number:
        return str(int(number.group("n")))
    raise PositionError(f"{text!r} is not a position")


def free_positions(
    rows: int, columns: int, taken: Iterable[tuple[int, int]], count: int
) -> tuple[list[tuple[int, int]], bool]:
    """``count`` free places in reading order, one unbroken run if the box has one.

    Returns the places and whether they are contiguous; fewer than ``count`` when the
    box has less room.
    """
    occupied = set(taken)
    free = [
        (r, c) for r in range(1, rows + 1) for c in range(1, columns + 1) if (r, c) not in occupied
    ]
    if count <= 0:
        return [], True
    run_start = 0
    for index in range(len(free)):
        if index and _ordinal(free[index], columns) != _ordinal(free[index - 1], columns) + 1:
            run_start = index
        if index - run_start + 1 == count:
            return free[run_start : index + 1], True
    chosen = free[:count]
    ordinals = [_ordinal(place, columns) for place in chosen]
    return chosen, all(b == a + 1 for a, b in zip(ordinals, ordinals[1:], strict=False))


def _ordinal(place: tuple[int, int], columns: int) -> int:
    return (place[0] - 1) * columns + place[1]
