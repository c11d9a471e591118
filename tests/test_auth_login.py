"""Browser login: the pages, the session cookie, CSRF, throttling, logout, the API by cookie."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from biobank import create_app
from biobank.auth import service
from biobank.auth.models import LoginThrottle, WebSession
from biobank.auth.pages import WRONG_CREDENTIALS
from biobank.custody.models import AuditRecord
from biobank.db import bind_to_connection

PASSWORD = "a long enough passphrase"
COOKIE = "biobank_session"
ME = "/api/v1/me"


def csrf_of(page: Any) -> str:
    """The CSRF token a rendered page carries in its forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, "no CSRF field on the page"
    return match.group(1)


def alert_of(page: Any) -> str:
    """The error message a page shows."""
    match = re.search(r'role="alert">([^<]*)<', page.get_data(as_text=True))
    return match.group(1) if match else ""


def post_login(browser: FlaskClient, username: str, password: str, **extra: Any):  # type: ignore[no-untyped-def]
    """Fill in the login form as a browser would: fetch it, then post it."""
    token = csrf_of(browser.get("/login"))
    return browser.post(
        "/login", data={"username": username, "password": password, "csrf_token": token, **extra}
    )


@pytest.fixture
def browser(app) -> FlaskClient:  # type: ignore[no-untyped-def]
    """A client with its own cookie jar (not shared with the token clients)."""
    return app.test_client()


@pytest.fixture
def make_user(session) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """Create a user with a password: ``make_user("manager")``."""
    counter = iter(range(1, 1000))

    def make(role: str = "technician", password: str = PASSWORD, **kw: Any):  # type: ignore[no-untyped-def]
        if role == "researcher":
            kw.setdefault("substudies", ["DEMO"])
        user = service.create_user(
            session,
            f"web-{role}-{next(counter)}",
            role,
            password=password,
            full_name=f"Web {role}",
            **kw,
        )
        session.commit()
        return user

    return make


@pytest.fixture
def logged_in(browser, make_user):  # type: ignore[no-untyped-def]
    """A browser logged in as a manager; returns (browser, user)."""
    user = make_user("manager")
    assert post_login(browser, user.username, PASSWORD).status_code == 302
    return browser, user


def page_csrf(browser: FlaskClient) -> str:
    """The CSRF token of the logged-in browser (from the home page's meta tag)."""
    html = browser.get("/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


# --- pages ---------------------------------------------------------------------------------


def test_the_front_page_is_the_login_form_when_anonymous(browser):
    """GET / without a session shows a form with labelled username and password fields."""
    page = browser.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert '<label for="username">' in html and 'id="username"' in html
    assert '<label for="password">' in html and 'type="password"' in html
    assert 'action="/login"' in html and "Log out" not in html


def test_logging_in_leads_to_the_home_page(browser, make_user):
    """Right username and password: redirect to /, which names the user and role."""
    user = make_user("consent_officer")
    response = post_login(browser, user.username, PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = browser.get("/").get_data(as_text=True)
    assert "Web consent_officer" in home and "consent officer" in home
    assert 'href="/api/docs"' in home and 'action="/logout"' in home


def test_the_session_cookie_is_httponly_samesite_lax_and_secure(browser, make_user):
    """The login's cookie has HttpOnly, SameSite=Lax and (by default) Secure."""
    user = make_user()
    response = post_login(browser, user.username, PASSWORD)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert service.hash_token(browser.get_cookie(COOKIE).value) not in cookie


def test_the_secure_flag_can_be_turned_off_for_plain_http(
    monkeypatch, connection, database_url, make_user
):
    """BIOBANK_SESSION_COOKIE_SECURE=false drops Secure (HttpOnly and SameSite stay)."""
    monkeypatch.setenv("BIOBANK_SESSION_COOKIE_SECURE", "false")
    plain = create_app({"DATABASE_URL": database_url, "TESTING": True})
    bind_to_connection(plain, connection)
    user = make_user()
    response = post_login(plain.test_client(), user.username, PASSWORD)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE))
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    plain.extensions["biobank.engine"].dispose()


