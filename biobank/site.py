"""Plain routes outside the API: the front page, a health check, the docs' assets."""

from __future__ import annotations

from flask import Blueprint, render_template, send_from_directory
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from biobank.auth.pages import login_page
from biobank.auth.permissions import PUBLIC, requires
from biobank.auth.web import optional_user
from biobank.db import get_session

bp = Blueprint("site", __name__)


@bp.get("/")
@requires(PUBLIC)
def index() -> ResponseReturnValue:
    """The front page: the login form, or the home page of a logged-in user."""
    if optional_user() is None:
        return login_page()
    return render_template("home.html")


@bp.get("/health")
@requires(PUBLIC)
def health() -> ResponseReturnValue:
    """Liveness and database reachability."""
    get_session().execute(text("SELECT 1"))
    return {"status": "ok"}


@bp.get("/api/docs/static/<path:filename>")
@requires(PUBLIC)
def swagger_ui_static(filename: str) -> ResponseReturnValue:
    """Swagger UI's files, served locally (the lab network may have no internet)."""
    from swagger_ui_bundle import swagger_ui_path

    return send_from_directory(swagger_ui_path, filename)
