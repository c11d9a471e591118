"""Reports: each number compared with a count made independently from the tubes, samples,
boxes and requests; the scopes; bad input; the pictures' text alternatives."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections import Counter

from reports_helpers import demo  # noqa: F401 (a fixture)
from sqlalchemy import func, select

from biobank import clock
from biobank.patients import service as patients
from biobank.patients.models import Patient
from biobank.reference.models import Site
from biobank.requests.models import RequestAliquot, SampleRequest, Shipment
from biobank.samples.models import Aliquot, Sample
from biobank.storage.models import BoxType, Container, Position
from biobank.storage.operations import DEPARTED

SVG = "{http://www.w3.org/2000/svg}"


def _csv(response):  # type: ignore[no-untyped-def]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _all_cells(client, query=""):  # type: ignore[no-untyped-def]
    """Every patient's cells, through the pages."""
    found, page = {}, 1
    while True:
        body = client.get(f"/api/v1/reports/completeness?per_page=7&page={page}{query}").json
        for row in body["rows"]:
            found[row["study_id"]] = {(c["timepoint"], c["material"]): c for c in row["cells"]}
        if page * 7 >= body["patients"]:
            return body, found
        page += 1


def test_completeness_agrees_with_every_patients_timeline(demo, manager):  # noqa: F811
    """Each patient's cells are the states the patient timeline shows (received, missing
    after the window, not yet due), nothing more and nothing less; the summary counts the
    samples; the CSV is the matrix; site, risk group and material narrow it."""
    body, cells = _all_cells(manager)
    assert body["patients"] == demo.scalar(select(func.count()).select_from(Patient)) == 20
    for patient in demo.scalars(select(Patient)):
        timeline = patients.timeline(demo, patient, clock.today())
        expected = {}
        for row in timeline["timepoints"]:
            for m in row["materials"]:
                if m["state"] == "not_applicable":
                    continue
                state = {"pending": "not_yet_due"}.get(m["state"], m["state"])
                expected[(row["timepoint"], m["material"])] = (state, len(m["samples"]))
        got = {key: (c["state"], c["samples"]) for key, c in cells[patient.study_id].items()}
        assert got == expected, patient.study_id
    _summary_counts_the_samples(demo, manager)
    _csv_is_the_matrix(manager, cells)
    _filters_by_site_risk_group_and_material(demo, manager)


def _summary_counts_the_samples(demo, manager):  # type: ignore[no-untyped-def]  # noqa: F811
    """Received cells are the distinct patient × timepoint × material of the samples; the
    missing and not-yet-due add up with them to the expected cells."""
    body = manager.get("/api/v1/reports/completeness").json
    taken = demo.execute(
        select(Sample.patient_id, Sample.timepoint_id, Sample.material_id)
        .where(Sample.timepoint_id.is_not(None))
        .distinct()
    ).all()
    assert sum(r["received"] + r["received_unexpected"] for r in body["summary"]) == len(taken)
    for row in body["summary"]:
        assert row["expected"] == row["received"] + row["missing"] + row["not_yet_due"]
    assert sum(r["missing"] for r in body["summary"]) > 0  # the demo has gaps


