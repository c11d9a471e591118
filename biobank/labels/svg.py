"""SVG templates: checked when loaded; python-barcode draws the Code 128, the rest is text.

A template is an SVG document in millimetres (``viewBox="0 0 width height"``) with
``${name}`` placeholders in ``<text>`` elements and one ``<rect id="barcode" … data-module>``
marking where the symbol goes, quiet zones included. Rendering runs python-barcode's
SVGWriter once per code and pastes its bars into that place as a nested ``<svg>``; the
text is put in by str.format, XML-escaped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from barcode import Code128
from barcode.writer import SVGWriter

from biobank.labels.symbols import QUIET_MODULES, TemplateError, code128_capacity
from biobank.labels.zpl import PLACEHOLDER, to_format

SVG_NS = "http://www.w3.org/2000/svg"
MIME = "image/svg+xml"
CHAR_WIDTH_EM = 0.6  # monospace advance: the width check assumes it
_ROOT_TAG = re.compile(r"<svg\b[^>]*>", re.S)
_BARCODE_RECT = re.compile(r"<rect\b[^>]*\bid=\"barcode\"[^>]*/>", re.S)
_SIZE = re.compile(r'width="([\d.]+)mm" height="([\d.]+)mm"')
_XML_SPECIAL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
SHEET_MARGIN_MM = 10.0
SHEET_GAP_MM = 2.0
SHEET_WIDTH_MM = 210.0


def escape(value: str) -> str:
    """Text as XML character data."""
    if "&" in value or "<" in value or ">" in value:
        return value.translate(_XML_SPECIAL)
    return value


@dataclass(frozen=True)
class TextItem:
    """A text element of the template (the PNG renderer draws these)."""

    x: float
    y: float
    size: float
    anchor: str
    bold: bool
    text: str  # a str.format string


@dataclass
class SvgTemplate:
    """One SVG label, ready to render."""

    name: str
    width: float  # mm
    height: float
    barcode_box: tuple[float, float, float, float]  # x, y, width, height (mm)
    module: float  # mm
    barcode_capacity: int
    before: str  # str.format strings around the barcode
    after: str
    root_attributes: str  # the root's attributes other than its size (fonts…)
    texts: tuple[TextItem, ...]

    def barcode_options(self) -> dict[str, Any]:
        """python-barcode writer options that fit the symbol into the template's box."""
        return {"module_width": self.module, "module_height": self.barcode_box[3],
                "quiet_zone": QUIET_MODULES * self.module, "write_text": False,
                "margin_top": 0, "margin_bottom": 0, "compress": True,
                "with_doctype": False}

    def symbol(self, code: str) -> str:
        """The Code 128 bars as a nested <svg> placed in the template's barcode box."""
        raw = Code128(code, writer=SVGWriter()).render(self.barcode_options()).decode()
        start = raw.index("<svg")
        tag_end = raw.index(">", start)
        size = _SIZE.search(raw, start, tag_end)
        if size is None:  # pragma: no cover - python-barcode always writes mm sizes
            raise ValueError("python-barcode wrote an SVG without a size in mm")
        width, height = float(size.group(1)), float(size.group(2))
        x, y = self.barcode_box[0], self.barcode_box[1]
        # Plain numbers in a viewBox in mm: renderers disagree on absolute units
        # inside a nested, rescaled <svg>.
        bars = raw[tag_end + 1:raw.rindex("</svg>")].replace('mm"', '"')
        return (f'<svg x="{x:g}" y="{y:g}" width="{width:.3f}" height="{height:.3f}" '
                f'viewBox="0 0 {width:.3f} {height:.3f}">{bars}</svg>')

    def body(self, values: dict[str, str], symbol: str) -> str:
        """The label's content (inside its root element), values already escaped."""
        return self.before.format_map(values) + symbol + self.after.format_map(values)

    def document(self, values: dict[str, str], symbol: str) -> str:
        """One label as a standalone SVG document."""
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="{SVG_NS}" '
                f'width="{self.width:g}mm" height="{self.height:g}mm" '
                f'viewBox="0 0 {self.width:g} {self.height:g}"{self.root_attributes}>'
                f"{self.body(values, symbol)}</svg>\n")

    def sheet(self, bodies: list[str]) -> str:
        """Many labels on one sheet (a grid on A4 width), as one SVG document."""
        columns = sheet_columns(self.width)
        rows = max(1, -(-len(bodies) // columns))
        width = 2 * SHEET_MARGIN_MM + columns * self.width + (columns - 1) * SHEET_GAP_MM
        height = 2 * SHEET_MARGIN_MM + rows * self.height + (rows - 1) * SHEET_GAP_MM
        parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="{SVG_NS}" '
                 f'width="{width:g}mm" height="{height:g}mm" viewBox="0 0 {width:g} {height:g}">']
        for index, body in enumerate(bodies):
            x, y = sheet_origin(index, columns, self.width, self.height)
            parts.append(f'<svg x="{x:g}" y="{y:g}" width="{self.width:g}" '
                         f'height="{self.height:g}" '
                         f'viewBox="0 0 {self.width:g} {self.height:g}"{self.root_attributes}>'
                         f"{body}</svg>")
        parts.append("</svg>\n")
        return "".join(parts)


def sheet_columns(label_width: float) -> int:
    """How many labels fit side by side on a sheet."""
    room = SHEET_WIDTH_MM - 2 * SHEET_MARGIN_MM + SHEET_GAP_MM
    return max(1, int(room // (label_width + SHEET_GAP_MM)))


def sheet_origin(index: int, columns: int, width: float, height: float) -> tuple[float, float]:
    """Where (mm) the label number ``index`` sits on a sheet."""
    row, column = divmod(index, columns)
    return (SHEET_MARGIN_MM + column * (width + SHEET_GAP_MM),
            SHEET_MARGIN_MM + row * (height + SHEET_GAP_MM))


def _number(value: str | None, where: str, what: str) -> float:
    try:
        return float((value or "").removesuffix("mm"))
    except ValueError:
        raise TemplateError(f"{where}: {what} is not a number: {value!r}") from None


def compile_svg(text: str, *, source: str, name: str, width_mm: float, height_mm: float,
                fields: dict[str, int], barcode_min: int) -> SvgTemplate:
    """Check an SVG template against its label and compile it; TemplateError if broken."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TemplateError(f"{source}: not well-formed XML: {exc}") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise TemplateError(f"{source}: the root element must be an SVG <svg>")
    width, height = (_number(root.get(a), source, a) for a in ("width", "height"))
    if (width, height) != (width_mm, height_mm) or not (root.get("width", "").endswith("mm")
                                                        and root.get("height", "").endswith("mm")):
        raise TemplateError(f"{source}: give the size as width=\"{width_mm:g}mm\" "
                            f"height=\"{height_mm:g}mm\"")
    if (root.get("viewBox") or "").split() != ["0", "0", f"{width_mm:g}", f"{height_mm:g}"]:
        raise TemplateError(f"{source}: use viewBox=\"0 0 {width_mm:g} {height_mm:g}\" "
                            "(coordinates in mm)")
    boxes = [e for e in root.iter() if e.get("id") == "barcode"]
    if len(boxes) != 1 or boxes[0].tag != f"{{{SVG_NS}}}rect":
        raise TemplateError(f"{source}: mark the barcode's place with one "
                            "<rect id=\"barcode\" x y width height data-module>")
    box = boxes[0]
    bx, by, bw, bh = (_number(box.get(a), source, f"the barcode rect's {a}")
                      for a in ("x", "y", "width", "height"))
    module = _number(box.get("data-module"), source, "data-module")
    if module <= 0 or bx < 0 or by < 0 or bx + bw > width_mm or by + bh > height_mm:
        raise TemplateError(f"{source}: the barcode rect must lie on the label")
    capacity = min(code128_capacity(bw / module - 2 * QUIET_MODULES), fields["barcode"])
    if capacity < barcode_min:
        raise TemplateError(f"{source}: the barcode rect holds only {capacity} characters "
                            f"at {module} mm per module; the label needs {barcode_min}")
    texts = _texts(root, source, width_mm, height_mm, fields)
    start = _ROOT_TAG.search(text)
    rect = _BARCODE_RECT.search(text)
    if start is None or rect is None:
        raise TemplateError(f"{source}: write the barcode rect as <rect id=\"barcode\" … />")
    content_end = text.rindex("</svg>")
    extra = {k: v for k, v in root.attrib.items()
             if k not in ("width", "height", "viewBox", "x", "y") and "}" not in k}
    attributes = "".join(f' {k}="{escape(v)}"' for k, v in extra.items())
    return SvgTemplate(
        name=name, width=width_mm, height=height_mm, barcode_box=(bx, by, bw, bh),
        module=module, barcode_capacity=capacity,
        before=to_format(text[start.end():rect.start()]),
        after=to_format(text[rect.end():content_end]),
        root_attributes=attributes, texts=texts)


def _texts(root: ET.Element, source: str, width: float, height: float,
           fields: dict[str, int]) -> tuple[TextItem, ...]:
    items = []
    for element in root.iter():
        for key, value in element.attrib.items():
            if "${" in value:
                raise TemplateError(f"{source}: placeholders go in text, not in {key}=")
        content = element.text or ""
        names = PLACEHOLDER.findall(content) + PLACEHOLDER.findall(element.tail or "")
        for placeholder in names:
            if placeholder not in fields:
                raise TemplateError(f"{source}: unknown placeholder ${{{placeholder}}}; "
                                    "known: " + ", ".join(sorted(fields)))
        if element.tag != f"{{{SVG_NS}}}text":
            if PLACEHOLDER.search(content):
                raise TemplateError(f"{source}: placeholders belong in <text> elements")
            continue
        if len(element):
            raise TemplateError(f"{source}: keep each <text> plain (no <tspan>)")
        where = f"{source}: the text {content!r}"
        x, y, size = (_number(element.get(a), where, a) for a in ("x", "y", "font-size"))
        anchor = element.get("text-anchor", "start")
        length = len(PLACEHOLDER.sub("", content)) + sum(fields[n] for n in names)
        span = length * CHAR_WIDTH_EM * size
        left = {"start": x, "middle": x - span / 2, "end": x - span}.get(anchor)
        if left is None:
            raise TemplateError(f"{where}: text-anchor must be start, middle or end")
        if left < 0 or left + span > width or y - size < 0 or y > height:
            raise TemplateError(f"{where}: at its longest ({length} characters) it leaves "
                                f"the label")
        items.append(TextItem(x, y, size, anchor, element.get("font-weight") == "bold",
                              to_format(content)))
    return tuple(items)
