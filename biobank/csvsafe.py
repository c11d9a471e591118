"""The one CSV writer for every file the service emits (exports, manifests, reports).

A spreadsheet runs a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula (CSV injection, OWASP); such cells are written with a leading
apostrophe, which spreadsheets show as text. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A value as a CSV cell that no spreadsheet runs: None → empty, formulas → text."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` (CRLF line ends) whose every cell passes through ``safe_cell``."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out, lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        """Write one row, each cell neutralised."""
        self._writer.writerow([safe_cell(value) for value in row])


def to_csv(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    """A whole small CSV document: the header line, then the rows."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def stream_csv(
    header: Sequence[str], rows: Iterable[Iterable[Any]], chunk_rows: int = 1000
) -> Iterator[str]:
    """A CSV document in chunks of ``chunk_rows`` lines, for streamed responses."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(header)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % chunk_rows == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
