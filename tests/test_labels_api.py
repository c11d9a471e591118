"""Rendering labels through the API: one tube, a sample's aliquots, a list, a box."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
from PIL import Image

from biobank.samples import service as samples
from biobank.storage import operations
from biobank.storage import service as storage
from tests.test_labels_templates import assert_inside, zpl_labels

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()


@pytest.fixture
def tubes(make_sample, make_aliquots, make_patient):  # type: ignore[no-untyped-def]
    """Four aliquots of one bone-marrow sample at EOI (accession number and notes set)."""
    patient = make_patient(study_id="IF21-NL-042")
    sample = make_sample(
        patient, timepoint="EOI", accession_number="H-2026-SECRET", notes="call Dr. Jansen"
    )
    return make_aliquots(n=4, parent=sample, volume="0.5")


@pytest.fixture
def boxed(session, tubes):  # type: ignore[no-untyped-def]
    """A 9×9 box in a freezer at NL-PMC holding three of the tubes (B1, A2, A1)."""
    storage.load_default_box_types(session, ACTOR)
    freezer = storage.create_freezer(
        session,
        ACTOR,
        {"site": "NL-PMC", "name": "F-80-07", "freezer_type": "mechanical-80"},
        NUMBERING,
    )
    rack = storage.create_container(
        session, ACTOR, {"kind": "rack", "name": "Rack 1", "parent": freezer.barcode}, NUMBERING
    )
    box = storage.create_box(
        session, ACTOR, {"box_type": "9X9", "parent": rack.barcode, "name": "Plasma EOI"}, NUMBERING
    )
    for tube, place in zip(tubes, ("B1", "A2", "A1"), strict=False):
        operations.place(session, ACTOR, tube, box, place)
    session.commit()
    return SimpleNamespace(box=box, tubes=tubes)


def test_a_tubes_label_as_zpl_shows_pseudonym_material_timepoint_and_n_of_n(tech, tubes):
    """The second of four aliquots: its code, study ID, BM PLASMA, EOI, date, 2/4."""
    tube = tubes[1]
    response = tech.get(f"/api/v1/aliquots/{tube.barcode}/label")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    [label] = zpl_labels(response.get_data(as_text=True))
    assert_inside(label)
    data = set(label["data"])
    assert {tube.barcode, "IF21-NL-042", "BM PLASMA", "EOI", "2/4"} <= data
    assert tube.sample.collected_at.date().isoformat() in data


@pytest.mark.parametrize("fmt", ["zpl", "svg", "png"])
def test_no_direct_identifier_of_the_patient_is_on_any_label(tech, tubes, fmt):
    """Neither the hospital's accession number nor the sample's notes reach a label."""
    response = tech.get(f"/api/v1/aliquots/{tubes[0].barcode}/label?format={fmt}&dpi=300")
    assert response.status_code == 200
    body = response.get_data()
    assert b"SECRET" not in body and b"Jansen" not in body
    if fmt != "png":
        assert b"IF21-NL-042" in body


def test_svg_and_png_forms(tech, tubes):
    """format=svg is XML of the label size; format=png an image at the dpi asked."""
    svg = tech.get(f"/api/v1/aliquots/{tubes[0].barcode}/label?format=svg")
    assert svg.mimetype == "image/svg+xml"
    assert ET.fromstring(svg.data).get("width") == "32mm"
    png = tech.get(f"/api/v1/aliquots/{tubes[0].barcode}/label?format=png&dpi=300")
    assert png.mimetype == "image/png"
    assert Image.open(io.BytesIO(png.data)).size == (378, 154)


def test_a_datamatrix_template_and_300_dpi(tech, tubes):
    """template=cryovial-datamatrix draws ^BX; dpi=300 sizes the label in 300 dpi dots."""
    response = tech.get(
        f"/api/v1/aliquots/{tubes[0].barcode}/label?template=cryovial-datamatrix&dpi=300"
    )
    text = response.get_data(as_text=True)
    assert "^BXN," in text
    assert (zpl_labels(text)[0]["pw"], zpl_labels(text)[0]["ll"]) == (378, 154)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=pdf", "format"),
        ("template=nope", "template"),
        ("template=box-code128", "template"),
        ("template=cryovial-code128&dpi=203", "dpi"),
        ("dpi=600", "dpi"),
    ],
)
def test_unknown_templates_and_formats_are_422(tech, tubes, query, field):
    """Bad rendering requests are a 422 naming the parameter."""
    response = tech.get(f"/api/v1/aliquots/{tubes[0].barcode}/label?{query}")
    assert response.status_code == 422, response.json
    assert field in str(response.json["errors"])


def test_a_barcode_too_long_for_the_template_is_422(tech, make_aliquots, session):
    """A pre-barcoded tube whose code does not fit the symbol."""
    [parent] = make_aliquots(n=1, volume="1.0")
    long_code = "EXTERNAL-TUBE-0000000123456"
    [tube] = samples.split(
        session,
        ACTOR,
        parent,
        [{"aliquot_type": "PLASMA", "volume_ml": 0.2, "barcode": long_code}],
        NUMBERING,
    )
    session.commit()
    response = tech.get(f"/api/v1/aliquots/{tube.barcode}/label")
    assert response.status_code == 422
    assert "prints at most" in response.json["message"]


def test_unknown_and_mistyped_codes(tech, tubes):
    """An unknown tube is a 404; a wrong check character a 422."""
    assert tech.get("/api/v1/aliquots/NOPE-1/label").status_code == 404
    mistyped = tubes[0].barcode[:-1] + ("A" if tubes[0].barcode[-1] != "A" else "B")
    assert tech.get(f"/api/v1/aliquots/{mistyped}/label").status_code == 422


def test_a_samples_aliquots_as_one_zpl_stream_and_one_svg_sheet(tech, tubes):
    """GET /samples/{code}/labels renders every aliquot, in n/N order."""
    code = tubes[0].sample.barcode
    stream = tech.get(f"/api/v1/samples/{code}/labels").get_data(as_text=True)
    labels = zpl_labels(stream)
    assert [label["data"][0] for label in labels] == [t.barcode for t in tubes]
    assert [f"{n}/4" in label["data"] for n, label in enumerate(labels, 1)] == [True] * 4
    sheet = ET.fromstring(tech.get(f"/api/v1/samples/{code}/labels?format=svg").data)
    assert len(sheet.findall("{http://www.w3.org/2000/svg}svg")) == 4


def test_a_list_of_barcodes_renders_in_the_order_given(tech, tubes):
    """POST /labels/render takes barcodes from several places and records nothing."""
    codes = [tubes[3].barcode, tubes[0].barcode.lower()]
    response = tech.post("/api/v1/labels/render", json={"barcodes": codes, "format": "zpl"})
    assert response.status_code == 200
    labels = zpl_labels(response.get_data(as_text=True))
    assert [label["data"][0] for label in labels] == [tubes[3].barcode, tubes[0].barcode]
    png = tech.post("/api/v1/labels/render", json={"barcodes": codes, "format": "png"})
    assert png.mimetype == "image/png"
    missing = tech.post("/api/v1/labels/render", json={"barcodes": codes + ["NOPE-9"]})
    assert missing.status_code == 404 and "NOPE-9" in missing.json["message"]
    twice = tech.post("/api/v1/labels/render", json={"barcodes": codes + codes[:1]})
    assert twice.status_code == 422


def test_a_box_label_and_the_labels_of_its_contents(tech, boxed):
    """The box label shows its code, name, type, site; its contents come in place order."""
    box = boxed.box
    [label] = zpl_labels(tech.get(f"/api/v1/boxes/{box.barcode}/label").get_data(as_text=True))
    assert {box.barcode, "Plasma EOI", "9X9", "NL-PMC"} <= set(label["data"])
    svg = tech.get(f"/api/v1/boxes/{box.barcode}/label?format=svg")
    assert ET.fromstring(svg.data).get("width") == "51mm"
    contents = zpl_labels(tech.get(f"/api/v1/boxes/{box.barcode}/labels").get_data(as_text=True))
    # A1, A2, B1: the third, second and first tube.
    assert [c["data"][0] for c in contents] == [
        boxed.tubes[2].barcode,
        boxed.tubes[1].barcode,
        boxed.tubes[0].barcode,
    ]


def test_the_templates_are_listed(tech):
    """GET /label-templates names each template with its formats and placeholders."""
    listed = {t["name"]: t for t in tech.get("/api/v1/label-templates").json}
    assert listed["cryovial-code128"]["formats"] == ["zpl", "svg", "png"]
    assert "study_id" in listed["cryovial-code128"]["fields"]


def test_researchers_render_no_labels(as_role, tubes):
    """Labels carry the study pseudonym: researchers may not render them."""
    researcher = as_role("researcher")
    assert researcher.get(f"/api/v1/aliquots/{tubes[0].barcode}/label").status_code == 403
