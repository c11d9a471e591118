"""Browser login and logout: a server-rendered form, a session cookie, CSRF tokens."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask import session as cookie
from flask.typing import ResponseReturnValue

from biobank.auth import service, throttle
from biobank.auth.permissions import PUBLIC, requires
from biobank.auth.web import CSRF_FIELD, csrf_token, csrf_valid, optional_user
from biobank.db import get_session

bp = Blueprint("auth_pages", __name__)

# One message whatever was wrong, so the form does not tell which usernames exist.
WRONG_CREDENTIALS = "Unknown username or wrong password."
STALE_FORM = "The form had expired. Please try again."


def safe_next(target: str | None) -> str:
    """A path on this site to go to after logging in; anything else becomes the front page."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or not target.isprintable()
    ):
        return "/"
    return target


def login_page(
    status: int = 200, error: str | None = None, username: str = "", next_url: str = "/"
) -> tuple[str, int]:
    """The login form, with an error message if the last attempt failed."""
    body = render_template("login.html", error=error, username=username[:64], next_url=next_url)
    return body, status


@bp.get("/login")
@requires(PUBLIC)
def login_form() -> ResponseReturnValue:
    """The login form (a logged-in user goes straight on)."""
    next_url = safe_next(request.args.get("next"))
    if optional_user() is not None:
        return redirect(next_url)
    return login_page(next_url=next_url)


@bp.post("/login")
@requires(PUBLIC)
def login() -> ResponseReturnValue:
    """Check a username and password; on success start a browser session."""
    form = request.form
    username = form.get("username", "")
    password = form.get("password", "")
    next_url = safe_next(form.get("next"))
    if not csrf_valid(form.get(CSRF_FIELD)):
        return login_page(400, STALE_FORM, username, next_url)
    session = get_session()
    address = request.remote_addr or "unknown"
    # Counted before the check, and committed at once: concurrent guesses see it.
    wait = throttle.attempt(
        session, username, address, throttle.Policy.from_config(current_app.config)
    )
    session.commit()
    if wait:
        body, status = login_page(
            429,
            f"Too many failed logins. Wait {wait} seconds before trying again.",
            username,
            next_url,
        )
        return body, status, {"Retry-After": str(wait)}
    user = service.user_for_password(session, username.strip(), password)
    if user is None:
        return login_page(401, WRONG_CREDENTIALS, username, next_url)
    throttle.clear(session, username, address)
    secret = service.start_web_session(session, user, hours=current_app.config["SESSION_HOURS"])
    # A fresh cookie at login: whatever an attacker planted before (session fixation) is gone.
    cookie.clear()
    cookie.permanent = True
    cookie["sid"] = secret
    csrf_token()
    return redirect(next_url)


@bp.post("/logout")
@requires(PUBLIC)
def logout() -> ResponseReturnValue:
    """End the browser session."""
    if not csrf_valid(request.form.get(CSRF_FIELD)):
        return login_page(400, STALE_FORM)
    secret = cookie.get("sid")
    if isinstance(secret, str) and secret:
        service.end_web_session(get_session(), secret)
    cookie.clear()
    return redirect(url_for("auth_pages.login_form"))
