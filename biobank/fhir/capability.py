"""GET /fhir/metadata: the CapabilityStatement, listing exactly what this server answers.

It is the FHIR API's contract (as the OpenAPI document is the JSON API's): built from the
same tables the views check, so it cannot promise a parameter they refuse.
"""

from __future__ import annotations

from typing import Any

from biobank.fhir import terminology as tx

SEARCH_PARAMS: dict[str, list[tuple[str, str, str]]] = {
    "Specimen": [
        ("subject", "reference", "the patient (Patient/id); patient is the same"),
        ("patient", "reference", "the patient (Patient/id)"),
        ("type", "token", "SNOMED CT, SPREC or MIABIS code, or system|code"),
        ("status", "token", "available | unavailable"),
        ("parent", "reference", "the specimen split into this one (Specimen/id)"),
        ("_lastUpdated", "date", "the last custody event; prefixes eq, gt, lt, ge, le"),
        ("_count", "number", "page size, 1 to the maximum page size"),
    ],
    "Consent": [
        ("patient", "reference", "the patient (Patient/id)"),
        ("subject", "reference", "the patient (Patient/id); patient is the same"),
        ("_count", "number", "page size"),
    ],
    "Patient": [("_count", "number", "page size")],
}
SUPPORTED_PROFILES = {
    "Specimen": [tx.PROFILE_SAMPLE],
    "Patient": [tx.PROFILE_DONOR],
    "Group": [tx.PROFILE_COLLECTION],
    "Organization": [tx.PROFILE_BIOBANK, tx.PROFILE_COLLECTION_ORG],
}


def _resource(
    kind: str, searchable: bool, operations: tuple[tuple[str, str], ...] = ()
) -> dict[str, Any]:
    found: dict[str, Any] = {"type": kind}
    if kind in SUPPORTED_PROFILES:
        found["supportedProfile"] = SUPPORTED_PROFILES[kind]
    found["interaction"] = [{"code": "read"}] + ([{"code": "search-type"}] if searchable else [])
    found["versioning"] = "no-version"
    found["readHistory"] = False
    found["updateCreate"] = False
    if searchable:
        found["searchParam"] = [
            {"name": name, "type": kind_, "documentation": text}
            for name, kind_, text in SEARCH_PARAMS[kind]
        ]
    if operations:
        found["operation"] = [
            {"name": name, "definition": definition} for name, definition in operations
        ]
    return found


def capability_statement(base_url: str, software_version: str, date: str) -> dict[str, Any]:
    """What /fhir answers: read-only, JSON, bearer tokens."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Interfant-21 biobank",
        "kind": "instance",
        "software": {"name": "Interfant-21 biobank", "version": software_version},
        "implementation": {"description": "read-only FHIR R4 API of the biobank", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only. Every call but this one needs a bearer token "
                "(Authorization: Bearer bbk_...); what each role sees follows "
                "the biobank's permission matrix, site scopes and sub-studies.",
                "security": {
                    "cors": False,
                    "service": [{"text": "Bearer token"}],
                    "description": "Bearer tokens issued by `flask --app wsgi users create`.",
                },
                "resource": [
                    _resource("Specimen", True),
                    _resource(
                        "Patient",
                        True,
                        (
                            (
                                "everything",
                                "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                            ),
                        ),
                    ),
                    _resource("Consent", True),
                    _resource("Organization", False),
                    _resource("Group", False),
                    _resource(
                        "Measure",
                        False,
                        (
                            (
                                "evaluate-measure",
                                "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
                            ),
                        ),
                    ),
                ],
            }
        ],
    }