def _csv_is_the_matrix(manager, cells):  # type: ignore[no-untyped-def]
    """The CSV holds every cell of every patient, as the JSON pages do."""
    response = manager.get("/api/v1/reports/completeness?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = _csv(response)
    assert len(lines) == sum(len(c) for c in cells.values())
    for line in lines:
        cell = cells[line["study_id"]][(line["timepoint"], line["material"])]
        assert (line["state"], int(line["samples"])) == (cell["state"], cell["samples"])


def _filters_by_site_risk_group_and_material(demo, manager):  # noqa: F811
    """A site, a risk group and a material narrow the matrix to their patients and cells."""
    nl = demo.scalar(select(Site.id).where(Site.code == "NL-PMC"))
    hr_nl = demo.scalar(
        select(func.count())
        .select_from(Patient)
        .where(Patient.site_id == nl, Patient.risk_group == "HR")
    )
    body = manager.get(
        "/api/v1/reports/completeness?site=NL-PMC&risk_group=HR&material=BM&per_page=500"
    ).json
    assert body["patients"] == hr_nl
    assert {r["site"] for r in body["rows"]} <= {"NL-PMC"}
    assert {c["material"] for r in body["rows"] for c in r["cells"]} <= {"BM"}
    country = manager.get("/api/v1/reports/completeness?country=nl").json
    assert country["patients"] == demo.scalar(
        select(func.count()).select_from(Patient).join(Site).where(Site.country == "NL")
    )


def _a_site_scoped_user_sees_only_their_sites(demo, as_role):  # noqa: F811
    """A user limited to AU-SCH: only its patients, none of the NL freezers; another site
    named is a 404."""
    au = as_role("technician", sites=["AU-SCH"])
    body = au.get("/api/v1/reports/completeness?per_page=500").json
    assert (
        body["patients"]
        == demo.scalar(
            select(func.count()).select_from(Patient).join(Site).where(Site.code == "AU-SCH")
        )
        > 0
    )
    assert {r["site"] for r in body["rows"]} == {"AU-SCH"}
    assert au.get("/api/v1/reports/completeness?site=NL-PMC").status_code == 404
    assert au.get("/api/v1/reports/capacity?site=NL-PMC").status_code == 404
    assert au.get("/api/v1/reports/capacity").json["summary"] == []


def test_capacity_counts_the_boxes_and_the_tubes_in_them(demo, manager):  # noqa: F811
    """Positions are the boxes' grids; used positions are the tubes stored that have not
    left; empty positions listed one by one add up to the free ones; proposed merges fit."""
    body = manager.get("/api/v1/reports/capacity").json
    stored = demo.scalar(
        select(func.count())
        .select_from(Position)
        .join(Aliquot, Aliquot.id == Position.aliquot_id)
        .where(Aliquot.status.not_in(DEPARTED))
    )
    grids = demo.scalar(
        select(func.sum(BoxType.rows * BoxType.columns)).join(
            Container, Container.box_type_id == BoxType.id
        )
    )
    assert sum(r["occupied"] + r["loose"] for r in body["summary"]) == stored > 0
    assert sum(r["positions"] for r in body["summary"]) == grids
    free = sum(r["free"] for r in body["summary"])
    assert free == grids - stored
    empty = _csv(manager.get("/api/v1/reports/capacity?view=empty&format=csv"))
    assert len(empty) == free
    assert len({(e["box"], e["position"]) for e in empty}) == free
    _defragmentation_merges_fit(demo, manager)


def _defragmentation_merges_fit(demo, manager):  # type: ignore[no-untyped-def]  # noqa: F811
    """Each proposed merge moves a box's tubes into a box of the same type and freezer that
    has room for them, and no box is both emptied and filled."""
    merges = manager.get("/api/v1/reports/capacity?view=defrag").json["defrag"]
    assert merges
    sources = {m["box"] for m in merges}
    room: Counter[str] = Counter()
    for m in merges:
        assert m["merge_into"] not in sources
        room[m["merge_into"]] += m["occupied"]
        assert room[m["merge_into"]] <= m["free_there"]
        kinds = set(
            demo.scalars(
                select(BoxType.code)
                .join(Container, Container.box_type_id == BoxType.id)
                .where(Container.barcode.in_([m["box"], m["merge_into"]]))
            )
        )
        assert kinds == {m["box_type"]}


def test_requests_report_counts_the_requests_and_tubes(demo, manager, as_role):  # noqa: F811
    """Requests per state and tubes shipped are the rows' own counts; a researcher sees only
    their sub-study's."""
    body = manager.get("/api/v1/reports/requests").json
    states = dict(
        demo.execute(select(SampleRequest.state, func.count()).group_by(SampleRequest.state)).all()
    )
    assert {r["state"]: r["requests"] for r in body["by_state"] if r["requests"]} == states
    for row in body["by_state"]:
        assert row["requests"] == (
            row["under_7_days"] + row["7_to_30_days"] + row["30_to_90_days"] + row["over_90_days"]
        )
    left = demo.scalar(
        select(func.count())
        .select_from(RequestAliquot)
        .join(Shipment, Shipment.request_id == RequestAliquot.request_id)
        .where(
            RequestAliquot.state.in_(("shipped", "received", "consumed", "returned", "destroyed"))
        )
    )
    assert sum(r["tubes"] for r in body["shipped"]) == left > 0
    assert sum(r["shipments"] for r in body["turnaround"]) == demo.scalar(
        select(func.count()).select_from(Shipment)
    )
    _researchers_see_only_their_sub_studys_requests(as_role)


def _researchers_see_only_their_sub_studys_requests(as_role):  # type: ignore[no-untyped-def]
    """A researcher of another sub-study sees no request; the other reports are not theirs."""
    own = as_role("researcher", substudies=["DEMO"])
    other = as_role("researcher", substudies=["NOPE"])
    assert sum(r["requests"] for r in own.get("/api/v1/reports/requests").json["by_state"]) > 0
    body = other.get("/api/v1/reports/requests").json
    assert sum(r["requests"] for r in body["by_state"]) == 0 and body["shipped"] == []
    assert other.get("/api/v1/reports/completeness").status_code == 403


def test_bad_input_is_refused_with_the_field_named(manager):
    """Unknown report 404, unknown format or material 422, reversed or future ranges 422."""
    assert manager.get("/api/v1/reports/everything").status_code == 404
    for url, field in (
        ("completeness?format=pdf", "format"),
        ("completeness?material=XX", "material"),
        ("requests?from=2026-03-01&to=2026-02-01", "to"),
        ("requests?to=2999-01-01", "to"),
        ("requests?from=2000-01-01", "from"),
        ("capacity?view=defrag&format=svg", "format"),
    ):
        response = manager.get(f"/api/v1/reports/{url}")
        assert response.status_code == 422, url
        assert field in response.json["errors"]["query"], url


def test_every_picture_has_its_text_alternative_and_scopes_hold(  # noqa: F811
    demo, manager, as_role
):
    """Each report's SVG is well-formed, role=img, labelled by its <title> and <desc>, and the
    desc says its numbers; a site-scoped user sees only their sites."""
    for name in ("completeness", "capacity", "requests"):
        response = manager.get(f"/api/v1/reports/{name}?format=svg")
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        root = ET.fromstring(response.get_data())
        assert root.get("role") == "img"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert title is not None and title.text and desc is not None and desc.text
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        assert any(ch.isdigit() for ch in desc.text)
    _a_site_scoped_user_sees_only_their_sites(demo, as_role)
