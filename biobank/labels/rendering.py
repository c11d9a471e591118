"""The label templates the app loaded at start-up, and a label rendered as a response:
what the labels API, the requests API and the pages all use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, current_app

from biobank.errors import NotFound
from biobank.labels import templates

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "labels"
_EXTENSION = "biobank.labels"


def load_templates(app: Flask) -> None:
    """Load the app's label templates (``LABELS_DIR``, else labels/) once, at start-up."""
    # Loading checks every template: a broken one stops the app here, not at a printer.
    folder = app.config.get("LABELS_DIR") or DEFAULT_FOLDER
    app.extensions[_EXTENSION] = templates.load(Path(folder))


def registry() -> templates.Registry:
    """The templates loaded when the app started."""
    return current_app.extensions[_EXTENSION]


def render(kind: str, items: list[dict[str, str]], args: dict[str, Any], filename: str) -> Response:
    """Label data rendered with the template, format and dpi of ``args`` (``LabelQuery``)."""
    if not items:
        raise NotFound(f"{filename} has no labels to render")
    template = registry().get(args["template"], kind, args["dpi"])
    content, mime = template.render(args["format"], args["dpi"], items)
    response = Response(content, mimetype=mime.split(";")[0])
    if mime.startswith("text/"):
        response.charset = "utf-8"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}.{args["format"]}"'
    return response
