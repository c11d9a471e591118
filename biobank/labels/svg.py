"""SVG templates: checked when loaded; the barcode is drawn on the printer's dot grid.

A template is an SVG document in millimetres (``viewBox="0 0 width height"``) with
``${name}`` placeholders in ``<text>`` elements and one ``<rect id="barcode" … data-module>``
marking where the symbol goes, quiet zones included. The symbol (Code 128 or DataMatrix,
see labels.geometry) is drawn for one printer resolution: every bar on whole dots, modules
of at least two dots, so the SVG printed or rasterised at that resolution scans. The text
is put in by str.format, XML-escaped. Loading refuses text that can leave the label or
overlap the barcode or other text at its longest, the barcode's longest being what the
symbol can hold.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from biobank.labels import geometry
from biobank.labels.symbols import MM_PER_INCH, Overlap, TemplateError, first_overlap
from biobank.labels.zpl import PLACEHOLDER, to_format

SVG_NS = "http://www.w3.org/2000/svg"
MIME = "image/svg+xml"
CHAR_WIDTH_EM = 0.6  # monospace advance: the width check assumes it
_ROOT_TAG = re.compile(r"<svg\b[^>]*>", re.S)
_BARCODE_RECT = re.compile(r"<rect\b[^>]*\bid=\"barcode\"[^>]*/>", re.S)
DESCENT_EM = 0.25  # below the baseline (the overlap check's text box)
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
    """One SVG label, ready to render at each resolution it is laid out for."""

    name: str
    width: float  # mm
    height: float
    symbology: str
    barcode_box: tuple[float, float, float, float]  # x, y, width, height (mm)
    module: float  # mm
    capacities: dict[int, int]  # dpi → longest barcode
    before: str  # str.format strings around the barcode
    after: str
    root_attributes: str  # the root's attributes other than its size (fonts…)
    texts: tuple[TextItem, ...]

    def area(self, dpi: int) -> geometry.Area:
        """The barcode's place in whole dots at ``dpi``."""
        return geometry.area(self.barcode_box, self.module, dpi)

    def symbol(self, code: str, dpi: int) -> str:
        """The symbol as one SVG path, every edge on a dot of ``dpi``."""
        return geometry.svg_path(geometry.rectangles(self.symbology, code, self.area(dpi)), dpi)

    def body(self, values: dict[str, str], symbol: str) -> str:
        """The label's content (inside its root element), values already escaped."""
        return self.before.format_map(values) + symbol + self.after.format_map(values)

    def document(self, values: dict[str, str], symbol: str) -> str:
        """One label as a standalone SVG document."""
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="{SVG_NS}" '
            f'width="{self.width:g}mm" height="{self.height:g}mm" '
            f'viewBox="0 0 {self.width:g} {self.height:g}"{self.root_attributes}>'
            f"{self.body(values, symbol)}</svg>\n"
        )

    def sheet(self, bodies: list[str], dpi: int) -> str:
        """Many labels on one sheet (a grid on A4 width), as one SVG document; each label
        starts on a whole dot, so its bars stay on the dot grid."""
        columns = sheet_columns(self.width)
        rows = max(1, -(-len(bodies) // columns))
        width = 2 * SHEET_MARGIN_MM + columns * self.width + (columns - 1) * SHEET_GAP_MM
        height = 2 * SHEET_MARGIN_MM + rows * self.height + (rows - 1) * SHEET_GAP_MM
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="{SVG_NS}" '
            f'width="{width:g}mm" height="{height:g}mm" viewBox="0 0 {width:g} {height:g}">'
        ]
        dot = MM_PER_INCH / dpi
        for index, body in enumerate(bodies):
            x, y = (
                round(v / dot) * dot for v in sheet_origin(index, columns, self.width, self.height)
            )
            parts.append(
                f'<svg x="{x:.5f}" y="{y:.5f}" width="{self.width:g}" '
                f'height="{self.height:g}" '
                f'viewBox="0 0 {self.width:g} {self.height:g}"{self.root_attributes}>'
                f"{body}</svg>"
            )
        parts.append("</svg>\n")
        return "".join(parts)


def sheet_columns(label_width: float) -> int:
    """How many labels fit side by side on a sheet."""
    room = SHEET_WIDTH_MM - 2 * SHEET_MARGIN_MM + SHEET_GAP_MM
    return max(1, int(room // (label_width + SHEET_GAP_MM)))


def sheet_origin(index: int, columns: int, width: float, height: float) -> tuple[float, float]:
    """Where (mm) the label number ``index`` sits on a sheet."""
    row, column = divmod(index, columns)
    return (
        SHEET_MARGIN_MM + column * (width + SHEET_GAP_MM),
        SHEET_MARGIN_MM + row * (height + SHEET_GAP_MM),
    )


def _number(value: str | None, where: str, what: str) -> float:
    try:
        return float((value or "").removesuffix("mm"))
    except ValueError:
        raise TemplateError(f"{where}: {what} is not a number: {value!r}") from None


def compile_svg(
    text: str,
    *,
    source: str,
    name: str,
    width_mm: float,
    height_mm: float,
    fields: dict[str, int],
    barcode_min: int,
    symbology: str,
    dpis: tuple[int, ...],
) -> SvgTemplate:
    """Check an SVG template against its label and compile it; TemplateError if broken."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TemplateError(f"{source}: not well-formed XML: {exc}") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise TemplateError(f"{source}: the root element must be an SVG <svg>")
    width, height = (_number(root.get(a), source, a) for a in ("width", "height"))
    if (width, height) != (width_mm, height_mm) or not (
        root.get("width", "").endswith("mm") and root.get("height", "").endswith("mm")
    ):
        raise TemplateError(
            f'{source}: give the size as width="{width_mm:g}mm" height="{height_mm:g}mm"'
        )
    if (root.get("viewBox") or "").split() != ["0", "0", f"{width_mm:g}", f"{height_mm:g}"]:
        raise TemplateError(
            f'{source}: use viewBox="0 0 {width_mm:g} {height_mm:g}" (coordinates in mm)'
        )
    boxes = [e for e in root.iter() if e.get("id") == "barcode"]
    if len(boxes) != 1 or boxes[0].tag != f"{{{SVG_NS}}}rect":
        raise TemplateError(
            f"{source}: mark the barcode's place with one "
            '<rect id="barcode" x y width height data-module>'
        )
    box = boxes[0]
    bx, by, bw, bh = (
        _number(box.get(a), source, f"the barcode rect's {a}")
        for a in ("x", "y", "width", "height")
    )
    module = _number(box.get("data-module"), source, "data-module")
    if module <= 0 or bx < 0 or by < 0 or bx + bw > width_mm or by + bh > height_mm:
        raise TemplateError(f"{source}: the barcode rect must lie on the label")
    capacities = {}
    for dpi in dpis:
        where = geometry.area((bx, by, bw, bh), module, dpi)
        capacity = min(where.capacity(symbology), fields["barcode"])
        if capacity < barcode_min:
            raise TemplateError(
                f"{source}: at {dpi} dpi the barcode rect holds only {capacity} characters "
                f"(modules of {where.module} dots, quiet zones included); the label needs "
                f"{barcode_min}"
            )
        capacities[dpi] = capacity
    longest = {**fields, "barcode": max(capacities.values())}
    texts, boxes = _texts(root, source, width_mm, height_mm, longest)
    clash = first_overlap([Overlap("the barcode", bx, by, bx + bw, by + bh), *boxes])
    if clash is not None:
        raise TemplateError(
            f"{source}: at their longest, {clash[0].name} and {clash[1].name} overlap"
        )
    start = _ROOT_TAG.search(text)
    rect = _BARCODE_RECT.search(text)
    if start is None or rect is None:
        raise TemplateError(f'{source}: write the barcode rect as <rect id="barcode" … />')
    content_end = text.rindex("</svg>")
    extra = {
        k: v
        for k, v in root.attrib.items()
        if k not in ("width", "height", "viewBox", "x", "y") and "}" not in k
    }
    attributes = "".join(f' {k}="{escape(v)}"' for k, v in extra.items())
    return SvgTemplate(
        name=name,
        width=width_mm,
        height=height_mm,
        symbology=symbology,
        barcode_box=(bx, by, bw, bh),
        module=module,
        capacities=capacities,
        before=to_format(text[start.end() : rect.start()]),
        after=to_format(text[rect.end() : content_end]),
        root_attributes=attributes,
        texts=texts,
    )


def _texts(
    root: ET.Element, source: str, width: float, height: float, fields: dict[str, int]
) -> tuple[tuple[TextItem, ...], list[Overlap]]:
    items = []
    boxes = []
    for element in root.iter():
        for key, value in element.attrib.items():
            if "${" in value:
                raise TemplateError(f"{source}: placeholders go in text, not in {key}=")
        content = element.text or ""
        names = PLACEHOLDER.findall(content) + PLACEHOLDER.findall(element.tail or "")
        for placeholder in names:
            if placeholder not in fields:
                raise TemplateError(
                    f"{source}: unknown placeholder ${{{placeholder}}}; "
                    "known: " + ", ".join(sorted(fields))
                )
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
            raise TemplateError(
                f"{where}: at its longest ({length} characters) it leaves the label"
            )
        items.append(
            TextItem(x, y, size, anchor, element.get("font-weight") == "bold", to_format(content))
        )
        boxes.append(
            Overlap(f"the text {content!r}", left, y - size, left + span, y + DESCENT_EM * size)
        )
    return tuple(items), boxes
