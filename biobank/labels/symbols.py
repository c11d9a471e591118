"""Barcode geometry shared by the ZPL and SVG templates: how much data a symbol can hold.

The checks are conservative: a Code 128 symbol is measured as if every character needed
its own symbol character (subset B), whatever packing the printer or python-barcode
chooses; a DataMatrix as if every character took one codeword (ECC 200 ASCII mode).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

MM_PER_INCH = 25.4
DPIS = (203, 300)
# Code 128: start + data + check symbols of 11 modules each, the stop symbol has 13.
CODE128_OVERHEAD = 35
CODE128_PER_CHAR = 11
QUIET_MODULES = 10
# ECC 200 square symbols: (modules per side, data codewords).
DATAMATRIX_SQUARES = (
    (10, 3),
    (12, 5),
    (14, 8),
    (16, 12),
    (18, 18),
    (20, 22),
    (22, 30),
    (24, 36),
    (26, 44),
    (32, 62),
    (36, 86),
    (40, 114),
    (44, 144),
)
# What a barcode on a label may contain: printable ASCII (what scanners send back).
BARCODE_CHARS = re.compile(r"^[\x20-\x7e]+$")


class TemplateError(Exception):
    """A label template is broken; the service refuses to start with it."""


def dots(mm: float, dpi: int) -> int:
    """A length in printer dots."""
    return round(mm * dpi / MM_PER_INCH)


def code128_modules(chars: int) -> int:
    """Modules of a Code 128 symbol for ``chars`` characters, without quiet zones."""
    return CODE128_OVERHEAD + CODE128_PER_CHAR * chars


def code128_capacity(modules: float) -> int:
    """How many characters a Code 128 symbol of at most ``modules`` modules holds."""
    return max(0, math.floor((modules - CODE128_OVERHEAD) / CODE128_PER_CHAR))


def datamatrix_capacity(modules: int) -> tuple[int, int]:
    """The largest square ECC 200 symbol within ``modules`` per side: (side, characters)."""
    best = (0, 0)
    for side, codewords in DATAMATRIX_SQUARES:
        if side <= modules:
            best = (side, codewords)
    return best


def datamatrix_side(chars: int) -> int | None:
    """The side (in modules) of the smallest square symbol holding ``chars`` characters."""
    for side, codewords in DATAMATRIX_SQUARES:
        if codewords >= chars:
            return side
    return None


# A printed module of one dot is as wide as the head's blur: scanners misread it. Two dots
# is the least any template may use, at every resolution (ZPL ^BY / ^BX, SVG, PNG).
MIN_MODULE_DOTS = 2
# ISO/IEC 16022: a DataMatrix needs a quiet zone of one module on every side.
DATAMATRIX_QUIET_MODULES = 1


def module_dots(module_mm: float, dpi: int) -> int:
    """The template's module width snapped to whole printer dots, never under two."""
    return max(MIN_MODULE_DOTS, round(module_mm * dpi / MM_PER_INCH))


def dots_in(start_mm: float, length_mm: float, dpi: int) -> tuple[int, int]:
    """The whole dots inside [start, start + length] mm: (first dot, dots)."""
    first = math.ceil(start_mm * dpi / MM_PER_INCH - 1e-9)
    end = math.floor((start_mm + length_mm) * dpi / MM_PER_INCH + 1e-9)
    return first, max(0, end - first)


class Overlap(NamedTuple):
    """A field's box on the label (any unit, the same for all boxes compared)."""

    name: str
    left: float
    top: float
    right: float
    bottom: float


def first_overlap(boxes: list[Overlap]) -> tuple[Overlap, Overlap] | None:
    """Two boxes that overlap, if any (touching edges do not overlap)."""
    for index, one in enumerate(boxes):
        for other in boxes[index + 1 :]:
            if (
                one.left < other.right
                and other.left < one.right
                and one.top < other.bottom
                and other.top < one.bottom
            ):
                return one, other
    return None
