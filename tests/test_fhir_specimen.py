"""The FHIR Specimen: what a sample and a tube look like, and how they are searched."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fhir_helpers import assert_resolvable, validate
from fhir_scenario import biobank, freezer, give, studies  # noqa: F401

SNOMED = "http://snomed.info/sct"
SPREC_TYPE = "http://www.isber.org/sprec/type-of-sample"
BASE = "https://biobank.interfant21.example.org/fhir"


def _codes(concept: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in concept.get("coding", []) if c["system"] == system]


def _get(client: Any, url: str, status: int = 200) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == status, response.json
    assert response.mimetype == "application/fhir+json"
    return validate(response.json)


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle["entry"]]


def test_tube_as_specimen(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """A stored plasma tube: barcode under the configured system, SNOMED and SPREC types,
    subject, parent sample, collection by marrow aspiration, processing, place, condition."""
    tube = biobank.plasma[0]
    body = _get(manager, f"/fhir/Specimen/aliquot-{tube.id}")
    assert body["identifier"] == [{"system": f"{BASE}/sid/barcode", "value": tube.barcode}]
    assert body["accessionIdentifier"]["value"] == "ACC-1"
    assert body["status"] == "available"
    assert _codes(body["type"], SNOMED) == ["119361006"]
    assert _codes(body["type"], SPREC_TYPE) == ["PL1"]
    assert body["subject"] == {"reference": f"Patient/{biobank.a.study_id}"}
    assert body["parent"] == [{"reference": f"Specimen/sample-{biobank.bm.id}"}]
    assert body["receivedTime"].endswith("Z")
    collection = body["collection"]
    assert _codes(collection["method"], SNOMED) == ["129316008"]
    assert _codes(collection["bodySite"], SNOMED) == ["14016003"]
    assert collection["quantity"] == {
        "value": 0.5,
        "unit": "mL",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    procedures = [_codes(p["procedure"], SNOMED)[0] for p in body["processing"]]
    assert procedures == ["73373003", "9265001", "1186936003"]  # spun, aliquoted, stored
    storage = body["processing"][-1]
    assert _codes(storage["procedure"], "http://www.isber.org/sprec/long-term-storage") == ["D"]
    [temperature] = storage["extension"]
    assert temperature["valueCodeableConcept"]["coding"][0]["code"] == "-60to-85"
    [container] = body["container"]
    assert container["extension"][0]["valueString"].startswith("NL-PMC / F-80-01 / Rack 2")
    assert _codes(body["condition"][0], "http://terminology.hl7.org/CodeSystem/v2-0493") == ["FROZ"]
    assert body["note"] == [{"text": "freeze-thaw cycles: 0"}]
    assert assert_resolvable(manager, body) == 2  # the patient, the parent sample


def test_primary_samples_by_material(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """Marrow, blood and CSF each have their collection method and body site, container and
    additive (EDTA for the blood tube)."""
    expected = {
        biobank.bm.id: ("396997002", "129316008", "14016003"),
        biobank.pb.id: ("258580003", "22778000", "29092000"),
        biobank.csf.id: ("258450006", "277762005", "61853006"),
    }
    for sample_id, (kind, method, site) in expected.items():
        body = _get(manager, f"/fhir/Specimen/sample-{sample_id}")
        assert _codes(body["type"], SNOMED) == [kind]
        assert _codes(body["collection"]["method"], SNOMED) == [method]
        assert _codes(body["collection"]["bodySite"], SNOMED) == [site]
        assert "parent" not in body
    blood = _get(manager, f"/fhir/Specimen/sample-{biobank.pb.id}")
    assert _codes(blood["container"][0]["additiveCodeableConcept"], SNOMED) == ["69519002"]
    assert blood["note"] == [{"text": "residual after diagnostics"}]


def test_derivative_and_status(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """DNA made from a pellet names the pellet as parent; the consumed pellet is unavailable,
    its exact state kept in an extension."""
    dna = _get(manager, f"/fhir/Specimen/aliquot-{biobank.dna.id}")
    assert _codes(dna["type"], SNOMED) == ["258566005"]
    assert dna["parent"] == [{"reference": f"Specimen/aliquot-{biobank.pellet.id}"}]
    pellet = _get(manager, f"/fhir/Specimen/aliquot-{biobank.pellet.id}")
    assert pellet["status"] == "unavailable"
    assert {"url": f"{BASE}/StructureDefinition/tube-status", "valueCode": "consumed"} in pellet[
        "extension"
    ]
    assert pellet["container"][0]["specimenQuantity"]["code"] == "{cells}"
    assert_resolvable(manager, dna)


def test_search_by_subject_type_status_parent(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """subject, type (code or system|code), status and parent narrow the search."""
    b = biobank.b.study_id
    found = _get(manager, f"/fhir/Specimen?subject=Patient/{b}")
    assert _ids(found) == [f"sample-{biobank.b_pb.id}"] + [
        f"aliquot-{t.id}" for t in biobank.b_plasma
    ]
    plasma = _get(manager, f"/fhir/Specimen?type={SNOMED}|119361006&patient={biobank.a.study_id}")
    assert _ids(plasma) == [f"aliquot-{t.id}" for t in biobank.plasma + [biobank.double]]
    assert _ids(_get(manager, "/fhir/Specimen?type=PL2")) == [f"aliquot-{biobank.double.id}"]
    assert _ids(_get(manager, f"/fhir/Specimen?type={SPREC_TYPE}|CSF")) == [
        f"sample-{biobank.csf.id}",
        f"aliquot-{biobank.csf_sup.id}",
    ]
    gone = _get(manager, "/fhir/Specimen?status=unavailable")
    assert f"aliquot-{biobank.pellet.id}" in _ids(gone)
    assert all(e["resource"]["status"] == "unavailable" for e in gone["entry"])
    children = _get(manager, f"/fhir/Specimen?parent=Specimen/sample-{biobank.bm.id}")
    assert _ids(children) == [
        f"aliquot-{t.id}" for t in biobank.plasma + [biobank.double, biobank.pellet]
    ]
    assert _ids(_get(manager, f"/fhir/Specimen?parent=aliquot-{biobank.pellet.id}")) == [
        f"aliquot-{biobank.dna.id}"
    ]


def test_last_updated(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """_lastUpdated compares the last custody event with a date or an instant."""
    every = _get(manager, "/fhir/Specimen?_count=500")
    assert len(every["entry"]) == 15
    assert _ids(_get(manager, "/fhir/Specimen?_lastUpdated=ge2000-01-01&_count=500")) == _ids(every)
    assert _get(manager, "/fhir/Specimen?_lastUpdated=lt2000-01-01T00:00:00Z")["entry"] == []
    newest = max(e["resource"]["meta"]["lastUpdated"] for e in every["entry"])
    assert _get(manager, f"/fhir/Specimen?_lastUpdated=gt{newest}")["entry"] == []
    assert _ids(_get(manager, f"/fhir/Specimen?_lastUpdated=le{newest}&_count=500")) == _ids(every)
    both = _get(
        manager, f"/fhir/Specimen?_lastUpdated=ge2000-01&_lastUpdated=le{newest}&_count=500"
    )
    assert _ids(both) == _ids(every)


def test_paging_through_next_links(manager: Any, biobank: SimpleNamespace) -> None:  # noqa: F811
    """_count pages; following next links visits every Specimen once, in order."""
    every = _ids(_get(manager, "/fhir/Specimen?_count=500"))
    seen, url = [], "/fhir/Specimen?_count=3"
    while url:
        page = _get(manager, url)
        assert len(page["entry"]) <= 3
        seen += _ids(page)
        url = next(
            (
                link["url"].removeprefix("http://localhost")
                for link in page["link"]
                if link["relation"] == "next"
            ),
            None,
        )
    assert seen == every


def test_page_query_count_does_not_grow(
    manager: Any,
    biobank: SimpleNamespace,  # noqa: F811
    count_queries: Any,
) -> None:
    """A page costs the same statements for 2 tubes as for 11 (no query per tube)."""
    counts = []
    for size in (6, 15):  # 4 samples, then 2 or 11 tubes
        with count_queries() as counted:
            manager.get(f"/fhir/Specimen?_count={size}")
        counts.append(counted.count)
    assert counts[0] == counts[1]
