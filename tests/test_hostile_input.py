"""Hostile input is refused cleanly, the same on SQLite and PostgreSQL: never a 500.

Every example of issue 21 is here: NUL, lone surrogates and control characters in strings,
integers beyond what a column holds, Unicode digits in ids, deep JSON, unknown query
parameters, an empty PATCH, oversized bodies, a rack scan with a huge field.
"""

from __future__ import annotations

import io
import json

import pytest
from web_helpers import login  # noqa: F401

from biobank import inputs

NUL = "IF\u0000X"
SURROGATE = "IF\ud800X"
CONTROL = "IF\u001bX"

# (method, url, body, the field the 422 must name); a manager may do all of them.
NAMED = [
    (
        "post",
        "/api/v1/freezers",
        {"site": "NL-PMC", "name": "{bad}", "freezer_type": "mechanical-80"},
        ("name",),
    ),
    (
        "post",
        "/api/v1/consent/check",
        {"substudy": "DEMO", "barcodes": ["{bad}"]},
        ("barcodes", "0"),
    ),
    ("patch", "/api/v1/substudies/DEMO", {"title": "{bad}"}, ("title",)),
    (
        "post",
        "/api/v1/storage/moves",
        {"moves": [{"aliquot": "{bad}", "box": "BX1"}]},
        ("moves", "0", "aliquot"),
    ),
    ("post", "/api/v1/labels/render", {"barcodes": ["{bad}"]}, ("barcodes", "0")),
    ("post", "/api/v1/aliquots/IF00000001/found", {"reason": "{bad}"}, ("reason",)),
    ("patch", "/api/v1/materials/BM", {"name": "{bad}"}, ("name",)),
    ("post", "/api/v1/printers", {"name": "{bad}", "host": "127.0.0.1"}, ("name",)),
    (
        "post",
        "/api/v1/consent/forms",
        {"code": "F1", "title": "{bad}", "version": "1", "language": "en", "covers": ["storage"]},
        ("title",),
    ),
    ("post", "/api/v1/aliquot-types", {"code": "XX", "name": "{bad}"}, ("name",)),
    ("post", "/api/v1/aliquots/IF00000001/take-out", {"reason": "{bad}"}, ("reason",)),
    (
        "post",
        "/api/v1/requests",
        {"substudy": "DEMO", "title": "{bad}", "purpose": "p", "criteria": {"patients": 1}},
        ("title",),
    ),
]


def _fill(value, bad):  # type: ignore[no-untyped-def]
    if isinstance(value, str):
        return value.replace("{bad}", bad)
    if isinstance(value, dict):
        return {k: _fill(v, bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, bad) for v in value]
    return value


def _named(body, path):  # type: ignore[no-untyped-def]
    node = body["errors"]["json"]
    for part in path:
        node = node[part] if part in node else node[int(part)]
    return node


