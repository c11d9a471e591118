"""Barcode symbols on the printer's dot grid, for the SVG and PNG labels.

A label printer puts ink on whole dots; a bar that starts between two dots, or a module of
one dot, prints blurred and scanners misread it. So every bar and every DataMatrix cell
here starts and ends on a whole dot of the target resolution, and a module is at least
two dots (symbols.MIN_MODULE_DOTS). Code 128 gets the ISO/IEC 15417 quiet zone of ten
modules on both sides, DataMatrix one module all round (ISO/IEC 16022).

Code 128 is encoded by python-barcode, DataMatrix (ECC 200) by zxing-cpp: their module
patterns are drawn here as rectangles in dots.
"""

from __future__ import annotations

from dataclasses import dataclass

import zxingcpp
from barcode import Code128

from biobank.labels.symbols import (
    DATAMATRIX_QUIET_MODULES,
    MM_PER_INCH,
    QUIET_MODULES,
    code128_capacity,
    datamatrix_capacity,
    dots_in,
    module_dots,
)


@dataclass(frozen=True)
class Area:
    """Where a symbol may go, in whole dots of one resolution, and its module in dots."""

    left: int
    top: int
    width: int
    height: int
    module: int

    def capacity(self, symbology: str) -> int:
        """The most characters a symbol of this area holds, at worst (see symbols)."""
        if symbology == "code128":
            return code128_capacity(self.width // self.module - 2 * QUIET_MODULES)
        side = min(self.width, self.height) // self.module - 2 * DATAMATRIX_QUIET_MODULES
        return datamatrix_capacity(side)[1]


def area(box_mm: tuple[float, float, float, float], module_mm: float, dpi: int) -> Area:
    """The whole dots inside a template's barcode box at ``dpi``."""
    x, y, width, height = box_mm
    left, dots_wide = dots_in(x, width, dpi)
    top, dots_high = dots_in(y, height, dpi)
    return Area(left, top, dots_wide, dots_high, module_dots(module_mm, dpi))


def code128_pattern(code: str) -> str:
    """Code 128 modules as '1' (bar) and '0' (space), without quiet zones."""
    return Code128(code).build()[0]


def datamatrix_pattern(code: str) -> tuple[str, ...]:
    """DataMatrix (ECC 200) cells, one '1'/'0' string per row, without the quiet zone."""
    # Square symbols only: the templates' areas and capacities are squares (and so are the
    # printers' ^BX symbols).
    image = zxingcpp.create_barcode(
        code, zxingcpp.BarcodeFormat.DataMatrix, force_square=True
    ).to_image(scale=1, add_quiet_zones=False)
    view = memoryview(image)
    rows, columns = view.shape
    raw = view.tobytes()
    return tuple(
        "".join("1" if raw[r * columns + c] < 128 else "0" for c in range(columns))
        for r in range(rows)
    )


def _runs(modules: str) -> list[tuple[int, int]]:
    """(first module, length) of every run of '1' in a module string."""
    runs = []
    start = None
    for index, module in enumerate(modules + "0"):
        if module == "1" and start is None:
            start = index
        elif module != "1" and start is not None:
            runs.append((start, index - start))
            start = None
    return runs


def rectangles(symbology: str, code: str, where: Area) -> list[tuple[int, int, int, int]]:
    """The symbol's dark parts as (x, y, width, height) in dots, inside ``where``.

    ValueError when the code does not fit (the template's capacity check comes first).
    """
    m = where.module
    if symbology == "code128":
        pattern = code128_pattern(code)
        if (len(pattern) + 2 * QUIET_MODULES) * m > where.width:
            raise ValueError(f"{code} does not fit the barcode area")
        left = where.left + QUIET_MODULES * m
        return [
            (left + start * m, where.top, run * m, where.height) for start, run in _runs(pattern)
        ]
    rows = datamatrix_pattern(code)
    side = (max(len(rows), len(rows[0])) + 2 * DATAMATRIX_QUIET_MODULES) * m
    if side > min(where.width, where.height):
        raise ValueError(f"{code} does not fit the barcode area")
    left = where.left + DATAMATRIX_QUIET_MODULES * m
    top = where.top + DATAMATRIX_QUIET_MODULES * m
    return [
        (left + start * m, top + r * m, run * m, m)
        for r, row in enumerate(rows)
        for start, run in _runs(row)
    ]


def svg_path(rects: list[tuple[int, int, int, int]], dpi: int) -> str:
    """Dark rectangles in dots as one SVG path in mm (the label's viewBox unit)."""
    scale = MM_PER_INCH / dpi
    parts = [
        f"M{x * scale:.5f} {y * scale:.5f}h{w * scale:.5f}v{h * scale:.5f}h{-w * scale:.5f}z"
        for x, y, w, h in rects
    ]
    return f'<path d="{"".join(parts)}" fill="#000" shape-rendering="crispEdges"/>'
