"""Labels any scanner reads: every template rendered at each resolution it is laid out for
(SVG rasterised by resvg at that resolution, PNG as served), decoded by an independent
decoder (zxing-cpp), for the longest codes each template accepts; bars on whole dots,
modules of two dots or more, quiet zones clear, text never on the symbol."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import resvg_py
import zxingcpp
from PIL import Image

from biobank.labels import templates
from biobank.labels.rendering import DEFAULT_FOLDER
from biobank.labels.symbols import MM_PER_INCH, QUIET_MODULES, TemplateError
from biobank.samples import barcodes

REGISTRY = templates.load(DEFAULT_FOLDER)
CASES = [(name, dpi) for name, t in sorted(REGISTRY.templates.items()) for dpi in t.dpis]
DECODES: dict[tuple[str, int, str], str] = {}


def worst_codes(template: templates.LabelTemplate, dpi: int) -> list[str]:
    """Codes the template must print: the longest it accepts, made of characters that pack
    worst (no digit runs), plus own issued codes and short ones."""
    longest = template.capacity("svg", dpi)
    letters = "QxZ-yW_kVbJ"
    worst = [(letters[i:] + letters[:i]) * 3 for i in range(4)]
    own = [barcodes.make(prefix, 7919 * n + 12345, 8) for n in range(4) for prefix in ("IF",)]
    return [w[:longest] for w in worst] + own + ["AB12", "X" * longest]


def values(template: templates.LabelTemplate, code: str) -> dict[str, str]:
    """Every placeholder at its longest, so that text is as wide as the template allows."""
    out = {name: ("W" * longest) for name, longest in template.fields.items()}
    out["barcode"] = code
    return out


def decode(png: bytes) -> list[str]:
    """What zxing-cpp reads in a PNG."""
    image = Image.open(io.BytesIO(png)).convert("L")
    return [found.text for found in zxingcpp.read_barcodes(image)]


def rasterise(svg: bytes, dpi: int) -> bytes:
    """An SVG label as the printer's resolution would print it."""
    return bytes(resvg_py.svg_to_bytes(svg_string=svg.decode(), dpi=dpi, background="white"))


@pytest.mark.parametrize(("name", "dpi"), CASES)
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_every_template_decodes_at_its_resolution(name, dpi, fmt):
    """The longest and the worst-packing codes, and own codes, all decode to themselves."""
    template = REGISTRY.templates[name]
    failures = []
    for code in worst_codes(template, dpi):
        content, _ = template.render(fmt, dpi, [values(template, code)])
        png = rasterise(content, dpi) if fmt == "svg" else content
        read = decode(png)
        DECODES[(name, dpi, fmt)] = f"{DECODES.get((name, dpi, fmt), '')}."
        if read != [code]:
            failures.append((code, read))
    assert failures == []


@pytest.mark.parametrize(("name", "dpi"), CASES)
def test_svg_bars_sit_on_whole_dots_with_modules_of_two_or_more(name, dpi):
    """Every edge of the symbol is a whole number of dots; no bar is narrower than two."""
    template = REGISTRY.templates[name]
    code = worst_codes(template, dpi)[0]
    svg, _ = template.render("svg", dpi, [values(template, code)])
    path = re.search(rb'<path d="([^"]+)"', svg).group(1).decode()
    dot = MM_PER_INCH / dpi
    numbers = [float(n) for n in re.findall(r"-?\d+\.\d+", path)]
    assert numbers, "no symbol drawn"
    for number in numbers:
        assert abs(number / dot - round(number / dot)) < 1e-3, number
    widths = [abs(float(w)) for w in re.findall(r"h(-?\d+\.\d+)", path)]
    assert min(widths) / dot >= 2 - 1e-3


