"""Who is asking: the check that runs before every request (bearer token or browser session)."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from flask.wrappers import Request
from sqlalchemy.orm import Session

from biobank.auth import scope
from biobank.auth.models import User
from biobank.auth.permissions import PUBLIC, allowed
from biobank.auth.service import (
    Asker,
    asker_for_hash,
    asker_for_token,
    hash_token,
    user_for_web_session,
)
from biobank.db import PREPARERS, READ_ONLY, F, get_session
from biobank.errors import error_body, wants_page

# Endpoints of extensions (flask-smorest's spec and docs, static files) that are public.
_PUBLIC_ENDPOINTS = {
    "api-docs.openapi_json",
    "api-docs.openapi_swagger_ui",
    "static",
    "swagger_ui_static",
}
_MAX_AUTH_HEADER = 512
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def current_user() -> User:
    """The authenticated user of this request (loaded on first use: most requests need only
    ``current_asker``)."""
    if "user" not in g:
        g.user = get_session().get_one(User, g.asker.id)
    return g.user


def current_asker() -> Asker:
    """Who is asking: the authenticated user's id, name and role."""
    return g.asker


def current_actor() -> str:
    """The name recorded as actor on events: the authenticated user, never the body."""
    return g.asker.username


def optional_user() -> User | None:
    """The user of this request if there is one (public pages look up the browser session)."""
    if "user" not in g:
        g.user = current_user() if "asker" in g else _session_user()
    return g.user


def csrf_token() -> str:
    """This browser session's CSRF token, made on first use; forms and scripts send it back."""
    token = cookie.get("csrf")
    if not isinstance(token, str) or not token:
        token = cookie["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_valid(sent: str | None) -> bool:
    """Whether a request carries this browser session's CSRF token."""
    expected = cookie.get("csrf")
    if not isinstance(expected, str) or not expected or not sent:
        return False
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode())


def _sent_csrf() -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in _FORM_TYPES:
        sent = request.form.get(CSRF_FIELD)
    return sent


NO_ASKER = "a valid bearer token or a logged-in session is required"


def _may(role: str, permission: str | None) -> bool:
    # An undeclared action (None) is refused to everyone.
    return permission is not None and allowed(role, permission)


def _deny(status: int, message: str) -> tuple[Response, int]:
    # The message is fixed text: never the token, header or cookie that was sent.
    response = jsonify(error_body(status, message))
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="biobank"'
    return response, status


def _deny_page(status: int, message: str) -> ResponseReturnValue:
    if status == 401:
        return redirect(url_for("auth_pages.login_form", next=request.full_path.rstrip("?")))
    return render_template("error.html", status=status, message=message), status


def _bearer_token(header: str) -> str | None:
    if not header or len(header) > _MAX_AUTH_HEADER:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    return token if token.isascii() and token.isprintable() else None


def _session_user() -> User | None:
    secret = cookie.get("sid")
    if not isinstance(secret, str) or not secret:
        return None
    return user_for_web_session(get_session(), secret)


def permission_of(endpoint: str | None, app: Flask | None = None) -> str | None:
    """The action an endpoint declares (None: undeclared, which nobody may call)."""
    if endpoint is None:
        return None
    if endpoint in _PUBLIC_ENDPOINTS:
        return PUBLIC
    return getattr((app or current_app).view_functions.get(endpoint), "biobank_permission", None)


def route_permissions(app: Flask) -> list[tuple[str, str, str | None]]:
    """Every route of the app as (path, method, declared action), HEAD and OPTIONS aside."""
    return sorted(
        (rule.rule, method, permission_of(rule.endpoint, app))
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    )


def authenticate() -> ResponseReturnValue | None:
    """Authenticate and authorise the request; unmatched URLs still need credentials."""
    # g can outlive a request (tests keep one app context): never inherit a previous asker.
    g.pop("user", None)
    g.pop("asker", None)
    g.pop(_PENDING, None)
    endpoint = request.endpoint
    permission = permission_of(endpoint)
    if permission == PUBLIC:
        return None
    asker: Asker | None
    header = request.environ.get("HTTP_AUTHORIZATION")
    if header is not None:
        # Explicit credentials that fail are a 401, even if a session cookie came along.
        token = _bearer_token(header)
        if token and _checks_token_itself(endpoint):
            setattr(g, _PENDING, (hash_token(token), permission))
            return None  # the view checks it in its own statement, then calls settle_asker
        asker = asker_for_token(get_session(), token) if token else None
        by_cookie = False
    else:
        user = _session_user()
        asker = (
            None
            if user is None
            else Asker(user.id, user.username, user.role, tuple(user.site_codes))
        )
        if user is not None:
            g.user = user
        by_cookie = True
    # Browsers get the login page or an HTML refusal; tokens and the API keep JSON.
    deny = _deny_page if by_cookie and wants_page() else _deny
    if asker is None:
        return deny(401, NO_ASKER)
    _adopt(asker)
    # A browser sends the cookie with any form posted to us, even from another site;
    # only our own pages know the CSRF token.
    if by_cookie and request.method not in SAFE_METHODS and not csrf_valid(_sent_csrf()):
        return deny(400, f"the CSRF token is missing or wrong: send it as {CSRF_HEADER}")
    if request.endpoint is None:
        return None  # let routing answer 404 / 405, now that the asker is known
    if not _may(asker.role, permission):
        return deny(403, f"role {asker.role!r} may not do this")
    return None


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, looking for the cookie before building the signer:
    API clients send none, and Flask would build a signer for every request anyway (nor
    are the cookies parsed when the request has no Cookie header at all)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ
            or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)


