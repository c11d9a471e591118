"""The input policy holds for every operation of the document, today's and those to come:
each is walked from the OpenAPI document, not listed by hand."""

from __future__ import annotations

import re

import marshmallow
import pytest
from marshmallow import class_registry

from biobank import inputs
from biobank.schema import Multiline, Schema

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def admin(as_role):  # type: ignore[no-untyped-def]
    """An administrator: no operation is refused for the role."""
    return as_role("admin")


@pytest.fixture
def spec(client):  # type: ignore[no-untyped-def]
    """The document as served."""
    return client.get("/api/openapi.json").json


def _resolve(spec, schema):  # type: ignore[no-untyped-def]
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "X1", path)


def test_every_schema_of_the_service_keeps_the_policy(app):
    """Every marshmallow schema defined in biobank derives from biobank.schema.Schema."""
    found = [
        cls
        for classes in class_registry._registry.values()
        for cls in classes
        if cls.__module__.startswith("biobank.")
    ]
    assert len(found) > 50
    plain = [f"{c.__module__}.{c.__name__}" for c in found if not issubclass(c, Schema)]
    assert not plain, f"derive these from biobank.schema.Schema: {plain}"


def test_every_string_field_of_every_body_refuses_a_nul(spec, admin):
    """Each JSON body's string fields, sent with a NUL, are each named in a 422."""
    checked = 0
    for path, item in spec["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            media = (operation or {}).get("requestBody", {}).get("content", {})
            if "application/json" not in media:
                continue
            schema = _resolve(spec, media["application/json"]["schema"])
            strings = [
                name
                for name, prop in schema.get("properties", {}).items()
                if _resolve(spec, prop).get("type") == "string"
            ]
            if not strings:
                continue
            body = dict.fromkeys(strings, "A\u0000B")
            response = getattr(admin, method)(_url(path), json=body)
            assert response.status_code == 422, (method, path, response.json)
            assert set(strings) <= set(response.json["errors"]["json"]), (method, path)
            checked += 1
    assert checked > 40


def test_every_string_query_parameter_refuses_a_lone_surrogate(spec, admin):
    """Each string query parameter, sent with a lone surrogate (%ED%A0%80 is not UTF-8, so
    it is sent as a control character instead), is named in a 422."""
    checked = 0
    for path, item in spec["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query" or parameter["schema"].get("type") != "string":
                continue
            response = admin.get(_url(path), query_string={parameter["name"]: "A\u0007B"})
            assert response.status_code == 422, (path, parameter["name"], response.json)
            assert parameter["name"] in response.json["errors"]["query"], path
            checked += 1
    assert checked > 15


def test_every_operation_refuses_an_unknown_query_parameter(spec, admin):
    """?unheard_of=1 on any operation is a 422 naming it, never ignored."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                response = getattr(admin, method)(_url(path) + "?unheard_of=1")
                assert response.status_code == 422, (method, path, response.status_code)
                assert "unheard_of" in response.json["errors"]["query"], (method, path)


def test_the_policy_itself():
    """What is refused, and where tab and newline are allowed."""
    assert inputs.bad_character("IF21-NL-001 ÄÖ µL ×10⁹/L") is None
    assert "NUL" in inputs.bad_character("a\x00")
    assert "surrogate" in inputs.bad_character("a\udfff")
    assert "control" in inputs.bad_character("a\x85")  # NEL, a C1 control
    assert "control" in inputs.bad_character("a\tb")
    assert inputs.bad_character("a\tb\r\nc", multiline=True) is None
    assert "control" in inputs.bad_character("a\x0bb", multiline=True)


def test_a_multiline_field_and_a_nested_object_follow_the_policy():
    """Nested objects, lists and dict keys are walked; Multiline allows line breaks."""

    class Inner(Schema):
        note = Multiline()
        name = marshmallow.fields.String()

    class Outer(Schema):
        items = marshmallow.fields.List(marshmallow.fields.Nested(Inner))
        tags = marshmallow.fields.Dict(
            keys=marshmallow.fields.String(), values=marshmallow.fields.String()
        )
        count = marshmallow.fields.Integer()

    assert Outer().load({"items": [{"note": "a\nb", "name": "x"}]})
    with pytest.raises(marshmallow.ValidationError) as refused:
        Outer().load({"items": [{"note": "ok", "name": "a\nb"}], "tags": {"k\x00": "v"}})
    why = (
        "contains a control character (U+000A) at position 2 (tab and newline only in "
        "multi-line text)"
    )
    assert refused.value.messages["items"] == {0: {"name": [why]}}
    assert "k\\x00" in refused.value.messages["tags"]
    with pytest.raises(marshmallow.ValidationError) as too_big:
        Outer().load({"count": 2**31})
    assert "count" in too_big.value.messages


def test_json_depth_is_measured_as_a_parser_would_meet_it():
    """Strings are not nesting; an opener never closed is; objects count as arrays do."""
    from biobank.guards import json_depth_exceeds

    assert not json_depth_exceeds(b'["' + b"[" * 5000 + b'"]', 400)
    assert not json_depth_exceeds(b'["\\"' + b"[" * 500 + b'"]', 400)
    assert json_depth_exceeds(b"[" * 5000 + b'"unterminated', 400)
    assert json_depth_exceeds(b'{"a":' * 401 + b"1" + b"}" * 401, 400)
    assert not json_depth_exceeds(b'{"a":' * 400 + b"1" + b"}" * 400, 400)
    assert not json_depth_exceeds(b"[" + b"[1]," * 1000 + b"[1]]", 400)