def assert_error_shape(response, status):  # type: ignore[no-untyped-def]
    """The one error shape: JSON {code, status, message?, errors?} with the HTTP status."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json
    assert response.json["code"] == status
    assert isinstance(response.json["status"], str)


@pytest.fixture
def admin(as_role):  # type: ignore[no-untyped-def]
    """An administrator (every action allowed)."""
    return as_role("admin")


@pytest.mark.parametrize("bad", [NUL, SURROGATE, CONTROL], ids=["nul", "surrogate", "control"])
@pytest.mark.parametrize(
    ("method", "url", "body", "field"), NAMED, ids=[f"{m} {u}" for m, u, _, _ in NAMED]
)
def test_a_bad_character_in_a_string_is_a_422_naming_the_field(
    admin, method, url, body, field, bad
):
    """NUL, a lone surrogate or a control character: 422 naming the field, on both databases."""
    response = getattr(admin, method)(url, json=_fill(body, bad))
    assert_error_shape(response, 422)
    assert _named(response.json, field)


def test_a_nul_in_a_name_is_stored_nowhere(admin, session):
    """The freezer with a NUL in its name is refused on SQLite as on PostgreSQL."""
    from sqlalchemy import func, select

    from biobank.storage.models import Container

    before = session.scalar(select(func.count()).select_from(Container))
    response = admin.post(
        "/api/v1/freezers",
        json={"site": "NL-PMC", "name": "F\u0000", "freezer_type": "mechanical-80"},
    )
    assert_error_shape(response, 422)
    assert session.scalar(select(func.count()).select_from(Container)) == before


def test_tab_and_newline_are_kept_in_multiline_text_only(admin):
    """A sub-study's description may span lines; its title may not."""
    created = admin.post(
        "/api/v1/substudies",
        json={
            "code": "LINES",
            "title": "Lines",
            "principal_investigator": "Dr. A",
            "description": "first line\n\tsecond line\r\nthird",
        },
    )
    assert created.status_code == 201, created.json
    refused = admin.patch("/api/v1/substudies/LINES", json={"title": "two\nlines"})
    assert_error_shape(refused, 422)
    assert "title" in refused.json["errors"]["json"]


def test_a_nul_in_a_query_string_is_a_422_naming_it(admin):
    """?patient=IF%00 is refused, not sent to the database."""
    response = admin.get("/api/v1/aliquots?patient=IF21%00-NL-001")
    assert_error_shape(response, 422)
    assert "patient" in response.json["errors"]["query"]


@pytest.mark.parametrize(
    "url",
    ["/api/v1/patients/IF21%00-NL-001", "/api/v1/aliquots/IF%ED%A0%80X", "/api/v1/samples/SM%1B1"],
)
def test_a_bad_character_in_a_path_parameter_is_a_422(admin, url):
    """GET /patients/IF21%00-NL-001 was a 500 on PostgreSQL: now a 422 naming the parameter."""
    response = admin.get(url)
    assert response.status_code in (404, 422), response.json
    assert_error_shape(response, response.status_code)
    if url.startswith("/api/v1/patients"):
        assert_error_shape(response, 422)
        assert "study_id" in response.json["errors"]["path"]


@pytest.mark.parametrize(
    "url", ["/fhir/Patient/IF21%00-NL-001", "/fhir/Specimen/IF%00", "/fhir/Consent/x%1B"]
)
def test_a_nul_in_a_fhir_path_is_refused_not_a_500(admin, url):
    """The FHIR API's ids keep the policy too: a 4xx OperationOutcome, never a 500."""
    response = admin.get(url)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.json["resourceType"] == "OperationOutcome"


def test_a_nul_in_a_page_path_is_refused_not_a_500(login):  # noqa: F811
    """Pages keep it as well: a logged-in browser asking for /patients/IF21%00... is told."""
    response = login("technician").get("/patients/IF21%00-NL-001")
    assert response.status_code == 422, response.status_code


def test_the_scan_answers_who_asks_before_what_is_wrong(admin, client):
    """The scan checks its token in its own statement: a NUL in its code is still a 422 for
    a valid token, and a 401 without one."""
    assert_error_shape(admin.get("/api/v1/scan/IF%00X"), 422)
    assert_error_shape(client.get("/api/v1/scan/IF%00X"), 401)
    assert_error_shape(admin.get("/api/v1/scan/IF00000001?x=1"), 422)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/excursions/¹",
        "/api/v1/excursions/٣",
        "/api/v1/excursions/99999999999999999999",
        "/api/v1/consent/withdrawals/¹",
        "/api/v1/consent/withdrawals/99999999999999999999",
    ],
)
def test_an_id_that_is_not_ascii_digits_names_nothing(admin, url):
    """GET /excursions/¹ was a 500 (str.isdigit says yes, int says no): now a 404."""
    assert_error_shape(admin.get(url), 404)


