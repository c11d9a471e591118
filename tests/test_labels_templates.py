"""Label templates are data: checked when the service starts, rendered to ZPL, SVG and PNG."""

from __future__ import annotations

import io
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from biobank import create_app
from biobank.errors import Invalid
from biobank.labels import templates
from biobank.labels.rendering import DEFAULT_FOLDER
from biobank.labels.symbols import TemplateError

ITEM = {
    "barcode": "IF00000012K",
    "study_id": "IF21-NL-001",
    "material": "BM",
    "aliquot_type": "PLASMA",
    "timepoint": "EOI",
    "date": "2026-11-03",
    "position": "2/5",
}
BOX = {
    "barcode": "BX00000003Q",
    "name": "Plasma 1",
    "box_type": "9X9",
    "site": "NL-PMC",
    "date": "2026-11-03",
}


def zpl_labels(stream: str) -> list[dict]:  # type: ignore[type-arg]
    """Parse a ZPL stream: every ^XA must be closed by ^XZ; each label's size, field
    origins and field data."""
    labels, current = [], None
    for chunk in stream.split("^")[1:]:
        command, params = chunk[:2], chunk[2:]
        if command == "XA":
            assert current is None, "^XA inside an open label"
            current = {"pw": None, "ll": None, "ci": None, "origins": [], "data": [], "pq": 1}
            continue
        assert current is not None, f"^{command} outside ^XA … ^XZ"
        if command == "XZ":
            labels.append(current)
            current = None
        elif command in ("PW", "LL", "CI", "PQ"):
            current[command.lower()] = int(params.strip())
        elif command == "FO":
            x, y = params.split(",")[:2]
            current["origins"].append((int(x), int(y)))
        elif command == "FD":
            current["data"].append(params)
    assert current is None, "the last label has no ^XZ"
    return labels


def assert_inside(label: dict) -> None:  # type: ignore[type-arg]
    """Every field starts on the label."""
    assert label["pw"] and label["ll"]
    for x, y in label["origins"]:
        assert 0 <= x < label["pw"] and 0 <= y < label["ll"], (x, y, label)


@pytest.fixture(scope="module")
def registry() -> templates.Registry:
    """The templates shipped in labels/."""
    return templates.load(DEFAULT_FOLDER)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of labels/ to break."""
    target = tmp_path / "labels"
    shutil.copytree(DEFAULT_FOLDER, target)
    return target


def test_the_shipped_templates_load(registry):
    """A cryovial and a box label, each as Code 128 and DataMatrix, as ZPL, SVG and PNG; the
    cryovial's Code 128 at 300 dpi only (at 203 dpi it does not fit 32 mm in modules of two
    dots), everything else at 203 and 300 dpi."""
    names = {t["name"]: t for t in registry.describe()}
    assert set(names) >= {
        "cryovial-code128",
        "cryovial-datamatrix",
        "box-code128",
        "box-datamatrix",
    }
    for name, template in names.items():
        assert template["dpi"] == ([300] if name == "cryovial-code128" else [203, 300])
        assert template["formats"] == ["zpl", "svg", "png"]
    assert registry.get(None, "aliquot").name == "cryovial-code128"
    assert registry.get(None, "aliquot", 203).name == "cryovial-datamatrix"
    assert registry.get(None, "box").name == "box-code128"


@pytest.mark.parametrize(
    ("name", "dpi"),
    [("cryovial-code128", 300), ("cryovial-datamatrix", 203), ("cryovial-datamatrix", 300)],
)
def test_rendered_zpl_is_one_closed_label_per_tube_with_fields_on_the_label(registry, name, dpi):
    """^XA … ^XZ per label, UTF-8 (^CI28), the label's size in dots, fields inside it."""
    stream, mime = registry.get(name, "aliquot").render("zpl", dpi, [ITEM, ITEM])
    assert mime.startswith("text/plain")
    labels = zpl_labels(stream.decode())
    assert len(labels) == 2
    for label in labels:
        assert label["ci"] == 28
        assert (label["pw"], label["ll"]) == ((256, 104) if dpi == 203 else (378, 154))
        assert_inside(label)
        assert "IF00000012K" in label["data"] and "IF21-NL-001" in label["data"]
        assert "BM PLASMA" in label["data"] and "2/5" in label["data"]


@pytest.mark.parametrize("name", ["box-code128", "box-datamatrix"])
def test_a_box_label_renders_from_plain_data(registry, name):
    """The box label takes barcode, name, type, site and date."""
    [label] = zpl_labels(registry.get(name, "box").render("zpl", 300, [BOX])[0].decode())
    assert_inside(label)
    assert {"BX00000003Q", "Plasma 1", "9X9", "NL-PMC", "2026-11-03"} <= set(label["data"])


def test_copies_are_one_label_with_a_quantity(registry):
    """copies=3 prints the label three times with ^PQ, not three formats."""
    [label] = zpl_labels(
        registry.get(None, "aliquot", 203).render("zpl", 203, [ITEM], 3)[0].decode()
    )
    assert label["pq"] == 3


def test_carets_and_tildes_in_data_cannot_become_commands(registry):
    """^ ~ and _ in data go out as ^FH hex escapes; UTF-8 text passes as it is."""
    item = dict(ITEM, study_id="IF^XZ~JA_ü")
    stream = registry.get(None, "aliquot", 203).render("zpl", 203, [item])[0].decode()
    [label] = zpl_labels(stream)
    assert "IF_5EXZ_7EJA_5Fü" in label["data"]
    assert "~" not in stream
    assert "^FH^FDIF_5EXZ" in stream


