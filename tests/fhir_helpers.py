"""Checks of every FHIR resource the tests produce, by tools and tables this project did not
write: the ``fhir.resources`` models (R4B, whose Specimen, Consent, Patient, Bundle,
OperationOutcome, CapabilityStatement, Organization and Group have the elements of R4
4.0.1), the FHIR R4 required value sets, and the required elements of the BBMRI-ERIC MIABIS
on FHIR profiles (github.com/BBMRI-cz/miabis-on-fhir, input/fsh/profiles), copied here as
data from the published specifications, not imported from biobank.fhir.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

# Counted over the run; the terminal summary prints them (tests/conftest.py).
COUNTS = {"validated": 0, "failures": 0}

# FHIR R4 required bindings (hl7.org/fhir/R4/valueset-*.html).
REQUIRED = {
    ("Specimen", "status"): {"available", "unavailable", "unsatisfactory", "entered-in-error"},
    ("Consent", "status"): {
        "draft",
        "proposed",
        "active",
        "rejected",
        "inactive",
        "entered-in-error",
    },
    ("Patient", "gender"): {"male", "female", "other", "unknown"},
    ("Bundle", "type"): {
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    },
    ("Group", "type"): {"person", "animal", "practitioner", "device", "medication", "substance"},
    ("MeasureReport", "status"): {"complete", "pending", "error"},
    ("MeasureReport", "type"): {"individual", "subject-list", "summary", "data-collection"},
    ("Measure", "status"): {"draft", "active", "retired", "unknown"},
    ("CapabilityStatement", "status"): {"draft", "active", "retired", "unknown"},
    ("CapabilityStatement", "kind"): {"instance", "capability", "requirements"},
}
ISSUE_SEVERITY = {"fatal", "error", "warning", "information"}
ISSUE_TYPES = {
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
}
PROVISION_TYPES = {"deny", "permit"}

MIABIS = "https://fhir.bbmri-eric.eu"
# MIABIS code systems (input/fsh/codeSystems).
DETAILED_SAMPLE_TYPES = {
    "AmnioticFluid",
    "AscitesFluid",
    "Bile",
    "BodyCavityFluid",
    "Bone",
    "BoneMarrowAspirate",
    "BoneMarrowPlasma",
    "BoneMarrowWhole",
    "BreastMilk",
    "BronchLavage",
    "BuffyCoat",
    "CancerCellLine",
    "CerebrospinalFluid",
    "CordBlood",
    "DentalPulp",
    "DNA",
    "Embryo",
    "EntireOrgan",
    "Faeces",
    "FetalTissue",
    "Fibroblast",
    "FoodSpecimen",
    "Gas",
    "GastricFluid",
    "Hair",
    "ImmortalizedCellLine",
    "IsolatedMicrobe",
    "IsolatedExosome",
    "IsolatedTumorCell",
    "LiquidBiopsy",
    "MenstrualBlood",
    "Nail",
    "NasalWashing",
    "Organoid",
    "Other",
    "PericardialFluid",
    "PBMC",
    "Placenta",
    "Plasma",
    "PleuralFluid",
    "PostMortemTissue",
    "PrimaryCells",
    "Protein",
    "RedBloodCells",
    "RNA",
    "Saliva",
    "Semen",
    "Serum",
    "SpecimenEnvironment",
    "Sputum",
    "StemCells",
    "Swab",
    "Sweat",
    "SynovialFluid",
    "Tears",
    "Teeth",
    "TissueFixed",
    "TissueFreshFrozen",
    "UmbilicalCord",
    "Urine",
    "UrineSediment",
    "VitreousFluid",
    "WholeBlood",
    "WholeBloodDried",
}
COLLECTION_SAMPLE_TYPES = {
    "Blood",
    "BuffyCoat",
    "CancerCellLine",
    "DNA",
    "EntireOrgan",
    "Faeces",
    "EmbryoFetal",
    "ImmortalizedCellLine",
    "IsolatedMicrobe",
    "OtherBodyFluid",
    "Plasma",
    "PrimaryCells",
    "PostMortemTissue",
    "RNA",
    "Saliva",
    "Serum",
    "SpecimenEnvironment",
    "Swab",
    "TissueFrozen",
    "TissueFFPE",
    "Urine",
    "Other",
}
STORAGE_TEMPERATURES = {"RT", "2to10", "-18to-35", "-60to-85", "LN", "Other"}
CHARACTERISTICS = {"Age", "Sex", "StorageTemperature", "MaterialType", "Diagnosis"}
DATASET_TYPES = {
    "Lifestyle",
    "BiologicalSamples",
    "SurveyData",
    "ImagingData",
    "MedicalRecords",
    "NationalRegistries",
    "GenealogicalRecords",
    "PhysioBiochemicalData",
    "Other",
}


def _profile(resource: dict[str, Any], name: str) -> bool:
    return f"{MIABIS}/StructureDefinition/{name}" in resource.get("meta", {}).get("profile", [])


def _codes(concept: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in concept.get("coding", []) if c.get("system") == system]


def _extensions(element: dict[str, Any], name: str) -> list[dict[str, Any]]:
    url = f"{MIABIS}/StructureDefinition/{name}"
    return [e for e in element.get("extension", []) if e["url"] == url]


def _miabis_sample(r: dict[str, Any]) -> None:
    assert len(r.get("identifier", [])) == 1, "miabis-sample: identifier 1..1"
    detailed = _codes(r["type"], f"{MIABIS}/CodeSystem/miabis-detailed-samply-type-cs")
    assert detailed and set(detailed) <= DETAILED_SAMPLE_TYPES, "type from DetailedSampleTypeVS"
    assert r["subject"]["reference"].startswith("Patient/"), "subject 1..1 Reference(Donor)"
    site = r.get("collection", {}).get("bodySite")
    if site:
        assert len(site.get("coding", [])) <= 1, "bodySite.coding 0..1"
        assert all(c.get("system") and c.get("version") for c in site["coding"]), (
            "SpecimenOntologyInvariant: system and version"
        )
    assert all(n.get("text") for n in r.get("note", [])), "note.text 1..1"
    for step in r.get("processing", []):
        for ext in _extensions(step, "miabis-sample-storage-temperature-extension"):
            codes = _codes(
                ext["valueCodeableConcept"], f"{MIABIS}/CodeSystem/miabis-storage-temperature-cs"
            )
            assert codes and set(codes) <= STORAGE_TEMPERATURES
    for ext in _extensions(r, "miabis-sample-collection-extension"):
        assert ext["valueIdentifier"]["value"], "sampleCollection: valueIdentifier 1..1"


def _miabis_donor(r: dict[str, Any]) -> None:
    assert len(r.get("identifier", [])) == 1, "miabis-sample-donor: identifier 1..1"
    assert r.get("gender"), "gender 1..1"
    for ext in _extensions(r, "miabis-dataset-type-extension"):
        assert ext["valueCode"] in DATASET_TYPES


def _miabis_collection(r: dict[str, Any]) -> None:
    assert len(r.get("identifier", [])) == 1 and r.get("name"), "identifier, name 1..1"
    assert r["type"] == "person"
    assert r["managingEntity"]["reference"].startswith("Organization/")
    found: dict[str, list[dict[str, Any]]] = {}
    for item in r.get("characteristic", []):
        [code] = _codes(item["code"], f"{MIABIS}/CodeSystem/miabis-characteristicCS")
        assert code in CHARACTERISTICS
        found.setdefault(code, []).append(item)
    assert found.get("Sex") and found.get("MaterialType"), "sex 1..*, materialType 1..*"
    assert len(found.get("Age", [])) <= 1, "ageRange 0..1"
    for item in found["Sex"]:
        assert (
            set(_codes(item["valueCodeableConcept"], "http://hl7.org/fhir/administrative-gender"))
            <= REQUIRED[("Patient", "gender")]
        )
    for item in found["MaterialType"]:
        codes = _codes(
            item["valueCodeableConcept"], f"{MIABIS}/CodeSystem/miabis-collection-sample-type-cs"
        )
        assert codes and set(codes) <= COLLECTION_SAMPLE_TYPES
    for item in found.get("StorageTemperature", []):
        codes = _codes(
            item["valueCodeableConcept"], f"{MIABIS}/CodeSystem/miabis-storage-temperature-cs"
        )
        assert codes and set(codes) <= STORAGE_TEMPERATURES
    for item in found.get("Age", []):
        assert "valueRange" in item


def _miabis_organization(r: dict[str, Any], collection: bool) -> None:
    assert len(r.get("identifier", [])) == 1 and r.get("name"), "identifier, name 1..1"
    assert len(r.get("address", [])) == 1 and r["address"][0].get("country"), "address.country"
    assert r.get("partOf", {}).get("reference"), "partOf 1..1"
    for contact in r.get("contact", []):
        assert contact["name"]["family"] and contact["name"]["given"] and contact["telecom"]
    if collection:
        assert len(_extensions(r, "miabis-organization-description-extension")) == 1


def _value_sets(r: dict[str, Any]) -> None:
    kind = r["resourceType"]
    for (resource_type, element), allowed in REQUIRED.items():
        if resource_type == kind and element in r:
            assert r[element] in allowed, f"{kind}.{element} {r[element]!r} not in its value set"
    if kind == "OperationOutcome":
        for issue in r["issue"]:
            assert issue["severity"] in ISSUE_SEVERITY and issue["code"] in ISSUE_TYPES
    if kind == "Consent":
        assert r.get("policy") or r.get("policyRule"), "ppc-1: policy or policyRule"
        assert r.get("patient"), "ppc-3: a research consent names its patient"
        stack = [r.get("provision", {})]
        while stack:
            provision = stack.pop()
            if "type" in provision:
                assert provision["type"] in PROVISION_TYPES
            stack += provision.get("provision", [])


def _profiles(r: dict[str, Any]) -> None:
    if _profile(r, "miabis-sample"):
        _miabis_sample(r)
    if _profile(r, "miabis-sample-donor"):
        _miabis_donor(r)
    if _profile(r, "miabis-collection"):
        _miabis_collection(r)
    if _profile(r, "miabis-biobank"):
        _miabis_organization(r, collection=False)
    if _profile(r, "miabis-collection-organization"):
        _miabis_organization(r, collection=True)


def validate(resource: dict[str, Any]) -> dict[str, Any]:
    """Check one resource (and a Bundle's entries); counts each; returns it."""
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        _value_sets(resource)
        _profiles(resource)
    except Exception:
        COUNTS["failures"] += 1
        raise
    COUNTS["validated"] += 1
    for entry in resource.get("entry", []) if resource["resourceType"] == "Bundle" else []:
        validate(entry["resource"])
    return resource


def references(value: Any) -> Iterator[str]:
    """Every Reference.reference in a resource, however deep."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value["reference"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def assert_resolvable(client: Any, resource: dict[str, Any]) -> int:
    """Every reference in the resource answers 200 at its URL with the resource it names."""
    checked = 0
    for reference in set(references(resource)):
        kind, _, key = reference.partition("/")
        response = client.get(f"/fhir/{reference}")
        assert response.status_code == 200, f"{reference} does not resolve: {response.json}"
        body = validate(response.json)
        assert (body["resourceType"], body["id"]) == (kind, key)
        checked += 1
    return checked