# --- the token checked in a view's own statement ------------------------------------------

_PENDING = "biobank_pending_token"
_CHECKS_TOKEN = "biobank_checks_token_itself"


def checks_token_itself(view: F) -> F:
    """Let a busy read-only view check the bearer token in its own statement.

    For such a view the request hook does not look the token up: it keeps its hash
    (``pending_token_hash``) and the view runs it in its statement (``auth.service.
    asker_column``), then calls ``settle_asker`` with what came back, or ``settle_by_lookup``
    on any path that did not read it (errors included), before it answers anything. A view
    that forgets is answered 401 all the same (``refuse_unsettled``). Only read-only views
    (``biobank.db.read_only``) may: nothing they did can need undoing.
    """
    if not getattr(view, READ_ONLY, False):
        raise TypeError("checks_token_itself: declare the view @read_only first")
    view.__dict__[_CHECKS_TOKEN] = True
    return view


def _checks_token_itself(endpoint: str | None) -> bool:
    view = current_app.view_functions.get(endpoint) if endpoint else None
    return bool(getattr(view, _CHECKS_TOKEN, False))


def pending_token_hash() -> str | None:
    """The hash of the bearer token this view must check itself (None: nothing pending)."""
    pending = g.get(_PENDING)
    return None if pending is None else pending[0]


def settle_asker(asker: Asker | None) -> None:
    """The view read the pending token's owner: refuse (401 or 403) or let it go on."""
    pending = g.pop(_PENDING, None)
    if pending is None:
        return
    _, permission = pending
    if asker is None:
        abort(_denied(401, NO_ASKER))
    if not _may(asker.role, permission):
        abort(_denied(403, f"role {asker.role!r} may not do this"))
    _adopt(asker)


def _adopt(asker: Asker) -> None:
    # Who asks, and the sites they are limited to: every query of the request's session
    # reads only those sites' objects (biobank.auth.scope). A session made later binds the
    # scope itself (_bind_scope): the scan of a tube makes none.
    g.asker = asker
    if "db_session" in g:
        _bind_scope(g.db_session)


def _bind_scope(session: Session) -> None:
    asker = g.get("asker")
    if asker is not None:
        scope.bind(session, scope.for_sites(asker.sites))  # no sites: unbound


def current_scope() -> scope.Scope:
    """The sites this request's asker is limited to (EVERYWHERE: none)."""
    asker = g.get("asker")
    return scope.EVERYWHERE if asker is None else scope.for_sites(asker.sites)


def unbind_scope() -> None:
    """The request is over: its session reads everything again (tests keep one app context,
    and so one session, across requests and their own code)."""
    if "db_session" in g:
        scope.unbind(g.db_session)


def settle_by_lookup() -> None:
    """Check the pending token on its own (a path of the view that did not read it)."""
    token_hash = pending_token_hash()
    if token_hash is not None:
        settle_asker(asker_for_hash(get_session(), token_hash))


def _denied(status: int, message: str) -> Response:
    response, _ = _deny(status, message)
    response.status_code = status
    return response


def refuse_unsettled(response: Response) -> Response:
    """After the view: 401 when it deferred the token check and never made it."""
    # A view that deferred the token check and never made it: the asker is unknown. A
    # server-side failure (the database unavailable: 503) stays what it is: it tells
    # nothing about the tube, and a scanner told "unauthenticated" would blame its token.
    if g.pop(_PENDING, None) is not None and response.status_code < 500:
        return _denied(401, NO_ASKER)
    return response


def init_app(app: Flask) -> None:
    """Install the check in front of every request and the cookie sessions."""
    app.session_interface = CookieSessions()
    # authenticate, refuse_unsettled and unbind_scope run in the app's request pipeline
    # (biobank.create_app).
    app.extensions.setdefault(PREPARERS, []).append(_bind_scope)

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        return {"current_user": optional_user(), "csrf_token": csrf_token}
