"""The API's contract: the OpenAPI document, the docs, one error shape, the schema."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from biobank.db import Base


def test_the_openapi_document_describes_every_api_route(client, app):
    """Every /api/v1 rule appears in /api/openapi.json, with a summary and a bearer scheme."""
    spec = client.get("/api/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    documented = set(spec["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            assert path in documented, path
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                assert operation.get("summary"), operation


def test_the_interactive_docs_are_served_locally(client):
    """/api/docs loads Swagger UI from this server, not from a CDN."""
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert b"/api/docs/static/swagger-ui-bundle.js" in page.data
    asset = client.get("/api/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()


def test_errors_have_one_shape(tech):
    """404, 405 and 422 all answer {code, status, ...} as JSON."""
    for response in (
        tech.get("/api/v1/patients/NOPE"),
        tech.post("/api/v1/scan/X"),
        tech.get("/api/v1/aliquots?status=nope"),
    ):
        assert response.is_json
        assert {"code", "status"} <= set(response.json)
        assert response.json["code"] == response.status_code


def test_the_migrations_build_exactly_the_models(connection):
    """The schema made by Alembic matches the SQLAlchemy models (no drift)."""
    diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
