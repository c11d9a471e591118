"""Server-rendered pages for people at the bench: the scan station, box maps and rack scans,
patients, the consent desk, researchers' and managers' pages. They call the same services
and check the same permissions as the API."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the page blueprints and the helpers their templates use."""
    from biobank.web import (
        boxes,
        consent,
        find,
        manager,
        patients,
        printing,
        reports,
        researcher,
        scan,
        users,
    )
    from biobank.web.common import install

    for module in (
        scan,
        printing,
        find,
        boxes,
        patients,
        consent,
        researcher,
        manager,
        reports,
        users,
    ):
        app.register_blueprint(module.bp)
    install(app)