def test_svg_labels_and_sheets_are_valid_xml_of_the_label_size(registry):
    """One label is a 32 × 13 mm SVG; many are one sheet; text is XML-escaped."""
    template = registry.get(None, "aliquot")
    single = ET.fromstring(template.render("svg", 300, [dict(ITEM, study_id="A<&>B")])[0])
    assert (single.get("width"), single.get("height")) == ("32mm", "13mm")
    texts = [t.text for t in single.iter("{http://www.w3.org/2000/svg}text")]
    assert "A<&>B" in texts and "2/5" in texts
    [bars] = single.iter("{http://www.w3.org/2000/svg}path")
    assert bars.get("d").count("z") > 20  # the Code 128's bars
    sheet = ET.fromstring(template.render("svg", 300, [ITEM] * 7)[0])
    assert len(sheet.findall("{http://www.w3.org/2000/svg}svg")) == 7


def test_png_labels_have_the_label_size_at_the_resolution(registry):
    """A PNG label is 32 × 13 mm in pixels at the requested dpi; a batch is one sheet."""
    template = registry.get(None, "aliquot")
    image = Image.open(io.BytesIO(template.render("png", 300, [ITEM])[0]))
    assert image.size == (378, 154)
    assert image.getextrema()[0] == 0  # something black was drawn
    sheet = Image.open(io.BytesIO(template.render("png", 300, [ITEM] * 3)[0]))
    assert sheet.size[0] > 3 * 378


def test_data_too_long_for_the_barcode_is_refused(registry):
    """An external code longer than the symbol holds is a 422 naming it, at every format."""
    long_code = "EXT-" + "9" * 20
    for fmt in ("zpl", "svg", "png"):
        with pytest.raises(Invalid, match="prints at most") as caught:
            registry.get(None, "aliquot").render(fmt, 300, [dict(ITEM, barcode=long_code)])
        assert caught.value.field == "barcodes"


def test_text_longer_than_the_label_shows_is_refused(registry):
    """A study ID longer than the template shows is refused, never cut."""
    with pytest.raises(Invalid, match="study_id"):
        registry.get(None, "aliquot").render("zpl", 300, [dict(ITEM, study_id="X" * 30)])


def test_unknown_templates_formats_and_kinds_are_422(registry):
    """Unknown template, a box template for a tube, a resolution it is not laid out for."""
    with pytest.raises(Invalid, match="unknown template"):
        registry.get("nope", "aliquot")
    with pytest.raises(Invalid, match="labels a box"):
        registry.get("box-code128", "aliquot")
    with pytest.raises(Invalid, match="300 dpi printers only"):
        registry.get("cryovial-code128", "aliquot").render("svg", 203, [ITEM])
    with pytest.raises(Invalid, match="format"):
        registry.get(None, "aliquot").render("pdf", 203, [ITEM])


BREAKAGES = [
    ("cryovial/datamatrix-203.zpl", "^XZ\n", "", "must end with ^XZ"),
    ("cryovial/datamatrix-203.zpl", "^CI28\n", "", "^CI28"),
    ("cryovial/datamatrix-203.zpl", "^PW256", "^PW400", "dots at 203 dpi"),
    ("cryovial/datamatrix-203.zpl", "^FO84,24", "^FO200,24", "outside the label"),
    ("cryovial/datamatrix-203.zpl", "${study_id}", "${patient_name}", "unknown placeholder"),
    ("cryovial/datamatrix-203.zpl", "^FO84,24^A0N,20,12^FH", "^FO84,24^A0N,20,12", "needs ^FH"),
    ("cryovial/datamatrix-203.zpl", "^LH0,0", "^LH0,0~JA", "tilde"),
    ("cryovial/datamatrix-203.zpl", "^LH0,0", "^LH0,0^PQ5", "copies"),
    ("cryovial/code128-300.zpl", "^BY2", "^BY4", "quiet zone"),
    ("cryovial/code128-300.zpl", "^BY2", "^BY1", "prints blurred"),
    ("cryovial/datamatrix-203.zpl", "^FO84,46", "^FO84,40", "overlap"),
    ("cryovial/datamatrix-203.zpl", "^BXN,3,200", "^BXN,3,140", "ECC 200"),
    ("cryovial/code128.svg", 'height="13mm"', 'height="15mm"', "size"),
    ("cryovial/code128.svg", 'data-module="0.125"', 'data-module="0.5"', "holds only"),
    ("cryovial/code128.svg", 'x="30.5" y="8.9"', 'x="30.5" y="7.0"', "overlap"),
    ("cryovial/code128.svg", 'x="30.5" y="8.9"', 'x="40" y="8.9"', "leaves the label"),
    ("cryovial/code128.svg", "</svg>", "", "well-formed"),
    ("cryovial/label.toml", 'kind = "aliquot"', 'kind = "tube"', "kind"),
]


@pytest.mark.parametrize(("path", "old", "new", "message"), BREAKAGES)
def test_a_broken_template_stops_the_service_from_starting(folder, path, old, new, message):
    """Each kind of fault is caught while the app starts, naming the file."""
    target = folder / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    with pytest.raises(TemplateError, match=re.escape(message)) as caught:
        create_app({"DATABASE_URL": "sqlite://", "LABELS_DIR": str(folder)})
    assert Path(path).name in str(caught.value)


def test_an_edited_template_is_used_without_touching_code(folder):
    """Templates are data: a new literal line appears on the labels."""
    target = folder / "cryovial" / "code128-300.zpl"
    target.write_text(target.read_text().replace("^XZ", "^FO20,144^A0N,8,6^FDInterfant-21^FS\n^XZ"))
    app = create_app({"DATABASE_URL": "sqlite://", "LABELS_DIR": str(folder)})
    template = app.extensions["biobank.labels"].get(None, "aliquot")
    assert "^FDInterfant-21^FS" in template.render("zpl", 300, [ITEM])[0].decode()
