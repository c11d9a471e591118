"""Rack-scanner files, in the layouts labs have, recognised by content (never by file name).

- rack, position, tube on every line, with or without a header, with or without spaces
  after the commas (FluidX/Azenta); position, tube without the rack column;
- the rack code alone on line 1, then position, tube (with or without a header; Traxcer);
- metadata lines first: ``Date & time of Trace = …`` and ``Rack Base Name: …`` then
  ``A01;   code`` lines with ``No TrakMate`` for empty wells (Thermo Matrix TRACE), or
  ``Date: …`` / ``Rack: …`` lines before a header;
- a header naming LocationRow, LocationColumn, TubeCode (and RackBarcode) (Thermo
  VisionMate), or Rack / Position / Tube / Status columns in any order, comma, semicolon
  or tab separated (Ziath DataPaq, Micronic and other configurable exports).
Positions come as A1 or A01 (or a number); ``NO READ`` (or a read-failure status) marks a
tube the camera could not decode; empty cells, ``NO TUBE`` or ``No TrakMate`` an empty place.
Examples of each, with their public sources: tests/data/rack-scans/.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from biobank.inputs import bad_character
from biobank.samples import barcodes
from biobank.storage import naming

# The largest scanner file accepted (the API and the box page alike).
MAX_SCAN_BYTES = 256 * 1024

UNREADABLE = {
    "NOREAD",
    "NO_READ",
    "NO READ",
    "NOREADING",
    "NO READING",
    "ERROR",
    "FAILED",
    "READ ERROR",
    "NOT DECODED",
    "???",
}
EMPTY = {"", "NOTUBE", "NO TUBE", "NO_TUBE", "EMPTY", "NONE", "-", "NO TRAKMATE", "NOTRAKMATE"}
# Metadata lines before the data ("Rack Base Name: 02498606", "Date: …"): key [:=] value.
_META = re.compile(r"^\s*([A-Za-z][A-Za-z &_.-]*?)\s*[:=]\s*(.*?)[\s,;\t]*$")
_META_RACK = {"rackbasename", "rack", "rackid", "rackbarcode", "rackcode", "racknumber"}
_RACK = {
    "rack",
    "rackid",
    "rackbarcode",
    "rackcode",
    "racknumber",
    "plate",
    "plateid",
    "platebarcode",
    "container",
    "containerbarcode",
}
_POSITION = {
    "position",
    "pos",
    "well",
    "location",
    "locationcell",
    "tubeposition",
    "wellposition",
    "coordinate",
    "cell",
}
_ROW = {"locationrow", "row", "rowid"}
_COLUMN = {"locationcolumn", "column", "col", "columnid"}
_TUBE = {
    "tube",
    "tubeid",
    "tubecode",
    "tubebarcode",
    "barcode",
    "code",
    "sampleid",
    "sample",
    "tubes",
    "value",
}
_STATUS = {"status", "tubestatus", "readstatus", "result", "state"}
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
    lines = [
        (n, line) for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1) if line.strip()
    ]
    if not lines:
        raise ScanFileError("the file is empty")
    if len(lines) > MAX_LINES:
        raise ScanFileError(f"the file has more than {MAX_LINES} lines")
    sample = [line for _, line in lines[:20]]
    delimiter = max((",", ";", "\t"), key=lambda d: sum(line.count(d) for line in sample))
    rows = []
    for number, line in lines:
        why = bad_character(line, multiline=True)  # a line's tabs may be its delimiter
        if why:
            raise ScanFileError(f"line {number}: {why}")
        try:
            cells = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as exc:  # a field past csv's limit (128 kB), a stray quote...
            raise ScanFileError(f"line {number}: {exc}") from None
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
        for role, names in (
            ("rack", _RACK),
            ("position", _POSITION),
            ("row", _ROW),
            ("column", _COLUMN),
            ("tube", _TUBE),
            ("status", _STATUS),
        ):
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


def _metadata(text: str) -> tuple[str, str | None, str | None]:
    """Strip metadata lines from the top: the rest, the rack code they name, the layout."""
    lines = text.lstrip("\ufeff").splitlines()
    rack = layout = None
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - the index of the first data line
        if not line.strip():
            continue
        match = _META.match(line)
        if match is None or _looks_like_position(match.group(1).strip()):
            break
        key = _key(match.group(1))
        if "trace" in key:  # "Date & time of Trace = …": Thermo Matrix TRACE (TrakMate)
            layout = "Thermo Matrix TRACE"
        if key in _META_RACK and match.group(2).strip():
            rack = match.group(2).strip()
    else:
        index = len(lines)
    return "\n".join(lines[index:]), rack, layout


def parse(text: str) -> ScanFile:
    """Read a rack-scanner file; raises ScanFileError naming the line for anything odd."""
    body, meta_rack, meta_layout = _metadata(text)
    skipped = len(text.lstrip("\ufeff").splitlines()) - len(body.splitlines())
    rows = [(number + skipped, cells) for number, cells in _rows(body)]
    rack = meta_rack
    layout = "rack on every line"
    if meta_layout or meta_rack:
        layout = meta_layout or "rack in a metadata line"
    if (
        rack is None
        and len(rows[0][1]) == 1
        and len(rows) > 1
        and not _looks_like_position(rows[0][1][0])
    ):
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
            raise ScanFileError(
                f"line {rows[0][0]}: expected rack, position and tube "
                "(or position and tube) separated by commas"
            )
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
    if scan.rack is not None and (why := barcodes.external_problem(scan.rack)):
        # The rack code may become the box's own code (offered to a box without one).
        raise ScanFileError(f"the rack code {why}")
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
        if row.isascii() and row.isdigit() and 1 <= int(row) <= 26:
            row = naming.LETTERS[int(row) - 1]
        raw_position = f"{row}{column}"
    try:
        position = naming.normalize_label(raw_position)
    except naming.PositionError:
        raise ScanFileError(f"line {number}: {raw_position!r} is not a position") from None
    tube = cell("tube").strip()
    marker = " ".join(tube.upper().split())
    status = " ".join(cell("status").upper().split()) if "status" in roles else ""
    if not tube and status in UNREADABLE:
        return Entry(number, position, None)
    if marker in EMPTY:
        return None
    if marker in UNREADABLE:
        return Entry(number, position, None)
    if why := barcodes.external_problem(tube):
        raise ScanFileError(f"line {number}: {why}")
    return Entry(number, position, tube.upper())


def _no_duplicates(entries: list[Entry]) -> None:
    places: dict[str, int] = {}
    codes: dict[str, int] = {}
    for entry in entries:
        if entry.position in places:
            raise ScanFileError(
                f"line {entry.line}: position {entry.position} is listed "
                f"twice (also line {places[entry.position]})"
            )
        places[entry.position] = entry.line
        if entry.tube is not None:
            if entry.tube in codes:
                raise ScanFileError(
                    f"line {entry.line}: tube {entry.tube} is listed twice "
                    f"(also line {codes[entry.tube]})"
                )
            codes[entry.tube] = entry.line