def test_the_id_helper_reads_ascii_digits_only():
    """'¹' and '٣' are digits to Python, not ids; neither is a number beyond the column."""
    assert inputs.ascii_id("42") == 42
    assert inputs.ascii_id("¹") is None
    assert inputs.ascii_id("٣") is None
    assert inputs.ascii_id(str(2**31)) is None
    assert inputs.ascii_id("") is None


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        (
            "post",
            "/api/v1/box-types",
            {"code": "BIG", "name": "Big", "scheme": "numbered", "capacity": 130859852533},
            "capacity",
        ),
        ("patch", "/api/v1/timepoints/DX", {"sort_order": 130859852533}, "sort_order"),
        (
            "patch",
            "/api/v1/patients/IF21-NONE",
            {"day8_blasts_per_ul": 2**40, "reason": "r"},
            "day8_blasts_per_ul",
        ),
    ],
)
def test_an_integer_beyond_its_column_is_a_422(admin, method, url, body, field):
    """capacity 130859852533 was a 500 on PostgreSQL (INTEGER overflows): now a 422."""
    response = getattr(admin, method)(url, json=body)
    assert_error_shape(response, 422)
    assert field in response.json["errors"]["json"]


def test_json_nested_a_thousand_deep_is_a_400(admin):
    """1,000 nested arrays were a RecursionError (500): now a 400 in the error shape."""
    body = "[" * 1000 + "]" * 1000
    response = admin.post("/api/v1/consent/check", data=body, content_type="application/json")
    assert_error_shape(response, 400)
    assert "deep" in response.json["message"]


def test_json_nested_within_the_bound_is_parsed(admin):
    """Nesting up to the bound is read as JSON (and then refused by the schema, a 422)."""
    body = '{"substudy": "DEMO", "barcodes": ' + "[" * 399 + "]" * 399 + "}"
    response = admin.post("/api/v1/consent/check", data=body, content_type="application/json")
    assert_error_shape(response, 422)


def test_brackets_inside_strings_do_not_count_as_nesting(admin):
    """A string full of brackets is text, not depth: the schema answers (422 on its value)."""
    response = admin.post(
        "/api/v1/consent/check",
        data=json.dumps({"substudy": "DEMO", "barcodes": ["[" * 2000]}),
        content_type="application/json",
    )
    assert_error_shape(response, 422)
    assert "barcodes" in response.json["errors"]["json"]


def test_malformed_json_is_a_400_in_the_error_shape(admin):
    """A body that is not JSON, or not UTF-8, is a 400 with the one error shape."""
    for data in (b'{"substudy": ', b'\xff\xfe{"a": 1}'):
        response = admin.post("/api/v1/consent/check", data=data, content_type="application/json")
        assert_error_shape(response, 400)


def test_an_unknown_query_parameter_is_a_422_naming_it(admin):
    """?study_id= (the filter is called patient) no longer returns every tube of the biobank."""
    response = admin.get("/api/v1/aliquots?study_id=IF21-DE-001")
    assert_error_shape(response, 422)
    assert "study_id" in response.json["errors"]["query"]


def test_a_query_parameter_on_an_operation_that_takes_none_is_a_422(admin):
    """GET /box-types?x=1: the operation declares no query parameter at all."""
    response = admin.get("/api/v1/box-types?x=1")
    assert_error_shape(response, 422)
    assert "x" in response.json["errors"]["query"]


def test_pagination_parameters_are_known(admin):
    """page and page_size are the paginated lists' own parameters."""
    response = admin.get("/api/v1/aliquots?page=1&page_size=5")
    assert response.status_code == 200


