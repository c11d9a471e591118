"""Cohort completeness as a matrix picture: patients × timepoints, each cell the timepoint's
state for the patient as their timeline shows it, linked to the patient, said in words."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reports_helpers import demo  # noqa: F401 (a fixture)
from sqlalchemy import select

from biobank import clock
from biobank.patients import service as patients
from biobank.patients.models import Patient
from biobank.reference.models import Timepoint
from biobank.reports import charts

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}href"
WORDS = {"received": "received", "missing": "missing (window passed)", "not_yet_due": "not yet due"}


def _timeline_states(session):  # type: ignore[no-untyped-def]
    """study id → timepoint → its state from the patient's timeline: missing if a material
    expected there is missing, else not yet due if one is pending, else received if a
    sample was taken there; absent when nothing is expected nor taken."""
    found = {}
    for patient in session.scalars(select(Patient)):
        states = {}
        for row in patients.timeline(session, patient, clock.today())["timepoints"]:
            seen = {m["state"] for m in row["materials"] if m["state"] != "not_applicable"}
            for state, means in (
                ("missing", "missing"),
                ("pending", "not_yet_due"),
                ("received", "received"),
            ):
                if state in seen:
                    states[row["timepoint"]] = means
                    break
        found[patient.study_id] = states
    return found


def test_the_matrix_shows_each_patients_timeline(demo, manager):  # noqa: F811
    """Every patient is a row and every timepoint a column, in study-id and schedule order;
    a cell is drawn where the timeline expects or holds something, and the words say each
    patient's received, missing and not-yet-due timepoints; the patient's label and each of
    their cells link to the patient (the cells out of the tab order, the label a named
    link), so the picture is a group, not a flat image."""
    expected = _timeline_states(demo)
    columns = list(
        demo.scalars(select(Timepoint.code).order_by(Timepoint.sort_order, Timepoint.id))
    )
    response = manager.get("/api/v1/reports/completeness?format=svg&picture=matrix&per_page=500")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    root = ET.fromstring(response.get_data())
    assert root.get("role") == "group"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text == "Cohort completeness per patient"
    assert desc is not None and desc.text and f"of {len(expected)}" in desc.text
    rows = sorted(expected)
    drawn = {}
    for group in root.iter(f"{SVG}g"):
        gid = group.get("id") or ""
        if gid.startswith("cell-"):
            y, x = (int(n) for n in gid.split("-")[1:])
            link = group.find(f"{SVG}a")
            assert link is not None and link.get("tabindex") == "-1"
            assert link.get("aria-hidden") == "true"
            drawn[(rows[y], columns[x])] = link.get(XLINK)
    assert set(drawn) == {(p, tp) for p, states in expected.items() for tp in states}
    assert all(href == f"/patients/{p}" for (p, _), href in drawn.items())
    labels = {
        "".join(a.itertext()).strip(): a.get(XLINK)
        for a in root.iter(f"{SVG}a")
        if a.get("tabindex") is None
    }
    assert labels == {p: f"/patients/{p}" for p in rows}
    for study_id, states in expected.items():
        for state, words in WORDS.items():
            named = [tp for tp in columns if states.get(tp) == state]
            if named:
                assert f"{words} {', '.join(named)}" in desc.text, (study_id, state)


def test_the_matrix_follows_the_page_and_filters(demo, manager):  # noqa: F811
    """A page of three patients draws those three, in study-id order; the words say which
    of how many; an unknown picture is a 422 naming it; without links the picture is a plain
    image."""
    page = manager.get("/api/v1/reports/completeness?per_page=3&page=2").json
    svg = manager.get("/api/v1/reports/completeness?format=svg&picture=matrix&per_page=3&page=2")
    root = ET.fromstring(svg.get_data())
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text
    assert f"patients 4 to 6 of {page['patients']}" in desc.text
    labels = [
        "".join(a.itertext()).strip() for a in root.iter(f"{SVG}a") if a.get("tabindex") is None
    ]
    assert labels == [r["study_id"] for r in page["rows"]]
    response = manager.get("/api/v1/reports/completeness?format=svg&picture=pie")
    assert response.status_code == 422 and "picture" in response.json["errors"]["query"]
    plain = ET.fromstring(charts.completeness_matrix(page, ["DX"], clock.today()))
    assert plain.get("role") == "img" and not list(plain.iter(f"{SVG}a"))


def test_an_empty_page_draws_an_empty_matrix(demo, manager):  # noqa: F811
    """A page past the last patient, or a country without patients, is a matrix with
    nothing in it (no error), and its words say so."""
    for query in ("page=99", "country=US"):
        response = manager.get(f"/api/v1/reports/completeness?format=svg&picture=matrix&{query}")
        assert response.status_code == 200, query
        desc = ET.fromstring(response.get_data()).find(f"{SVG}desc")
        assert desc is not None and desc.text and "none of" in desc.text, query
