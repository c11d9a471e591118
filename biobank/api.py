"""The flask-smorest Api: one per app, with every domain's blueprint."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api


def init_app(app: Flask) -> Api:
    """Create the app's Api and register every domain's blueprint under /api/v1."""
    from biobank.auth.api import blp as auth_blp
    from biobank.consent.api import blp as consent_blp
    from biobank.custody.api import blp as custody_blp
    from biobank.labels.api import blp as labels_blp
    from biobank.patients.api import blp as patients_blp
    from biobank.reference.api import blp as reference_blp
    from biobank.requests.api import blp as requests_blp
    from biobank.samples.api import blp as samples_blp
    from biobank.scan.api import blp as scan_blp
    from biobank.storage.api import blp as storage_blp
    from biobank.storage.station_api import blp as station_blp

    api = Api(app)
    for blp in (reference_blp, patients_blp, samples_blp, scan_blp, custody_blp, auth_blp,
                consent_blp):
        api.register_blueprint(blp, url_prefix="/api/v1")
    api.register_blueprint(storage_blp, url_prefix="/api/v1")
    api.register_blueprint(station_blp, url_prefix="/api/v1")
    api.register_blueprint(labels_blp, url_prefix="/api/v1")
    api.register_blueprint(requests_blp, url_prefix="/api/v1")
    app.extensions["biobank.api"] = api
    return api
