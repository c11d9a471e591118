"""The biobank service: create_app builds the Flask application."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from biobank import clock
from biobank import config as config_module

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, database, API, error handlers and CLI; no I/O."""
    app = Flask(__name__, instance_relative_config=True)
    _load_config(app, config)
    _init_extensions(app)
    _register_blueprints(app)
    _connect_domains()
    _register_cli(app)
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client's address and scheme as the trusted proxies saw them (the login
        # throttle counts per address; Secure cookies and redirects need the scheme).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=proxies,
            x_proto=proxies,
            x_host=proxies,
        )
    return app


def _load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    app.config.update(config_module.DEFAULTS)
    app.config.update(config_module.from_environment())
    app.config.update(overrides or {})
    clock.parse_zone(app.config["TIMEZONE"])  # a misspelt zone stops the start, not a request
    from biobank.labels.network import rule_from

    rule_from(app.config)  # so does a printer network or port that is no such thing
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = config_module.default_database_url(app.instance_path)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = (
            secrets.token_hex(32)
            if app.config.get("TESTING")
            else config_module.instance_secret(app.instance_path)
        )
    app.config.update(
        API_TITLE="Interfant-21 biobank",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/api/docs/static/",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_NAME="biobank_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=app.config["SESSION_HOURS"]),
    )


def _init_extensions(app: Flask) -> None:
    from flask import g

    from biobank import db, errors, guards
    from biobank.auth import web as auth_web
    from biobank.fhir.api import as_operation_outcome

    db.init_app(app)
    errors.init_app(app)
    auth_web.init_app(app)

    # The request's way in and out, in order, in one place: one hook each way (Flask
    # dispatches every hook on its own, and the scan is the busiest request there is).
    @app.before_request
    def _admit() -> ResponseReturnValue | None:
        guards.limit_body()  # first of all: nothing reads a body too large
        refused = auth_web.authenticate()  # who asks, before what is wrong with the request
        if refused is None:
            guards.check_request()
        return refused

    # Flask runs it after an unhandled error's 500 too.
    @app.after_request
    def _finish(response: Response) -> Response:
        try:
            response = auth_web.refuse_unsettled(response)  # a view that never checked its token
            response = _finish_transaction(response)
            return as_operation_outcome(response)  # any error under /fhir, whoever answered it
        finally:
            auth_web.unbind_scope()

    def _finish_transaction(response: Response) -> Response:
        # One transaction per request: kept when the answer is a success, else undone.
        # (A print commits once before, so that no label leaves unrecorded:
        # biobank/labels/printing.py.)
        session = g.get("db_session")
        # A read-only request (biobank.db.read_only) has nothing to commit or undo.
        if session is None or db.is_read_only(session):
            return response
        if response.status_code >= 400:
            _roll_back(session)
            return response
        try:
            session.commit()
        except SQLAlchemyError as exc:
            # What the commit still had to write failed (SQLite's lock, a constraint):
            # undone, and answered by the handler a view would have had (503, 409); one
            # without a handler stays an error.
            _roll_back(session)
            return app.make_response(app.handle_user_exception(exc))
        return response


def _roll_back(session: Any) -> None:
    """Undo the request's transaction. On a connection that died (the database went away:
    the answer is a 503 already) there is nothing left to undo, and the rollback's own
    failure must not turn that answer into a 500: the session discards the connection."""
    try:
        session.rollback()
    except SQLAlchemyError:
        session.close()


SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    # Scripts only from files of our own: no inline script or event handler runs, so text
    # that slipped into a page cannot act (the Swagger UI's start-up is a file too).
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'",
    ),
    ("Cache-Control", "no-store"),
)


_SECURITY_HEADERS_BY_NAME = tuple((name.lower(), (name, value)) for name, value in SECURITY_HEADERS)


class SecurityHeaders:
    """WSGI middleware: the security headers on every answer (success, page, every error),
    but a header the app set itself is left as it is.

    Added to the WSGI header list, a plain list of pairs, as the answer starts: Werkzeug's
    Headers checks every value it is given, and the busiest request would pay for seven
    fixed values on each answer."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers.extend(pair for name, pair in _SECURITY_HEADERS_BY_NAME if name not in present)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def _register_blueprints(app: Flask) -> None:
    from biobank import api, web
    from biobank.auth.pages import bp as auth_pages_bp
    from biobank.fhir import api as fhir_api
    from biobank.site import bp as site_bp

    app.register_blueprint(auth_pages_bp)  # log in, log out
    api.init_app(app)
    app.register_blueprint(site_bp)
    web.init_app(app)
    fhir_api.init_app(app)


def _connect_domains() -> None:
    # Where one domain acts on another's events, connected here rather than by importing a
    # module for its side effects: a withdrawal takes tubes out of open requests and recalls
    # the shipped ones (biobank.consent.service's extension points).
    from biobank.requests import recalls

    recalls.connect()


def _register_cli(app: Flask) -> None:
    from biobank.cli import register

    register(app)
