"""`flask users ...`: every command through the CLI runner, and what its tokens can do."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from biobank.auth import service
from biobank.auth.models import ApiToken, User

ME = "/api/v1/me"


def run(runner, *args: str, **kw):  # type: ignore[no-untyped-def]
    """Invoke `flask users ARGS...`."""
    return runner.invoke(args=["users", *args], **kw)


def last_line(result) -> str:  # type: ignore[no-untyped-def]
    """The last line a command printed on stdout."""
    return result.stdout.strip().splitlines()[-1]


def me(client, token: str):  # type: ignore[no-untyped-def]
    """GET /me with a bearer token."""
    return client.get(ME, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def create(runner):  # type: ignore[no-untyped-def]
    """`users create NAME --role ROLE ...`, asserted to succeed; returns the token."""

    def make(username: str, role: str = "technician", *options: str) -> str:
        result = run(runner, "create", username, "--role", role, *options)
        assert result.exit_code == 0, result.output
        return last_line(result)

    return make


def test_create_prints_a_working_token_as_the_last_line(runner, client, session):
    """The token printed last authenticates as the new user; only its hash is stored."""
    result = run(runner, "create", "olga", "--role", "consent_officer", "--full-name", "Olga O")
    assert result.exit_code == 0, result.output
    token = last_line(result)
    assert token.startswith("bbk_") and len(token) > 40
    assert me(client, token).json == {
        "username": "olga",
        "role": "consent_officer",
        "full_name": "Olga O",
        "substudies": [],
        "sites": [],
    }
    row = session.scalar(select(ApiToken).join(User).where(User.username == "olga"))
    assert row.token_hash == service.hash_token(token) and token not in (row.token_hash, row.hint)


def test_create_binds_a_researcher_to_substudies_and_a_user_to_sites(create, client):
    """--substudy (repeatable) and --site are recorded and shown by /me."""
    token = create(
        "rita", "researcher", "--substudy", "EPI", "--substudy", "DEMO", "--site", "NL-PMC"
    )
    answer = me(client, token).json
    assert answer["substudies"] == ["DEMO", "EPI"] and answer["sites"] == ["NL-PMC"]


def test_the_token_expires_after_the_days_given(create, session):
    """--days sets the expiry; the default is a year."""
    create("dora", "technician", "--days", "7")
    create("yuri", "technician")
    now = dt.datetime.now(dt.UTC)
    for name, days in (("dora", 7), ("yuri", 365)):
        row = session.scalar(select(ApiToken).join(User).where(User.username == name))
        assert abs(row.expires_at - (now + dt.timedelta(days=days))) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["rex", "--role", "researcher"], 1, "at least one sub-study"),
        (["rex", "--role", "wizard"], 2, "wizard"),
        (["rex", "--role", "technician", "--site", "XX-NOPE"], 1, "unknown site"),
        (["bad name", "--role", "technician"], 1, "username"),
        (["x" * 65, "--role", "technician"], 1, "username"),
        (["rex", "--role", "technician", "--days", "0"], 2, "--days"),
        (["rex"], 2, "--role"),
    ],
)
def test_create_refuses_bad_input(runner, session, args, code, message):
    """A refused create exits non-zero, says why on stderr, and leaves no user behind."""
    result = run(runner, "create", *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "bbk_" not in result.output
    assert session.scalar(select(User).where(User.username == args[0])) is None


def test_create_refuses_a_taken_username(create, runner):
    """Creating an existing user is refused."""
    create("sam")
    result = run(runner, "create", "sam", "--role", "manager")
    assert result.exit_code == 1 and "already exists" in result.stderr


def test_list_shows_roles_scopes_state_and_token_hints(create, runner):
    """`users list`: a header, then one row per user; tokens only by their hint."""
    token = create("amy", "researcher", "--substudy", "EPI", "--site", "NL-PMC")
    create("ben", "admin")
    run(runner, "deactivate", "ben")
    result = run(runner, "list")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["username", "role", "substudies", "sites", "state", "tokens"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["amy"] == ["amy", "researcher", "EPI", "NL-PMC", "active", token[:10] + "..."]
    assert by_name["ben"] == ["ben", "admin", "-", "-", "inactive", "-"]
    assert token not in result.output


def test_revoke_stops_every_token_of_the_user(create, runner, client):
    """`users revoke NAME` revokes all their tokens and says how many."""
    first = create("cid")
    second = last_line(run(runner, "rotate", "cid"))
    result = run(runner, "revoke", "cid")
    assert result.exit_code == 0 and "revoked 1 token(s) of cid" in result.stdout
    assert me(client, first).status_code == 401 and me(client, second).status_code == 401


def test_rotate_replaces_the_token(create, runner, client):
    """`users rotate NAME` revokes the old token and prints a new one last."""
    old = create("dan")
    result = run(runner, "rotate", "dan", "--days", "30")
    assert result.exit_code == 0, result.output
    new = last_line(result)
    assert new.startswith("bbk_") and new != old
    assert me(client, old).status_code == 401
    assert me(client, new).json["username"] == "dan"


def test_deactivate_stops_the_user_and_rotate_cannot_revive_them(create, runner, client):
    """A deactivated user's token fails; rotating their token is refused."""
    token = create("eve")
    result = run(runner, "deactivate", "eve")
    assert result.exit_code == 0 and "deactivated eve" in result.stdout
    assert me(client, token).status_code == 401
    refused = run(runner, "rotate", "eve")
    assert refused.exit_code == 1 and "deactivated" in refused.stderr
    assert "bbk_" not in refused.output


@pytest.mark.parametrize("command", ["revoke", "rotate", "deactivate", "set-password"])
def test_commands_on_an_unknown_user_fail_cleanly(runner, command):
    """Naming a user who does not exist: exit 1 and a message, no traceback."""
    extra = ["--password", "a long enough passphrase"] if command == "set-password" else []
    result = run(runner, command, "nobody", *extra)
    assert result.exit_code == 1
    assert "no user 'nobody'" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_set_password_prompts_twice_and_enables_the_login_page(create, runner, app):
    """`users set-password NAME` asks for the password (hidden, confirmed); login then works."""
    create("fay")
    result = run(
        runner, "set-password", "fay", input="a long enough passphrase\na long enough passphrase\n"
    )
    assert result.exit_code == 0, result.output
    assert "a long enough passphrase" not in result.stdout
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = browser.post(
        "/login",
        data={"username": "fay", "csrf_token": csrf, "password": "a long enough passphrase"},
    )
    assert response.status_code == 302


def test_set_password_refuses_a_short_password(create, runner):
    """A password shorter than the minimum is refused."""
    create("gus")
    result = run(runner, "set-password", "gus", "--password", "short")
    assert result.exit_code == 1 and "at least 12 characters" in result.stderr