def test_the_password_is_stored_as_a_scrypt_hash(make_user):
    """The stored password is a werkzeug scrypt hash, not the password."""
    user = make_user()
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(browser, make_user):
    """Unknown user, wrong password, deactivated user, no password: one status, one message."""
    user = make_user()
    inactive = make_user()
    inactive.active = False
    nopass = make_user()
    nopass.password_hash = None
    answers = [
        post_login(browser, user.username, "wrong password!"),
        post_login(browser, "nobody-at-all", PASSWORD),
        post_login(browser, inactive.username, PASSWORD),
        post_login(browser, nopass.username, PASSWORD),
        post_login(browser, "", ""),
    ]
    assert {(a.status_code, alert_of(a)) for a in answers} == {(401, WRONG_CREDENTIALS)}
    assert browser.get(ME).status_code == 401


def test_a_failed_login_echoes_and_logs_no_password(browser, make_user, caplog):
    """The password typed appears in no response and no log line; the username is kept."""
    caplog.set_level(logging.DEBUG)
    user = make_user()
    typed = "Sup3r-Secret-typed-guess"
    response = post_login(browser, user.username, typed)
    html = response.get_data(as_text=True)
    assert typed not in html and typed not in caplog.text
    assert PASSWORD not in caplog.text
    assert f'value="{user.username}"' in html


