"""The permission matrix: its docs, and the whole URL map walked anonymously and by role."""

from __future__ import annotations

import re

import pytest

from biobank import create_app
from biobank.auth import service as auth_service
from biobank.auth.models import ROLES
from biobank.auth.permissions import DOC_PATH, MATRIX, PUBLIC, render_into, requires
from biobank.auth.web import route_permissions
from biobank.db import bind_to_connection

# The routes anyone may call: front page, login/logout, health, OpenAPI document and docs.
PUBLIC_PATHS = {
    "/",
    "/login",
    "/logout",
    "/health",
    "/api/openapi.json",
    "/api/docs",
    "/api/docs/static/<path:filename>",
    "/static/<path:filename>",
    # FHIR clients read the CapabilityStatement before they authenticate.
    "/fhir/metadata",
}


def dummy_url(path: str) -> str:
    """The path with every parameter filled by a value that names nothing."""
    return re.sub(r"<[^>]+>", "NO-SUCH-0", path)


def call(client, method: str, url: str, headers=None):  # type: ignore[no-untyped-def]
    """One request; unsafe methods carry an empty JSON body."""
    body = {} if method not in {"GET", "DELETE"} else None
    return client.open(url, method=method, headers=headers or {}, json=body)


@pytest.fixture
def routes(app):  # type: ignore[no-untyped-def]
    """Every (path, method, action) of the app, HEAD and OPTIONS aside."""
    found = route_permissions(app)
    assert len(found) > 30, "the URL map looks empty"
    return found


def test_the_permissions_page_shows_the_current_matrix():
    """docs/permissions.md holds exactly the table matrix_markdown() renders now."""
    text = DOC_PATH.read_text(encoding="utf-8")
    assert render_into(text) == text, (
        "docs/permissions.md is stale: run `python -m biobank.auth.permissions`"
    )


def test_the_permissions_page_states_what_researchers_see():
    """The docs say researchers get pseudonymised data only and are refused patient data."""
    text = DOC_PATH.read_text(encoding="utf-8")
    assert "pseudonymised data only" in text
    assert "Researchers" in text and "404" in text


def test_every_role_of_the_matrix_exists_and_every_action_is_described():
    """The matrix names only known roles; each action has a description for the docs."""
    from biobank.auth.permissions import ACTION_DESCRIPTIONS

    for action, roles in MATRIX.items():
        assert roles <= set(ROLES), action
        assert ACTION_DESCRIPTIONS[action], action


def test_an_unknown_action_cannot_be_declared():
    """@requires with an action missing from the matrix fails at import time."""
    with pytest.raises(KeyError, match="permission matrix"):
        requires("patients:everything")


def test_every_route_declares_a_permission(routes):
    """Walking the whole URL map: no route lacks a declared action."""
    undeclared = [(path, method) for path, method, action in routes if action is None]
    assert undeclared == []


def test_the_public_routes_are_exactly_the_expected_ones(routes):
    """Only the front page, login/logout, health, the OpenAPI document and docs, and the FHIR
    CapabilityStatement are public."""
    public = {path for path, _method, action in routes if action == PUBLIC}
    assert public == PUBLIC_PATHS


def test_a_route_without_a_declared_permission_is_refused_to_everyone(
    connection, database_url, session
):
    """A view without @requires is flagged by the walk and refused even to an admin."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    app.add_url_rule("/undeclared", "undeclared", lambda: "secret")
    bind_to_connection(app, connection)
    assert ("/undeclared", "GET", None) in route_permissions(app)
    admin = auth_service.create_user(session, "admin-undeclared", "admin")
    token = auth_service.issue_token(session, admin)
    session.commit()
    client = app.test_client()
    assert (
        client.get("/undeclared", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    )
    assert client.get("/undeclared").status_code == 401
    app.extensions["biobank.engine"].dispose()


def test_anonymous_requests_to_every_non_public_route_are_401(client, routes):
    """Without a token every non-public route answers 401, dummy parameters or not."""
    wrong = []
    for path, method, action in routes:
        if action == PUBLIC:
            continue
        response = call(client, method, dummy_url(path))
        if response.status_code != 401 or "WWW-Authenticate" not in response.headers:
            wrong.append((method, path, response.status_code))
    assert wrong == []


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/v1/no-such-thing"),
        ("GET", "/no-such-page"),
        ("DELETE", "/api/v1/patients"),
        ("POST", "/api/v1/scan/X"),
        ("GET", "/api/v1/patients/NO-SUCH/nothing"),
    ],
)
def test_anonymous_requests_to_unknown_urls_and_methods_are_401(client, method, url):
    """An unmatched URL or a wrong method says nothing to a caller without a token."""
    assert call(client, method, url).status_code == 401


def test_anonymous_callers_reach_the_public_routes(client, routes):
    """Public routes never answer 401 or 403 to a caller without a token."""
    for path, method, action in routes:
        if action == PUBLIC:
            assert call(client, method, dummy_url(path)).status_code not in {401, 403}, path


def test_every_role_gets_403_exactly_where_the_matrix_refuses_it(as_role, routes):
    """For each role x route: 403 if and only if the matrix leaves the role out."""
    wrong = []
    for role in ROLES:
        user = as_role(role)
        for path, method, action in routes:
            response = call(user.client, method, dummy_url(path), headers=user.headers)
            may = role in MATRIX[action]
            if may and response.status_code in {401, 403}:
                wrong.append((role, method, path, response.status_code, "should be allowed"))
            if not may and response.status_code != 403:
                wrong.append((role, method, path, response.status_code, "should be 403"))
    assert wrong == []


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/patients",
        "/api/v1/samples",
        "/api/v1/aliquots",
        "/api/v1/scan/IF00000001",
        "/api/v1/aliquots/X/events",
    ],
)
def test_researchers_are_refused_identifiable_material(as_role, url):
    """A researcher sees no patients, samples, aliquots, custody events or scans (403)."""
    researcher = as_role("researcher", substudies=["DEMO"])
    response = researcher.get(url)
    assert response.status_code == 403
    assert response.json["message"] == "role 'researcher' may not do this"


def test_a_researcher_reads_reference_data_and_their_own_account(as_role):
    """What a researcher may do today: reference data and /me, with their sub-studies."""
    researcher = as_role("researcher", substudies=["DEMO", "EPI"])
    assert researcher.get("/api/v1/sites").status_code == 200
    assert researcher.get("/api/v1/me").json["substudies"] == ["DEMO", "EPI"]
