"""ZPL II templates: checked when loaded, compiled to a format string, rendered fast.

A template is one label, ``^XA`` … ``^XZ``, with ``${name}`` placeholders in its ``^FD``
fields. Loading refuses anything a printer could get wrong: a missing ``^CI28`` (UTF-8),
a size that is not the label's, a field that can leave the label, a placeholder field
without ``^FH`` (so ``^`` and ``~`` in data cannot become commands), tilde commands, and
commands outside the small set a label needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from biobank.labels.symbols import (
    DATAMATRIX_QUIET_MODULES,
    MIN_MODULE_DOTS,
    QUIET_MODULES,
    Overlap,
    TemplateError,
    code128_capacity,
    code128_modules,
    datamatrix_capacity,
    datamatrix_side,
    dots,
    first_overlap,
)

PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")
# Commands a label template may use; anything else (stored formats, downloads, printer
# settings, ^PQ which the print job sets) is refused.
ALLOWED = {
    "XA",
    "XZ",
    "CI",
    "PW",
    "LL",
    "LH",
    "LS",
    "LT",
    "BY",
    "FO",
    "A",
    "FB",
    "BC",
    "BX",
    "GB",
    "FH",
    "FD",
    "FS",
    "MD",
    "PR",
    "PO",
    "MN",
    "MT",
    "FX",
}
SIZE_TOLERANCE_DOTS = 2
MIME = "text/plain; charset=utf-8"


# Under ^FH a field's bytes are written _XX: the escape character, the two command
# prefixes, and every control character (CR and LF above all: a line of its own is a
# command for line protocols, and a printer has no use for them inside a field).
_TO_HEX = re.compile(r"[_^~\x00-\x1f\x7f-\x9f]")


def _hex(match: re.Match[str]) -> str:
    return "".join(f"_{byte:02X}" for byte in match.group().encode())


def escape(value: str) -> str:
    """Field data as ZPL shows it literally under ``^FH``: ``_``, ``^``, ``~`` and control
    characters in hex, so nothing in the data becomes a command or a line of its own."""
    return _TO_HEX.sub(_hex, value)


@dataclass
class ZplTemplate:
    """One label at one resolution, ready to render."""

    name: str
    dpi: int
    width: int  # dots
    height: int
    symbology: str
    barcode_capacity: int
    head: str  # a str.format string: everything before the final ^XZ
    tail: str
    placeholders: frozenset[str] = field(default_factory=frozenset)

    def render(self, values: dict[str, str], copies: int = 1) -> str:
        """One label (``copies`` times) with escaped ``values``."""
        if copies == 1:
            return self.head.format_map(values) + self.tail
        return f"{self.head.format_map(values)}^PQ{copies}{self.tail}"


@dataclass
class _Field:
    x: int
    y: int
    line: int
    font: tuple[int, int] | None = None  # height, width in dots
    block: tuple[int, int] | None = None  # ^FB width, lines
    symbol: tuple[str, Any] | None = None
    hex: bool = False
    data: str | None = None


def _ints(params: str, where: str, count: int) -> list[int]:
    parts = params.split(",")
    try:
        values = [int(p) for p in parts[:count]]
    except ValueError:
        raise TemplateError(f"{where}: expected {count} number(s), got {params!r}") from None
    if len(values) < count:
        raise TemplateError(f"{where}: expected {count} number(s), got {params!r}")
    return values


def _commands(text: str, source: str) -> Iterator[tuple[int, str, str]]:
    """(line, name, params) for every ^command of a template."""
    if "~" in text:
        line = text.count("\n", 0, text.index("~")) + 1
        raise TemplateError(
            f"{source}:{line}: tilde commands act on the printer at once; "
            "leave them out of label templates"
        )
    first = text.find("^")
    if first < 0 or text[:first].strip():
        raise TemplateError(f"{source}: a ZPL template starts with ^XA")
    offset = first
    for chunk in text[first + 1 :].split("^"):
        line = text.count("\n", 0, offset) + 1
        offset += len(chunk) + 1
        name = "A" if chunk[:1] == "A" else chunk[:2].upper()
        params = chunk[len(name) :]
        yield line, name, params if name == "FD" else params.strip()


def compile_zpl(
    text: str,
    *,
    source: str,
    name: str,
    dpi: int,
    width_mm: float,
    height_mm: float,
    fields: dict[str, int],
    symbology: str,
    barcode_min: int,
) -> ZplTemplate:
    """Check a ZPL template against its label and compile it; TemplateError if broken."""
    width, height = dots(width_mm, dpi), dots(height_mm, dpi)
    state: dict[str, Any] = {
        "module": 2,
        "home": (0, 0),
        "utf8": False,
        "pw": None,
        "ll": None,
        "opened": 0,
        "closed": 0,
    }
    current: _Field | None = None
    capacity: int | None = None
    used: set[str] = set()
    done: list[tuple[_Field, str]] = []
    for line, command, params in _commands(text, source):
        where = f"{source}:{line}: ^{command}"
        if command not in ALLOWED:
            hint = "copies are set per print job" if command == "PQ" else "not allowed"
            raise TemplateError(f"{where}{params[:12]}: {hint} in a label template")
        if command != "XA" and state["opened"] == 0:
            raise TemplateError(f"{where}: the template must start with ^XA")
        if state["closed"]:
            raise TemplateError(f"{where}: nothing may follow ^XZ (one label per template)")
        if command == "XA":
            if state["opened"]:
                raise TemplateError(f"{where}: one label per template (a second ^XA)")
            state["opened"] = 1
        elif command == "XZ":
            if current is not None:
                raise TemplateError(f"{where}: the field opened on line {current.line} has no ^FS")
            state["closed"] = 1
        elif command == "CI":
            state["utf8"] = params == "28"
        elif command in ("PW", "LL"):
            [value] = _ints(params, where, 1)
            expected = width if command == "PW" else height
            if abs(value - expected) > SIZE_TOLERANCE_DOTS:
                raise TemplateError(
                    f"{where}{value}: the label is {width_mm} × {height_mm} mm, "
                    f"{width} × {height} dots at {dpi} dpi"
                )
            state["pw" if command == "PW" else "ll"] = value
        elif command == "LH":
            state["home"] = tuple(_ints(params, where, 2))
        elif command == "BY":
            state["module"] = _ints(params, where, 1)[0]
        elif command == "FO":
            if current is not None:
                raise TemplateError(f"{where}: the field opened on line {current.line} has no ^FS")
            x, y = _ints(params, where, 2)
            current = _Field(x + state["home"][0], y + state["home"][1], line)
        elif command in ("A", "FB", "BC", "BX", "GB", "FH", "FD", "FS"):
            if current is None:
                raise TemplateError(f"{where}: outside a field (put ^FO x,y first)")
            if command == "A":
                orientation = params[1:2].upper() or "N"
                if orientation != "N":
                    raise TemplateError(f"{where}: only normal orientation (N) is checked")
                high, wide = _ints(params[2:].lstrip(","), where, 2)
                current.font = (high, wide)
            elif command == "FB":
                block = _ints(params, where, 2)
                current.block = (block[0], block[1])
            elif command == "BC":
                parts = params.split(",")
                if parts[0].upper() != "N" or len(parts) < 3 or parts[2].upper() != "N":
                    raise TemplateError(
                        f"{where}: use ^BCN,height,N,… (orientation N, the "
                        "human-readable line as a field of its own)"
                    )
                current.symbol = ("code128", (state["module"], _ints(parts[1], where, 1)[0]))
            elif command == "BX":
                parts = params.split(",")
                if parts[0].upper() != "N" or len(parts) < 3 or parts[2] != "200":
                    raise TemplateError(f"{where}: use ^BXN,module,200 (ECC 200)")
                current.symbol = ("datamatrix", _ints(parts[1], where, 1)[0])
            elif command == "GB":
                current.symbol = ("box", tuple(_ints(params, where, 2)))
            elif command == "FH":
                if params not in ("", "_"):
                    raise TemplateError(f"{where}: keep the default escape character _")
                current.hex = True
            elif command == "FD":
                if not state["utf8"]:
                    raise TemplateError(f"{where}: set UTF-8 with ^CI28 before the first field")
                current.data = params
            else:  # FS
                found = _check_field(current, where, state, fields, symbology)
                done.append((current, where))
                if found is not None:
                    if capacity is not None:
                        raise TemplateError(f"{where}: one barcode per label template")
                    capacity = found
                used.update(PLACEHOLDER.findall(current.data or ""))
                current = None
    if not state["closed"]:
        raise TemplateError(f"{source}: the template must end with ^XZ")
    if state["pw"] is None or state["ll"] is None:
        raise TemplateError(f"{source}: give the label size with ^PW and ^LL")
    if capacity is None:
        raise TemplateError(f"{source}: the template has no {symbology} barcode field")
    capacity = min(capacity, fields["barcode"])
    if capacity < barcode_min:
        raise TemplateError(
            f"{source}: the barcode holds only {capacity} characters; the label needs {barcode_min}"
        )
    longest = {**fields, "barcode": capacity}
    clash = first_overlap([_box(f, where, longest, capacity) for f, where in done])
    if clash is not None:
        raise TemplateError(
            f"{source}: at their longest, {clash[0].name} and {clash[1].name} overlap"
        )
    body = text.strip()
    cut = body.rindex("^XZ")
    return ZplTemplate(
        name=name,
        dpi=dpi,
        width=state["pw"],
        height=state["ll"],
        symbology=symbology,
        barcode_capacity=capacity,
        head=to_format(body[:cut]),
        tail=body[cut:] + "\n",
        placeholders=frozenset(used),
    )


def _check_field(
    field_: _Field, where: str, state: dict[str, Any], fields: dict[str, int], symbology: str
) -> int | None:
    """Check one field stays on the label; a barcode field returns its capacity."""
    data = field_.data or ""
    names = PLACEHOLDER.findall(data)
    for placeholder in names:
        if placeholder not in fields:
            raise TemplateError(
                f"{where}: unknown placeholder ${{{placeholder}}}; known: "
                + ", ".join(sorted(fields))
            )
    if names and not field_.hex:
        raise TemplateError(
            f"{where}: a field with data needs ^FH before ^FD, so that ^ and "
            "~ in the data stay text"
        )
    pw, ll = state["pw"], state["ll"]
    if pw is None or ll is None:
        raise TemplateError(f"{where}: give ^PW and ^LL before the first field")
    x, y = field_.x, field_.y
    if not (0 <= x < pw and 0 <= y < ll):
        raise TemplateError(f"{where}: the field at {x},{y} starts outside the label")
    if field_.symbol is None:
        if field_.font is None:
            raise TemplateError(f"{where}: give the field its font size with ^A0N,h,w")
        high, wide = field_.font
        length = len(PLACEHOLDER.sub("", data)) + sum(fields[n] for n in names)
        width = length * wide
        lines = 1
        if field_.block is not None:
            if width > field_.block[0] * field_.block[1]:
                raise TemplateError(
                    f"{where}: {length} characters of {wide} dots do not fit "
                    f"the ^FB block of {field_.block[0]} dots"
                )
            width, lines = field_.block[0], field_.block[1]
        _inside(where, x + width, y + high * lines, pw, ll)
        return None
    kind, geometry = field_.symbol
    if kind == "box":
        _inside(where, x + geometry[0], y + geometry[1], pw, ll)
        return None
    if kind != symbology:
        raise TemplateError(f"{where}: a {kind} symbol in a {symbology} template")
    if names != ["barcode"] or data != "${barcode}":
        raise TemplateError(f"{where}: a barcode field holds exactly ${{barcode}}")
    if kind == "code128":
        module, bar_height = geometry
        if module < MIN_MODULE_DOTS:
            raise TemplateError(
                f"{where}: a module of {module} dot(s) (^BY{module}) prints "
                f"blurred; use ^BY{MIN_MODULE_DOTS} or more"
            )
        if x < QUIET_MODULES * module:
            raise TemplateError(
                f"{where}: leave a quiet zone of {QUIET_MODULES} modules "
                f"({QUIET_MODULES * module} dots) left of the barcode"
            )
        _inside(where, x, y + bar_height, pw, ll)
        room = (pw - x) / module - QUIET_MODULES
        capacity = code128_capacity(room)
        if capacity < 1:
            raise TemplateError(f"{where}: no room for a Code 128 symbol")
        return capacity
    module = geometry
    if module < MIN_MODULE_DOTS:
        raise TemplateError(
            f"{where}: a DataMatrix module of {module} dot(s) prints blurred; "
            f"use ^BXN,{MIN_MODULE_DOTS} or more"
        )
    quiet = DATAMATRIX_QUIET_MODULES * module
    if x < quiet or y < quiet:
        raise TemplateError(
            f"{where}: leave a quiet zone of one module ({quiet} dots) around the DataMatrix"
        )
    side, capacity = datamatrix_capacity(math.floor((min(pw - x, ll - y) - quiet) / module))
    needed = datamatrix_side(min(fields["barcode"], capacity)) or side
    _inside(where, x + needed * module, y + needed * module, pw, ll)
    return capacity


def _box(field_: _Field, where: str, longest: dict[str, int], capacity: int) -> Overlap:
    """The dots a field takes at its longest; a barcode's include its quiet zones."""
    x, y = field_.x, field_.y
    if field_.symbol is None:
        data = field_.data or ""
        names = PLACEHOLDER.findall(data)
        high, wide = field_.font or (0, 0)
        length = len(PLACEHOLDER.sub("", data)) + sum(longest[n] for n in names)
        if field_.block is not None:
            return Overlap(where, x, y, x + field_.block[0], y + high * field_.block[1])
        return Overlap(where, x, y, x + length * wide, y + high)
    kind, geometry = field_.symbol
    if kind == "box":
        return Overlap(where, x, y, x + geometry[0], y + geometry[1])
    if kind == "code128":
        module, bar_height = geometry
        quiet = QUIET_MODULES * module
        return Overlap(
            where, x - quiet, y, x + code128_modules(capacity) * module + quiet, y + bar_height
        )
    module = geometry
    side = (datamatrix_side(capacity) or 0) * module
    quiet = DATAMATRIX_QUIET_MODULES * module
    return Overlap(where, x - quiet, y - quiet, x + side + quiet, y + side + quiet)


def _inside(where: str, right: int, bottom: int, pw: int, ll: int) -> None:
    if right > pw or bottom > ll:
        raise TemplateError(
            f"{where}: the field reaches {right},{bottom}, outside the label ({pw} × {ll} dots)"
        )


def to_format(text: str) -> str:
    """A ``${name}`` template as a str.format string (literal braces doubled)."""
    out = []
    last = 0
    for match in PLACEHOLDER.finditer(text):
        out.append(text[last : match.start()].replace("{", "{{").replace("}", "}}"))
        out.append("{" + match.group(1) + "}")
        last = match.end()
    out.append(text[last:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def code128_width(chars: int, module: int) -> int:
    """Dots a Code 128 symbol of ``chars`` characters takes at worst (no quiet zones)."""
    return code128_modules(chars) * module
