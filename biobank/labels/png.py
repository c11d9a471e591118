"""PNG labels: the SVG template's layout drawn with Pillow at the printer's resolution.

One pixel is one printer dot: the symbol's rectangles come from labels.geometry, on whole
dots with modules of at least two (Code 128 or DataMatrix alike). The template's text
elements are drawn where the SVG puts them.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from biobank.labels import geometry
from biobank.labels.svg import SHEET_GAP_MM, SHEET_MARGIN_MM, SvgTemplate, sheet_columns
from biobank.labels.symbols import MM_PER_INCH

MIME = "image/png"
_ANCHORS = {"start": "ls", "middle": "ms", "end": "rs"}


@lru_cache(maxsize=64)
def _font(pixels: int, bold: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # DejaVu Sans Mono where the system has it (the SVG asks for it); Pillow's own otherwise.
    try:
        return ImageFont.truetype(
            "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf", pixels
        )
    except OSError:
        return ImageFont.load_default(size=pixels)


def _px(mm: float, dpi: int) -> int:
    return round(mm * dpi / MM_PER_INCH)


def label_image(template: SvgTemplate, values: dict[str, str], code: str, dpi: int) -> Image.Image:
    """One label as a 1-bit-looking greyscale image at ``dpi``."""
    image = Image.new("L", (_px(template.width, dpi), _px(template.height, dpi)), 255)
    draw = ImageDraw.Draw(image)
    for x, y, width, height in geometry.rectangles(template.symbology, code, template.area(dpi)):
        draw.rectangle((x, y, x + width - 1, y + height - 1), fill=0)
    for item in template.texts:
        text = item.text.format_map(values)
        draw.text(
            (_px(item.x, dpi), _px(item.y, dpi)),
            text,
            fill=0,
            font=_font(max(1, _px(item.size, dpi)), item.bold),
            anchor=_ANCHORS[item.anchor],
        )
    return image


def encode(image: Image.Image, dpi: int) -> bytes:
    """PNG bytes, with the resolution recorded."""
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi), optimize=False)
    return out.getvalue()


def sheet(template: SvgTemplate, images: list[Image.Image], dpi: int) -> Image.Image:
    """Many label images on one sheet, in the same grid as the SVG sheet."""
    columns = sheet_columns(template.width)
    rows = max(1, -(-len(images) // columns))
    width_mm = 2 * SHEET_MARGIN_MM + columns * template.width + (columns - 1) * SHEET_GAP_MM
    height_mm = 2 * SHEET_MARGIN_MM + rows * template.height + (rows - 1) * SHEET_GAP_MM
    page = Image.new("L", (_px(width_mm, dpi), _px(height_mm, dpi)), 255)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        x = SHEET_MARGIN_MM + column * (template.width + SHEET_GAP_MM)
        y = SHEET_MARGIN_MM + row * (template.height + SHEET_GAP_MM)
        page.paste(image, (_px(x, dpi), _px(y, dpi)))
    return page