def test_a_page_beyond_any_list_is_a_422_not_a_database_error(admin):
    """?page=99999999999999999999 would overflow the OFFSET: 422 naming page."""
    response = admin.get("/api/v1/aliquots?page=99999999999999999999")
    assert_error_shape(response, 422)
    assert "page" in response.json["errors"]["query"]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/substudies/DEMO", None),
        ("/api/v1/substudies/DEMO", {}),
        ("/api/v1/materials/BM", {}),
        ("/api/v1/patients/IF21-NONE", {"reason": "why"}),
    ],
)
def test_an_empty_patch_is_a_422(admin, url, body):
    """A PATCH that changes nothing (no body, {} or only a reason) is refused, not a 200."""
    response = admin.patch(url, json=body) if body is not None else admin.patch(url)
    assert_error_shape(response, 422)


def test_a_wrong_method_is_a_405_with_allow(admin):
    """405 in the error shape, with the Allow header listing what the path takes."""
    response = admin.delete("/api/v1/box-types")
    assert_error_shape(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed


def test_an_unknown_path_is_a_404_in_the_error_shape(admin):
    """Werkzeug's own 404 answers in the one error shape."""
    assert_error_shape(admin.get("/api/v1/no-such-thing"), 404)


def test_a_body_over_the_limit_is_a_413_before_anything_is_read(admin, app):
    """A JSON body larger than MAX_BODY_BYTES is refused with 413 in the error shape."""
    limit = app.config["MAX_BODY_BYTES"]
    body = json.dumps({"substudy": "DEMO", "barcodes": ["X" * 60] * (limit // 60 + 10)})
    response = admin.post("/api/v1/consent/check", data=body, content_type="application/json")
    assert_error_shape(response, 413)


def test_the_body_limit_is_a_setting(admin, app):
    """BIOBANK_MAX_BODY_BYTES lowers (or raises) the limit."""
    app.config["MAX_BODY_BYTES"] = 100
    response = admin.post(
        "/api/v1/consent/check", json={"substudy": "DEMO", "barcodes": ["X" * 200]}
    )
    assert_error_shape(response, 413)


def test_a_chunked_body_over_the_limit_is_a_413(admin, app):
    """Without Content-Length, reading stops at the limit: 413, not the whole body read."""
    limit = app.config["MAX_BODY_BYTES"]

    body = json.dumps({"substudy": "DEMO", "barcodes": ["X" * 1000] * (limit // 1000 + 10)})
    response = admin.post(
        "/api/v1/consent/check",
        input_stream=io.BytesIO(body.encode()),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_error_shape(response, 413)


def test_a_rack_scan_with_a_huge_field_is_a_422(admin, session):
    """One 255,000-character field was csv.Error (500): now a 422 naming the line."""
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage

    NUMBERING = Numbering()

    freezer = storage.create_freezer(
        session, "t", {"site": "NL-PMC", "name": "F", "freezer_type": "mechanical-80"}, NUMBERING
    )
    box = storage.create_box(
        session, "t", {"box_type": "SBS96", "parent": freezer.barcode}, NUMBERING
    )
    session.commit()
    text = 'TR1,A1,FX1\nTR1,A2,"' + "Y" * 255_000 + '"\n'
    response = admin.post(
        f"/api/v1/boxes/{box.barcode}/scan-upload", data=text, content_type="text/csv"
    )
    assert_error_shape(response, 422)
    assert "line 2" in response.json["message"]


def test_a_rack_scan_with_a_nul_is_a_422(admin, session):
    """A NUL inside the scanner's file is refused naming the line, on both databases."""
    from biobank.samples.service import Numbering
    from biobank.storage import service as storage

    NUMBERING = Numbering()

    freezer = storage.create_freezer(
        session, "t", {"site": "NL-PMC", "name": "F", "freezer_type": "mechanical-80"}, NUMBERING
    )
    box = storage.create_box(
        session, "t", {"box_type": "SBS96", "parent": freezer.barcode}, NUMBERING
    )
    session.commit()
    response = admin.post(
        f"/api/v1/boxes/{box.barcode}/scan-upload",
        data="TR1,A1,FX1\nTR1,A2,FX\u00002\n",
        content_type="text/csv",
    )
    assert_error_shape(response, 422)
    assert "line 2" in response.json["message"]
