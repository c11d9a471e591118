"""Checking answers against the OpenAPI document, with an independent validator."""

from __future__ import annotations

import json
import re
from typing import Any

from openapi_schema_validator import OAS30Validator


def operation(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    """The documented operation for a path template (``/api/v1/boxes/{code}``) and method."""
    return spec["paths"][path][method.lower()]


def template_of(spec: dict[str, Any], url: str) -> str:
    """The document's path template that a concrete URL (query left off) matches."""
    path = url.split("?")[0]
    for template in spec["paths"]:
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    raise AssertionError(f"{path} is not in the document")


def schema_errors(spec: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """What in ``value`` breaks ``schema`` (refs resolved inside the document)."""
    root = {**schema, "components": spec["components"]}
    validator = OAS30Validator(root)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)
    ]


def check_response(spec: dict[str, Any], method: str, url: str, response: Any) -> None:
    """The status is documented for the operation, and the JSON body and documented headers
    conform to what the document says for that status."""
    documented = operation(spec, template_of(spec, url), method)["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method} {url}: {status} is not documented"
    answer = documented[status]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    content = answer.get("content", {})
    if response.mimetype == "application/json":
        assert "application/json" in content, f"{method} {url}: {status} has no JSON body"
        errors = schema_errors(spec, content["application/json"]["schema"], response.json)
        assert not errors, f"{method} {url}: {errors[:5]}"
    for name, header in answer.get("headers", {}).items():
        if "$ref" in header:
            header = spec["components"]["headers"][header["$ref"].rsplit("/", 1)[-1]]
        value = response.headers.get(name)
        if value is None:
            assert not header.get("required"), f"{method} {url}: header {name} missing"
            continue
        if "schema" in header:
            errors = schema_errors(spec, header["schema"], value)
        else:
            [(_, media)] = header["content"].items()
            errors = schema_errors(spec, media["schema"], json.loads(value))
        assert not errors, f"{method} {url}: header {name}: {errors[:5]}"
