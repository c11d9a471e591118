"""Plain routes outside the API: the front page, a health check, the docs' assets."""

from __future__ import annotations

from flask import Blueprint, render_template_string, send_from_directory
from sqlalchemy import text

from biobank.auth.permissions import PUBLIC, requires
from biobank.db import get_session

bp = Blueprint("site", __name__)

_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Interfant-21 biobank</title></head>
<body><main>
<h1>Interfant-21 biobank</h1>
<p>Sample tracking for the residual material of the Interfant-21 trial.</p>
<ul>
<li><a href="/api/docs">API documentation</a> (OpenAPI: <a href="/api/openapi.json">/api/openapi.json</a>)</li>
<li><a href="/health">Health check</a></li>
</ul>
</main></body></html>"""


@bp.get("/")
@requires(PUBLIC)
def index():  # type: ignore[no-untyped-def]
    """The front page."""
    return render_template_string(_INDEX)


@bp.get("/health")
@requires(PUBLIC)
def health():  # type: ignore[no-untyped-def]
    """Liveness and database reachability."""
    get_session().execute(text("SELECT 1"))
    return {"status": "ok"}


@bp.get("/api/docs/static/<path:filename>")
@requires(PUBLIC)
def swagger_ui_static(filename: str):  # type: ignore[no-untyped-def]
    """Swagger UI's files, served locally (the lab network may have no internet)."""
    from swagger_ui_bundle import swagger_ui_path

    return send_from_directory(swagger_ui_path, filename)