def test_over_long_or_odd_login_input_is_refused_not_crashed(browser, make_user):
    """A huge password or username, or bytes that are not UTF-8, are a plain 401."""
    user = make_user()
    assert post_login(browser, user.username, "x" * 100_000).status_code == 401
    assert post_login(browser, "u" * 10_000, PASSWORD).status_code == 401
    token = csrf_of(browser.get("/login"))
    raw = f"csrf_token={token}&username=%ff%fe&password=%c3%28".encode()
    response = browser.post("/login", data=raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401


def test_a_login_without_the_forms_csrf_token_is_refused(browser, make_user):
    """A login posted without (or with another browser's) CSRF token starts no session."""
    user = make_user()
    bare = browser.post("/login", data={"username": user.username, "password": PASSWORD})
    assert bare.status_code == 400
    other = csrf_of(browser.application.test_client().get("/login"))
    foreign = browser.post(
        "/login", data={"username": user.username, "password": PASSWORD, "csrf_token": other}
    )
    assert foreign.status_code == 400
    assert browser.get(ME).status_code == 401


def test_logging_in_replaces_the_cookie_and_the_csrf_token(browser, make_user):
    """Session fixation: the pre-login cookie and CSRF token are not the logged-in ones."""
    user = make_user()
    before_token = csrf_of(browser.get("/login"))
    before_cookie = browser.get_cookie(COOKIE).value
    browser.post(
        "/login", data={"username": user.username, "password": PASSWORD, "csrf_token": before_token}
    )
    assert browser.get_cookie(COOKIE).value != before_cookie
    assert page_csrf(browser) != before_token


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/api/v1/me", "/api/v1/me"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_after_login_only_local_paths_are_followed(browser, make_user, target, landing):
    """The next parameter cannot send the user to another site."""
    user = make_user()
    response = post_login(browser, user.username, PASSWORD, next=target)
    assert response.headers["Location"] == landing


def test_a_logged_in_user_visiting_login_goes_on(logged_in):
    """GET /login with a live session redirects to the front page."""
    browser, _user = logged_in
    assert browser.get("/login").headers["Location"] == "/"


# --- logout and the server-side session -----------------------------------------------


def test_logout_ends_the_session_even_for_a_copied_cookie(logged_in, app):
    """After POST /logout, the old cookie (replayed elsewhere) no longer works."""
    browser, _user = logged_in
    stolen = browser.get_cookie(COOKIE).value
    response = browser.post("/logout", data={"csrf_token": page_csrf(browser)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert browser.get(ME).status_code == 401
    replay = app.test_client()
    replay.set_cookie(COOKIE, stolen)
    assert replay.get(ME).status_code == 401


def test_logout_needs_the_csrf_token(logged_in):
    """A cross-site form posting to /logout (no token) does not log the user out."""
    browser, _user = logged_in
    assert browser.post("/logout").status_code == 400
    assert browser.get(ME).status_code == 200


def test_logout_without_a_session_just_goes_to_the_login_page(browser):
    """An anonymous logout with the form's token is harmless."""
    token = csrf_of(browser.get("/"))
    assert browser.post("/logout", data={"csrf_token": token}).headers["Location"] == "/login"


def test_a_deactivated_users_session_stops_at_once(logged_in, session, runner):
    """`users deactivate` ends the browser session too: 401 on the API, login page on /."""
    browser, user = logged_in
    assert runner.invoke(args=["users", "deactivate", user.username]).exit_code == 0
    assert browser.get(ME).status_code == 401
    assert 'action="/login"' in browser.get("/").get_data(as_text=True)


def test_a_new_password_ends_the_users_browser_sessions(logged_in, session):
    """Setting a password logs the user's browsers out."""
    browser, user = logged_in
    service.set_password(session, user, "another long passphrase")
    session.commit()
    assert browser.get(ME).status_code == 401


def test_an_expired_browser_session_is_401(logged_in, session):
    """A session past its expiry answers 401."""
    browser, user = logged_in
    row = session.scalar(select(WebSession).where(WebSession.user_id == user.id))
    row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    session.commit()
    assert browser.get(ME).status_code == 401


def test_the_session_secret_is_stored_only_hashed(logged_in, session, app):
    """The database holds the SHA-256 of the cookie's secret, which is signed, not plain."""
    browser, user = logged_in
    row = session.scalar(select(WebSession).where(WebSession.user_id == user.id))
    cookie_value = browser.get_cookie(COOKIE).value
    secret = app.session_interface.get_signing_serializer(app).loads(cookie_value)["sid"]
    assert row.token_hash == service.hash_token(secret) and secret not in row.token_hash


def test_a_tampered_cookie_is_401(app):
    """A cookie not signed by the app is ignored."""
    forged = app.test_client()
    forged.set_cookie(COOKIE, "eyJzaWQiOiJ4In0.forged.signature")
    assert forged.get(ME).status_code == 401


# --- the API from a logged-in browser -------------------------------------------------------

PATIENT = {
    "study_id": "IF21-NL-888",
    "site": "NL-PMC",
    "sex": "M",
    "diagnosis": "B-ALL",
    "fusion_partner": "MLLT1",
    "diagnosis_date": "2026-01-10",
    "age_at_diagnosis_days": 300,
    "wbc_at_diagnosis": "40",
}


def test_a_logged_in_browser_reads_the_api(logged_in):
    """GET requests with the session cookie need no token and no CSRF header."""
    browser, user = logged_in
    assert browser.get(ME).json["username"] == user.username
    assert browser.get("/api/v1/patients").status_code == 200


def test_unsafe_api_calls_by_cookie_need_the_csrf_header(logged_in, session):
    """POST by cookie: no header or a wrong one is 400; the right one works and is attributed."""
    browser, user = logged_in
    assert browser.post("/api/v1/patients", json=PATIENT).status_code == 400
    wrong = browser.post("/api/v1/patients", json=PATIENT, headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 400
    right = browser.post(
        "/api/v1/patients", json=PATIENT, headers={"X-CSRF-Token": page_csrf(browser)}
    )
    assert right.status_code == 201, right.json
    actors = session.scalars(
        select(AuditRecord.actor).where(AuditRecord.entity_key == PATIENT["study_id"])
    ).all()
    assert actors and set(actors) == {user.username}


def test_a_cross_site_form_cannot_use_the_cookie(logged_in):
    """A form-encoded POST without the token (what another site could send) is refused."""
    browser, _user = logged_in
    response = browser.post("/api/v1/patients", data={"study_id": "IF21-X"})
    assert response.status_code == 400


def test_a_browser_users_role_is_enforced(browser, make_user):
    """A logged-in researcher gets 403 on patients, like with a token."""
    researcher = make_user("researcher")
    post_login(browser, researcher.username, PASSWORD)
    assert browser.get("/api/v1/patients").status_code == 403
    assert browser.get(ME).status_code == 200


def test_a_bad_bearer_token_is_not_rescued_by_a_cookie(logged_in):
    """Explicit credentials that fail are a 401 even when a valid session cookie comes along."""
    browser, _user = logged_in
    assert browser.get(ME, headers={"Authorization": "Bearer bbk_wrong"}).status_code == 401


# --- slowing down guessing ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def long_first_wait(app):  # type: ignore[no-untyped-def]
    """A first wait of 10 minutes, not 2 s: the attempt after the free ones comes within it
    however slow the machine (each attempt checks a password, and the lock starts before)."""
    app.config["LOGIN_DELAY_SECONDS"] = 600


def throttle_row(session, username: str):  # type: ignore[no-untyped-def]
    """The throttle row of a username from the test client's address."""
    return session.scalar(select(LoginThrottle).where(LoginThrottle.username == username))


def test_repeated_failures_lock_the_username_and_address(browser, make_user, session, app):
    """After the free failures, the pair is locked: even the right password gets 429."""
    user = make_user()
    free = app.config["LOGIN_FREE_FAILURES"]
    for _ in range(free - 1):
        assert post_login(browser, user.username, "wrong guess!").status_code == 401
    assert throttle_row(session, user.username).locked_until is None
    assert post_login(browser, user.username, "wrong guess!").status_code == 401
    locked = post_login(browser, user.username, PASSWORD)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= app.config["LOGIN_DELAY_SECONDS"]
    assert "Too many failed logins" in alert_of(locked)
    assert browser.get(ME).status_code == 401


def test_the_lock_is_per_address_and_case_blind(browser, make_user, app):
    """Another address may still try; "USER" and "user" share one counter."""
    user = make_user()
    for _ in range(app.config["LOGIN_FREE_FAILURES"]):
        post_login(browser, user.username.upper(), "wrong guess!")
    assert post_login(browser, user.username, PASSWORD).status_code == 429
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.99"
    assert post_login(elsewhere, user.username, PASSWORD).status_code == 302


def test_unknown_usernames_are_throttled_the_same_way(browser, app):
    """The lock does not reveal whether a username exists."""
    for _ in range(app.config["LOGIN_FREE_FAILURES"]):
        assert post_login(browser, "no-such-user", "guess guess!").status_code == 401
    assert post_login(browser, "no-such-user", "guess guess!").status_code == 429


def test_after_the_wait_a_right_password_works_and_clears_the_count(
    browser, make_user, session, app
):
    """Once the lock has passed, logging in succeeds and forgets the failures."""
    user = make_user()
    for _ in range(app.config["LOGIN_FREE_FAILURES"]):
        post_login(browser, user.username, "wrong guess!")
    row = throttle_row(session, user.username)
    row.locked_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    session.commit()
    assert post_login(browser, user.username, PASSWORD).status_code == 302
    session.expire_all()
    assert throttle_row(session, user.username) is None


def test_behind_a_trusted_proxy_each_client_has_its_own_count(browser, make_user, app):
    """BIOBANK_TRUSTED_PROXIES=1: two clients behind one proxy (one REMOTE_ADDR, their own
    X-Forwarded-For) are throttled apart; the first one's lock does not lock the second."""
    from biobank import create_app

    behind = create_app({**app.config, "TRUSTED_PROXIES": 1})
    behind.extensions.update(
        {key: value for key, value in app.extensions.items() if key.startswith("biobank.")}
    )
    user = make_user()
    first, second = behind.test_client(), behind.test_client()
    first.environ_base["HTTP_X_FORWARDED_FOR"] = "192.0.2.10"
    second.environ_base["HTTP_X_FORWARDED_FOR"] = "192.0.2.20"
    for _ in range(app.config["LOGIN_FREE_FAILURES"]):
        post_login(first, user.username, "wrong guess!")
    assert post_login(first, user.username, PASSWORD).status_code == 429
    assert post_login(second, user.username, PASSWORD).status_code == 302


def test_without_trusted_proxies_a_forwarded_address_is_ignored(browser, make_user, app):
    """By default (0 trusted proxies) X-Forwarded-For is anyone's to send: a guesser who
    changes it every time is still counted under its real address."""
    user = make_user()
    for n in range(app.config["LOGIN_FREE_FAILURES"]):
        browser.environ_base["HTTP_X_FORWARDED_FOR"] = f"198.51.100.{n}"
        post_login(browser, user.username, "wrong guess!")
    browser.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.99"
    assert post_login(browser, user.username, PASSWORD).status_code == 429
