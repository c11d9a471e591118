"""Position naming, free-position runs and rack-scanner files: pure functions, no database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from biobank.storage import naming, rackscan

SCANS = Path(__file__).parent / "data" / "rack-scans"


@pytest.mark.parametrize(
    ("scheme", "rows", "cols", "row", "col", "label"),
    [
        ("letter-number", 9, 9, 1, 1, "A1"),
        ("letter-number", 9, 9, 9, 9, "I9"),
        ("letter-number-padded", 8, 12, 1, 1, "A01"),
        ("letter-number-padded", 8, 12, 8, 12, "H12"),
        ("numeric", 9, 9, 1, 1, "1"),
        ("numeric", 9, 9, 2, 1, "10"),
        ("numeric", 9, 9, 9, 9, "81"),
        ("letter-number", 20, 20, 20, 20, "T20"),
    ],
)
def test_labels_render_and_parse_back(scheme, rows, cols, row, col, label):
    """Every scheme renders its label and reads it back to the same row and column."""
    assert naming.label(scheme, cols, row, col) == label
    assert naming.parse(label, scheme, rows, cols) == (row, col)


@pytest.mark.parametrize("text", ["A1", "A01", "a1", " a01 ", "A001", "A-1"])
def test_a1_and_a01_are_the_same_place(text):
    """Padded, unpadded and lower-case labels name the same position."""
    assert naming.parse(text, "letter-number-padded", 8, 12) == (1, 1)
    assert naming.parse(text, "letter-number", 9, 9) == (1, 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Z99", "outside this 9×9 box (A1…I9)"),
        ("J1", "outside"),
        ("A10", "outside"),
        ("A0", "outside"),
        ("5", "names its positions A1…I9"),
        ("shelf", "not a position"),
        ("", "not a position"),
    ],
)
def test_positions_outside_the_grid_or_garbage_are_refused(text, words):
    """A label the 9×9 box does not have is refused with a message saying why."""
    with pytest.raises(naming.PositionError, match=re.escape(words)):
        naming.parse(text, "letter-number", 9, 9)


def test_numbered_boxes_take_numbers_and_letters():
    """1…81 counts along the rows; 82 is outside; A1 still reads."""
    assert naming.parse("81", "numeric", 9, 9) == (9, 9)
    assert naming.parse("B1", "numeric", 9, 9) == (2, 1)
    with pytest.raises(naming.PositionError, match="outside"):
        naming.parse("82", "numeric", 9, 9)


def test_free_positions_prefer_one_unbroken_run():
    """With A1–A3 and A5 taken, three places start at A6, not in the gap at A4."""
    taken = {(1, 1), (1, 2), (1, 3), (1, 5)}
    places, contiguous = naming.free_positions(9, 9, taken, 3)
    assert places == [(1, 6), (1, 7), (1, 8)] and contiguous
    # A run may wrap to the next row: I-row reading order.
    places, contiguous = naming.free_positions(2, 3, {(1, 1)}, 4)
    assert places == [(1, 2), (1, 3), (2, 1), (2, 2)] and contiguous


def test_free_positions_fall_back_to_reading_order_when_no_run_fits():
    """A checkerboard has no run of two: the first free places are offered, not contiguous."""
    taken = {(r, c) for r in range(1, 4) for c in range(1, 4) if (r + c) % 2 == 0}
    places, contiguous = naming.free_positions(3, 3, taken, 2)
    assert places == [(1, 2), (2, 1)] and not contiguous
    assert naming.free_positions(3, 3, taken, 10)[0] == sorted(
        {(r, c) for r in range(1, 4) for c in range(1, 4)} - taken
    )


# --- rack-scanner files ----------------------------------------------------------------


def test_the_per_line_rack_layout_reads():
    """FluidX style: rack, position, tube on every line, no header, one NO READ."""
    scan = rackscan.parse((SCANS / "per-line-rack.csv").read_text())
    assert scan.rack == "TR00012345"
    assert len(scan.entries) == 96
    unread = [e for e in scan.entries if e.tube is None]
    assert [(e.position, e.line) for e in unread] == [("B5", 17)]
    assert scan.entries[0] == rackscan.Entry(1, "A1", "FX05653701")


def test_the_rack_on_first_line_layout_reads():
    """Traxcer style: the rack alone on line 1, a header, zero-padded positions."""
    scan = rackscan.parse((SCANS / "rack-on-first-line.csv").read_text())
    assert scan.rack == "RK-000881"
    assert len(scan.entries) == 94  # D04 and D05 are empty
    assert scan.entries[0].position == "A1"
    assert {e.position for e in scan.entries} >= {"H12", "D3", "D6"}


def test_the_visionmate_layout_reads():
    """Thermo VisionMate: LocationRow, LocationColumn and TubeCode columns, any order."""
    text = (
        "TubeCode,LocationRow,LocationColumn,RackID\r\n"
        "FX01,A,1,VM-RACK-7\r\nNo Read,A,2,VM-RACK-7\r\nFX03,B,01,VM-RACK-7\r\n"
    )
    scan = rackscan.parse(text)
    assert scan.rack == "VM-RACK-7"
    assert [(e.position, e.tube) for e in scan.entries] == [
        ("A1", "FX01"),
        ("A2", None),
        ("B1", "FX03"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Rack,Position,Tube\nRK1,A01,fx01\nRK1,A02,FX02\n",  # header, lower-case code
        "Position;Tube ID\nA01;FX01\nA02;FX02\n",  # semicolons
        "A1\tFX01\nA2\tFX02\n",  # tabs, no rack at all
        "\ufeffRK1,A1,FX01\nRK1,A2,FX02\n\n",  # byte-order mark, blank line
        "RK1\nA01,FX01\nA02,FX02\nA03,NO TUBE\n",  # rack on line 1 without header
    ],
)
def test_common_variations_read_the_same(text):
    """Headers or none, commas, semicolons or tabs, BOM, empty places: two tubes."""
    scan = rackscan.parse(text)
    assert [(e.position, e.tube) for e in scan.entries] == [("A1", "FX01"), ("A2", "FX02")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("hello world\n", "line 1"),
        ("RK1,A1,FX01\nRK1,A01,FX02\n", "position A1 is listed twice"),
        ("RK1,A1,FX01\nRK1,A2,FX01\n", "tube FX01 is listed twice"),
        ("RK1,A1,FX01\nRK2,A2,FX02\n", "more than one rack"),
        ("RK1,shelf,FX01\n", "line 1: 'shelf' is not a position"),
        ("RK1,A1,FX 01 <script>\n", "not a tube or rack code"),
        ("Position,Tube\n", "no tubes"),
        ("%PDF-1.4\x00\x01\x02,\x03\n", "line 1: contains a NUL character"),
    ],
)
def test_garbage_and_duplicates_are_refused_naming_the_line(text, words):
    """Duplicate places or codes, several racks, nonsense: an error saying where."""
    with pytest.raises(rackscan.ScanFileError, match=words):
        rackscan.parse(text)
