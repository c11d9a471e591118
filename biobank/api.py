"""The flask-smorest Api: one per app, with every domain's blueprint, the shared parts of
its document (``biobank.apidoc``) and its JSON (decimals written as numbers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api

from biobank import apidoc


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with decimals (volumes, percentages, limits in the document) written as
    JSON numbers rather than strings. Every decimal column holds at most 12 significant
    digits, which a float carries exactly."""

    @staticmethod
    def default(o: Any) -> Any:  # type: ignore[override]
        """Decimals as numbers; everything else as Flask does."""
        if isinstance(o, Decimal):
            return float(o)
        return DefaultJSONProvider.default(o)


class BiobankApi(Api):
    """The service's Api: the one error shape documented and answered (``biobank.errors``
    handles Flask's and Werkzeug's errors), no catch-all "default" answer (each operation
    lists what it may answer), and X-Pagination documented as the JSON text it is."""

    ERROR_SCHEMA = apidoc.ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # type: ignore[assignment]

    def _register_error_handlers(self) -> None:
        pass  # biobank.errors registers the handler for HTTP errors

    def _register_pagination_header(self) -> None:
        self.spec.components.header("PAGINATION", apidoc.PAGINATION_HEADER, lazy=True)


def init_app(app: Flask) -> Api:
    """Create the app's Api and register every domain's blueprint under /api/v1."""
    from biobank.auth.admin_api import blp as users_blp
    from biobank.auth.api import blp as auth_blp
    from biobank.consent.api import blp as consent_blp
    from biobank.custody.api import blp as custody_blp
    from biobank.labels.api import blp as labels_blp
    from biobank.patients.api import blp as patients_blp
    from biobank.reference.api import blp as reference_blp
    from biobank.reports.api import blp as reports_blp
    from biobank.requests.api import RequestNumber
    from biobank.requests.api import blp as requests_blp
    from biobank.samples.api import blp as samples_blp
    from biobank.scan.api import blp as scan_blp
    from biobank.storage.api import blp as storage_blp
    from biobank.storage.station_api import blp as station_blp

    app.json = JSONProvider(app)
    api = BiobankApi(app, spec_kwargs={"extra_plugins": [apidoc.ErrorResponses()]})
    app.url_map.converters["request_number"] = RequestNumber
    api.register_converter(RequestNumber, lambda _converter: {"type": "string"})
    for blp in (
        reference_blp,
        patients_blp,
        samples_blp,
        scan_blp,
        custody_blp,
        auth_blp,
        consent_blp,
    ):
        api.register_blueprint(blp, url_prefix="/api/v1")
    api.register_blueprint(storage_blp, url_prefix="/api/v1")
    api.register_blueprint(station_blp, url_prefix="/api/v1")
    api.register_blueprint(labels_blp, url_prefix="/api/v1")
    api.register_blueprint(requests_blp, url_prefix="/api/v1")
    api.register_blueprint(reports_blp, url_prefix="/api/v1")
    api.register_blueprint(users_blp, url_prefix="/api/v1")
    app.extensions["biobank.api"] = api
    return api