@pytest.mark.parametrize(
    ("name", "dpi"), [c for c in CASES if REGISTRY.templates[c[0]].symbology == "code128"]
)
def test_code128_quiet_zones_are_ten_modules_of_white(name, dpi):
    """ISO/IEC 15417: at least ten modules of white left and right of the bars, in the PNG."""
    template = REGISTRY.templates[name]
    code = worst_codes(template, dpi)[0]
    png, _ = template.render("png", dpi, [values(template, code)])
    image = Image.open(io.BytesIO(png)).convert("L")
    where = template.svg.area(dpi)
    row = [image.getpixel((x, where.top + where.height // 2)) for x in range(image.width)]
    dark = [x for x, value in enumerate(row) if value < 128]
    module = where.module
    assert dark[0] - where.left >= QUIET_MODULES * module
    assert where.left + where.width - 1 - dark[-1] >= QUIET_MODULES * module
    assert dark[-1] + QUIET_MODULES * module < image.width


def test_zpl_modules_are_two_dots_or_more_in_every_shipped_template():
    """^BY for Code 128 and the ^BX module for DataMatrix: never one dot."""
    for path in sorted(Path(DEFAULT_FOLDER).glob("*/*.zpl")):
        text = path.read_text()
        modules = [int(m) for m in re.findall(r"\^BY(\d+)", text)]
        modules += [int(m) for m in re.findall(r"\^BXN,(\d+)", text)]
        assert modules and min(modules) >= 2, path


def test_a_one_dot_module_is_refused_when_templates_load(tmp_path):
    """A template with ^BY1 stops the service at start-up, naming the rule."""
    folder = tmp_path / "labels"
    (folder / "vial").mkdir(parents=True)
    source = Path(DEFAULT_FOLDER) / "box"
    (folder / "vial" / "label.toml").write_text(
        (source / "label.toml")
        .read_text()
        .replace('name = "box"', 'name = "vial"')
        .replace('svg = "code128.svg"\n', "")
        .replace('svg = "datamatrix.svg"\n', "")
    )
    for name in ("code128-300.zpl", "datamatrix-203.zpl", "datamatrix-300.zpl"):
        (folder / "vial" / name).write_text((source / name).read_text())
    (folder / "vial" / "code128-203.zpl").write_text(
        (source / "code128-203.zpl").read_text().replace("^BY2", "^BY1")
    )
    with pytest.raises(TemplateError, match="prints blurred"):
        templates.load(folder)


def test_text_that_would_run_into_another_field_is_refused(tmp_path):
    """The old 203 dpi cryovial layout: an 18-character barcode line ran into n/N."""
    folder = tmp_path / "labels"
    (folder / "vial").mkdir(parents=True)
    source = Path(DEFAULT_FOLDER) / "cryovial"
    (folder / "vial" / "label.toml").write_text(
        (source / "label.toml").read_text().replace('name = "cryovial"', 'name = "vial"')
    )
    for name in ("code128-300.zpl", "code128.svg", "datamatrix-300.zpl", "datamatrix.svg"):
        (folder / "vial" / name).write_text((source / name).read_text())
    (folder / "vial" / "datamatrix-203.zpl").write_text(
        (source / "datamatrix-203.zpl")
        .read_text()
        .replace("^FO172,46^A0N,16,10^FB72,1,0,R", "^FO120,46^A0N,16,10^FB72,1,0,R")
    )
    with pytest.raises(TemplateError, match="overlap"):
        templates.load(folder)


def test_datamatrix_labels_are_served_as_png_and_svg(tech, make_aliquots):
    """DataMatrix as PNG and SVG (it was ZPL only: 422), decodable as served."""
    [aliquot] = make_aliquots(1)
    for fmt in ("png", "svg"):
        answer = tech.get(
            f"/api/v1/aliquots/{aliquot.barcode}/label?format={fmt}"
            "&template=cryovial-datamatrix&dpi=203"
        )
        assert answer.status_code == 200, answer.json
        png = answer.data if fmt == "png" else rasterise(answer.data, 203)
        assert decode(png) == [aliquot.barcode]


def test_a_template_asked_for_at_a_resolution_it_is_not_laid_out_for_is_a_422(tech, make_aliquots):
    """cryovial-code128 at 203 dpi: 422 naming dpi; without a template, 203 dpi gets the
    cryovial DataMatrix and 300 dpi the Code 128."""
    [aliquot] = make_aliquots(1)
    url = f"/api/v1/aliquots/{aliquot.barcode}/label"
    refused = tech.get(f"{url}?template=cryovial-code128&dpi=203")
    assert refused.status_code == 422 and "dpi" in refused.json["errors"]["json"]
    assert "^BXN" in tech.get(f"{url}?dpi=203").get_data(as_text=True)
    assert "^BCN" in tech.get(f"{url}?dpi=300").get_data(as_text=True)
