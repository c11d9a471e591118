"""The OpenAPI document is valid, and what the API answers is what it says.

Checked with independent validators (openapi-spec-validator for the document,
openapi-schema-validator for the answers), on the demo data of both databases.
"""

from __future__ import annotations

import pytest
from openapi_helpers import check_response, operation, schema_errors
from openapi_spec_validator import validate

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def spec(client):  # type: ignore[no-untyped-def]
    """The document as served."""
    return client.get("/api/openapi.json").json


@pytest.fixture
def demo(runner, session, as_role):  # type: ignore[no-untyped-def]
    """The demo data, and a client per demo user (their printed tokens)."""
    api_client = type(as_role("admin"))
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    tokens = {
        line.split()[0]: line.split()[-1]
        for line in result.output.splitlines()
        if line.startswith("demo-")
    }
    client = runner.app.test_client()
    return {
        name.removeprefix("demo-"): api_client(client, token, name)
        for name, token in tokens.items()
    }


def test_the_document_is_valid_openapi_3(spec):
    """openapi-spec-validator accepts the document (decimal limits were strings before)."""
    validate(spec)


def test_decimal_limits_are_numbers(spec):
    """minimum / maximum are JSON numbers everywhere in the document."""

    def walk(node):  # type: ignore[no-untyped-def]
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("minimum", "maximum"):
                    assert isinstance(value, int | float), (key, value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(spec)


def test_every_operation_declares_its_errors_in_the_error_shape(spec):
    """401, 403 and 422 everywhere, 404 with a path parameter, 413 with a body; no catch-all."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            responses = item[method]["responses"]
            assert "default" not in responses, (method, path)
            expected = {"401", "403", "422"}
            if "{" in path:
                expected.add("404")
            if "requestBody" in item[method]:
                expected |= {"400", "413"}
            assert expected <= set(responses), (method, path, sorted(responses))
            error = spec["components"]["schemas"]["Error"]
            assert {"code", "status"} <= set(error["required"])


def test_the_pagination_header_is_documented_as_sent(spec, admin_client):
    """X-Pagination is a JSON text in a header: documented so, and what is sent conforms."""
    header = spec["components"]["headers"]["PAGINATION"]
    assert "schema" not in header or header["schema"].get("type") == "string"
    response = admin_client.get("/api/v1/box-types/")  # not paginated: a 404 is fine here
    assert response.status_code in (404, 308, 200)
    listing = admin_client.get("/api/v1/patients?page=1&page_size=2")
    assert listing.status_code == 200
    check_response(spec, "get", "/api/v1/patients", listing)


@pytest.fixture
def admin_client(as_role):  # type: ignore[no-untyped-def]
    """An administrator."""
    return as_role("admin")


LISTS = [
    "/api/v1/patients",
    "/api/v1/samples",
    "/api/v1/aliquots",
    "/api/v1/box-types",
    "/api/v1/freezers",
    "/api/v1/boxes",
    "/api/v1/consent/forms",
    "/api/v1/consent/withdrawals",
    "/api/v1/consent/destruction-tasks?pending=false",
    "/api/v1/consent/recalls",
    "/api/v1/requests",
    "/api/v1/substudies",
    "/api/v1/consent/components",
    "/api/v1/printers",
    "/api/v1/label-templates",
    "/api/v1/storage/capacity",
    "/api/v1/sites",
    "/api/v1/materials",
    "/api/v1/aliquot-types",
    "/api/v1/timepoints",
    "/api/v1/majority-ages",
    "/api/v1/consent/reconsent-due?months=240",
    "/api/v1/me",
]


def test_every_list_answers_as_documented_on_the_demo_data(spec, demo):
    """Each list, then each item it names, conforms to the document (patterns included:
    the demo's form code IF21-BB-2.0-EN broke FormOut.code's own pattern)."""
    admin = demo["admin"]
    for url in LISTS:
        response = admin.get(url)
        assert response.status_code == 200, (url, response.json)
        check_response(spec, "get", url, response)
    for patient in admin.get("/api/v1/patients?page_size=5").json:
        for suffix in ("", "/timeline", "/consent", "/consent/withdrawals"):
            url = f"/api/v1/patients/{patient['study_id']}{suffix}"
            check_response(spec, "get", url, admin.get(url))
    for tube in admin.get("/api/v1/aliquots?page_size=20").json:
        for suffix in ("", "/location", "/events", "/events/verify"):
            url = f"/api/v1/aliquots/{tube['barcode']}{suffix}"
            check_response(spec, "get", url, admin.get(url))
    for sample in admin.get("/api/v1/samples?page_size=5").json:
        url = f"/api/v1/samples/{sample['barcode']}"
        check_response(spec, "get", url, admin.get(url))
    for number in [r["number"] for r in admin.get("/api/v1/requests").json]:
        for suffix in ("", "/pick-list"):
            url = f"/api/v1/requests/{number}{suffix}"
            response = admin.get(url)
            if response.status_code == 200 or suffix == "":
                check_response(spec, "get", url, response)
    for box in admin.get("/api/v1/boxes?page_size=5").json:
        for suffix in ("", "/map"):
            url = f"/api/v1/boxes/{box['barcode']}{suffix}"
            check_response(spec, "get", url, admin.get(url))


def test_volumes_percentages_and_counts_are_json_numbers(demo):
    """volume_ml, precentrifugation_delay_hours, wbc_at_diagnosis, value_percent: numbers."""
    admin = demo["admin"]
    tubes = admin.get("/api/v1/aliquots?page_size=50").json
    assert any(isinstance(t["volume_ml"], float | int) for t in tubes)
    assert all(t["volume_ml"] is None or isinstance(t["volume_ml"], float | int) for t in tubes)
    samples = admin.get("/api/v1/samples?page_size=50").json
    assert any(isinstance(s["precentrifugation_delay_hours"], float | int) for s in samples)
    assert all(isinstance(s["volume_ml"], float | int) for s in samples)
    patients = admin.get("/api/v1/patients?page_size=50").json
    assert any(isinstance(p["wbc_at_diagnosis"], float | int) for p in patients)
    results = [
        r
        for p in patients
        for r in admin.get(f"/api/v1/patients/{p['study_id']}").json["mrd_results"]
    ]
    assert results and all(isinstance(r["value_percent"], float | int) for r in results)
    scan = admin.get(f"/api/v1/scan/{tubes[0]['barcode']}").json
    assert scan["volume_ml"] is None or isinstance(scan["volume_ml"], float | int)


def test_consent_can_be_recorded_against_the_demo_forms(spec, demo, make_patient):
    """form_version IF21-BB-2.0-EN (with '.') is accepted: the demo's own forms are usable."""
    patient = make_patient(study_id="IF21-DOC-001")
    url = f"/api/v1/patients/{patient.study_id}/consent"
    response = demo["consent-officer"].post(
        url,
        json={
            "component": "storage",
            "decision": "given",
            "signed_on": "2026-01-05",
            "form_version": "IF21-BB-2.0-EN",
            "signed_by": "mother",
        },
    )
    assert response.status_code == 201, response.json
    check_response(spec, "post", url, response)


def test_the_withdrawal_dry_run_is_declared(spec, demo, make_patient):
    """?dry_run=true answers 200, documented, with the fields the document lists."""
    patient = make_patient(study_id="IF21-DOC-002")
    given = demo["consent-officer"].post(
        f"/api/v1/patients/{patient.study_id}/consent",
        json={
            "component": "storage",
            "decision": "given",
            "signed_on": "2026-01-05",
            "form_version": "IF21-BB-2.0-EN",
            "signed_by": "mother",
        },
    )
    assert given.status_code == 201, given.json
    url = f"/api/v1/patients/{patient.study_id}/consent/withdrawals?dry_run=true"
    response = demo["consent-officer"].post(
        url, json={"scope": "storage", "date": "2026-02-01", "requested_by": "mother"}
    )
    assert response.status_code == 200, response.json
    assert (
        "200"
        in operation(spec, "/api/v1/patients/{study_id}/consent/withdrawals", "post")["responses"]
    )
    check_response(spec, "post", url, response)


def test_an_error_answer_conforms_to_the_error_schema(spec, admin_client):
    """A 404, a 405 and a 422 each validate against the documented Error schema."""
    error = {"$ref": "#/components/schemas/Error"}
    for response in (
        admin_client.get("/api/v1/patients/NOPE"),
        admin_client.delete("/api/v1/box-types"),
        admin_client.get("/api/v1/aliquots?status=nope"),
    ):
        assert not schema_errors(spec, error, response.json), response.json
