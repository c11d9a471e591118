"""Rack-scanner CSV files, in the layouts seen in the field, recognised by header and shape.

- rack, position, tube on every line, with or without a header (FluidX/Azenta style);
- the rack code alone on line 1, then position, tube (with or without a header; Traxcer);
- a header naming LocationRow, LocationColumn and TubeCode (Thermo VisionMate), or
  Position / Tube / Rack columns in any order (Ziath DataPaq and other configurable ones).
Positions come as A1 or A01 (or a number); ``NO READ`` marks a tube the camera could not
decode; empty cells or ``NO TUBE`` mark an empty place.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from biobank.storage import naming

UNREADABLE = {"NOREAD", "NO_READ", "NO READ", "NOREADING", "ERROR", "FAILED", "???"}
EMPTY = {"", "NOTUBE", "NO TUBE", "NO_TUBE", "EMPTY", "NONE", "-"}
_RACK = {"rack", "rackid", "rackbarcode", "rackcode", "racknumber", "plate", "plateid",
         "platebarcode", "container", "containerbarcode"}
_POSITION = {"position", "pos", "well", "location", "locationcell", "tubeposition",
             "wellposition", "coordinate", "cell"}
_ROW = {"locationrow", "row", "rowid"}
_COLUMN = {"locationcolumn", "column", "col", "columnid"}
_TUBE = {"tube", "tubeid", "tubecode", "tubebarcode", "barcode", "code", "sampleid",
         "sample", "tubes", "value"}
_CODE = re.compile(r"^[A-Za-z0-9_.\-]{3,64}$")
MAX_LINES = 2000


class ScanFileError(ValueError):
    """The file is not a rack scan this service can read; says which line and why."""


@dataclass(frozen=True)
class Entry:
    """One place of the scan: its label, the tube code (None: unreadable) and the line."""

    line: int
    position: str
    tube: str | None


@dataclass
class ScanFile:
    """What a scanner saw: the rack code if the file names one, and the tubes."""

    rack: str | None
    layout: str
    entries: list[Entry] = field(default_factory=list)


def _key(cell: str) -> str:
    return re.sub(r"[^a-z]", "", cell.lower())


def _rows(text: str) -> list[tuple[int, list[str]]]:
    lines = [(n, line) for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1)
             if line.strip()]
    if not lines:
        raise ScanFileError("the file is empty")
    if len(lines) > MAX_LINES:
        raise ScanFileError(f"the file has more than {MAX_LINES} lines")
    sample = [line for _, line in lines[:20]]
    delimiter = max((",", ";", "\t"), key=lambda d: sum(line.count(d) for line in sample))
    rows = []
    for number, line in lines:
        cells = next(csv.reader([line], delimiter=delimiter))
        cells = [c.strip() for c in cells]
        while cells and not cells[-1]:
            cells.pop()
        rows.append((number, cells))
    return rows


def _columns(header: list[str]) -> dict[str, int] | None:
    """Column roles from a header line, or None if the line is not a header."""
    roles: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _key(cell)
        for role, names in (("rack", _RACK), ("position", _POSITION), ("row", _ROW),
                            ("column", _COLUMN), ("tube", _TUBE)):
            if key in names and role not in roles:
                roles[role] = index
                break
    has_place = "position" in roles or {"row", "column"} <= roles.keys()
    return roles if has_place and "tube" in roles else None


def _looks_like_position(cell: str) -> bool:
    try:
        naming.normalize_label(cell)
    except naming.PositionError:
        return False
    return True


def parse(text: str) -> ScanFile:
    """Read a rack-scanner CSV; raises ScanFileError naming the line for anything odd."""
    rows = _rows(text)
    rack = None
    layout = "rack on every line"
    if len(rows[0][1]) == 1 and len(rows) > 1 and not _looks_like_position(rows[0][1][0]):
        rack = rows[0][1][0]
        layout = "rack on line 1"
        rows = rows[1:]
    roles = _columns(rows[0][1])
    if roles is not None:
        layout += ", header"
        rows = rows[1:]
        if {"row", "column"} <= roles.keys() and "position" not in roles:
            layout = "row and column columns (VisionMate)"
    else:
        width = max(len(cells) for _, cells in rows)
        if width >= 3 and rack is None:
            roles = {"rack": 0, "position": 1, "tube": 2}
        elif width == 2 or (width >= 2 and rack is not None):
            roles = {"position": 0, "tube": 1}
        else:
            raise ScanFileError(f"line {rows[0][0]}: expected rack, position and tube "
                                "(or position and tube) separated by commas")
    scan = ScanFile(rack=rack, layout=layout)
    racks = set()
    for number, cells in rows:
        entry = _entry(number, cells, roles)
        if "rack" in roles and roles["rack"] < len(cells) and cells[roles["rack"]]:
            racks.add(cells[roles["rack"]])
        if entry is not None:
            scan.entries.append(entry)
    if len(racks) > 1:
        raise ScanFileError(f"the file holds more than one rack: {', '.join(sorted(racks))}")
    if racks:
        found = racks.pop()
        if rack is not None and found != rack:
            raise ScanFileError(f"line 1 names rack {rack}, the lines name {found}")
        scan.rack = found
    if not scan.entries:
        raise ScanFileError("the file lists no tubes")
    _no_duplicates(scan.entries)
    return scan


def _entry(number: int, cells: list[str], roles: dict[str, int]) -> Entry | None:
    def cell(role: str) -> str:
        index = roles[role]
        return cells[index] if index < len(cells) else ""

    if "position" in roles:
        raw_position = cell("position")
    else:
        row, column = cell("row").strip().upper(), cell("column").strip()
        if row.isdigit() and 1 <= int(row) <= 26:
            row = naming.LETTERS[int(row) - 1]
        raw_position = f"{row}{column}"
    try:
        position = naming.normalize_label(raw_position)
    except naming.PositionError:
        raise ScanFileError(f"line {number}: {raw_position!r} is not a position") from None
    tube = cell("tube").strip()
    marker = tube.upper()
    if marker in EMPTY:
        return None
    if marker in UNREADABLE:
        return Entry(number, position, None)
    if not _CODE.match(tube):
        raise ScanFileError(f"line {number}: {tube!r} is not a tube code")
    return Entry(number, position, tube.upper())


def _no_duplicates(entries: list[Entry]) -> None:
    places: dict[str, int] = {}
    codes: dict[str, int] = {}
    for entry in entries:
        if entry.position in places:
            raise ScanFileError(f"line {entry.line}: position {entry.position} is listed "
                                f"twice (also line {places[entry.position]})")
        places[entry.position] = entry.line
        if entry.tube is not None:
            if entry.tube in codes:
                raise ScanFileError(f"line {entry.line}: tube {entry.tube} is listed twice "
                                    f"(also line {codes[entry.tube]})")
            codes[entry.tube] = entry.line
