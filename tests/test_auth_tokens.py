"""Bearer tokens: bad credentials, attribution, security headers, nothing secret echoed."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from biobank.auth import service
from biobank.auth.models import ApiToken
from biobank.custody.models import AuditRecord

ME = "/api/v1/me"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def token_row(session, token: str) -> ApiToken:  # type: ignore[no-untyped-def]
    """The stored row of a clear-text token."""
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == service.hash_token(token)))


def assert_unauthorised(response) -> None:  # type: ignore[no-untyped-def]
    """A 401 in the one error shape, with a Bearer challenge."""
    assert response.status_code == 401
    assert response.json["code"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_valid_token_identifies_its_user(tech):
    """GET /me with a technician's token names that technician."""
    response = tech.get(ME)
    assert response.status_code == 200
    assert response.json["username"] == tech.username
    assert response.json["role"] == "technician"


def test_a_missing_token_is_401(client):
    """No Authorization header at all."""
    assert_unauthorised(client.get(ME))


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Token bbk_abc",
        "bbk_abcdefghijklmnop",
        "Bearer bbk_not-a-real-token",
        "Bearer two words",
        "Bearer bbk_\x00\x01control",
        "Bearer\tbbk_tab",
    ],
)
def test_a_malformed_or_unknown_token_is_401(client, header):
    """Wrong scheme, empty, unknown, or with control characters: 401, never 500."""
    assert_unauthorised(client.get(ME, headers={"Authorization": header}))


def test_an_over_long_authorization_header_is_401(client, tech):
    """A huge header (even one that starts with a valid token) is refused before lookup."""
    for header in ("Bearer " + "a" * 10_000, f"Bearer {tech.token}" + " " * 600 + "x"):
        assert_unauthorised(client.get(ME, headers={"Authorization": header}))


@pytest.mark.parametrize(
    "raw", [b"Bearer \xff\xfe\xfd", b"Bearer bbk_\xc3\x28", b"Bearer \xe2\x82"]
)
def test_a_non_utf8_authorization_header_is_401(client, raw):
    """Bytes that are not UTF-8 (WSGI hands them over as latin-1) give 401, not 500."""
    response = client.get(ME, environ_overrides={"HTTP_AUTHORIZATION": raw.decode("latin-1")})
    assert_unauthorised(response)


def test_a_valid_token_with_non_ascii_junk_appended_is_401(client, tech):
    """A real token followed by non-ASCII characters does not match."""
    header = f"Bearer {tech.token}\u00e9"
    assert_unauthorised(client.get(ME, headers={"Authorization": header}))


def test_an_expired_token_is_401(tech, session):
    """A token past its expiry stops working."""
    token_row(session, tech.token).expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    session.commit()
    assert_unauthorised(tech.get(ME))


def test_a_revoked_token_is_401(tech, session):
    """Revoking a user's tokens stops them at once."""
    assert service.revoke_tokens(session, service.get_user(session, tech.username)) == 1
    session.commit()
    assert_unauthorised(tech.get(ME))


def test_a_deactivated_users_token_is_401(tech, session):
    """A deactivated user's token stops working, even if it were not revoked."""
    user = service.get_user(session, tech.username)
    user.active = False
    session.commit()
    assert_unauthorised(tech.get(ME))


def test_a_token_is_stored_only_as_its_hash(tech, session):
    """The database holds the SHA-256 and a short hint, never the token."""
    row = token_row(session, tech.token)
    assert row.token_hash == service.hash_token(tech.token) != tech.token
    assert len(row.hint) < len(tech.token) // 3 and tech.token.startswith(row.hint)


def test_a_wrong_role_is_403(as_role):
    """A consent officer may read patients but not register one."""
    officer = as_role("consent_officer")
    assert officer.get("/api/v1/patients").status_code == 200
    response = officer.post("/api/v1/patients", json={})
    assert response.status_code == 403
    assert response.json == {
        "code": 403,
        "status": "Forbidden",
        "message": "role 'consent_officer' may not do this",
    }


PATIENT = {
    "study_id": "IF21-NL-777",
    "site": "NL-PMC",
    "sex": "F",
    "diagnosis": "B-ALL",
    "fusion_partner": "AFF1",
    "diagnosis_date": "2026-01-10",
    "age_at_diagnosis_days": 120,
    "wbc_at_diagnosis": "300",
}


def test_an_actor_in_the_body_is_an_unknown_field(tech):
    """The API never takes an actor from the body: POST with "actor" is a 422."""
    response = tech.post("/api/v1/patients", json={**PATIENT, "actor": "someone-else"})
    assert response.status_code == 422
    assert "actor" in response.json["errors"]["json"]


def test_audit_records_name_the_tokens_user(tech, session):
    """Registering a patient is audited under the token's username."""
    assert tech.post("/api/v1/patients", json=PATIENT).status_code == 201
    actors = session.scalars(
        select(AuditRecord.actor).where(AuditRecord.entity_key == PATIENT["study_id"])
    ).all()
    assert actors and set(actors) == {tech.username}


def test_custody_events_name_the_tokens_user(tech, make_sample):
    """A split through the API logs events under the token's user; "actor" is refused."""
    sample = make_sample()
    url = f"/api/v1/samples/{sample.barcode}/split"
    body = {"aliquots": [{"aliquot_type": "PLASMA", "volume_ml": "0.5"}]}
    assert tech.post(url, json={**body, "actor": "mallory"}).status_code == 422
    response = tech.post(url, json=body)
    assert response.status_code == 201, response.json
    aliquot = response.json[0]["barcode"]
    status = tech.post(
        f"/api/v1/aliquots/{aliquot}/status", json={"status": "missing", "actor": "mallory"}
    )
    assert status.status_code == 422
    events = tech.get(f"/api/v1/aliquots/{aliquot}/events").json
    assert events and {e["actor"] for e in events} == {tech.username}


@pytest.mark.parametrize("how", ["json ok", "html", "401", "403", "404", "422"])
def test_every_response_carries_the_security_headers(client, tech, as_role, how):
    """Success, page, and every error status get the same security headers."""
    response = {
        "json ok": lambda: tech.get(ME),
        "html": lambda: client.get("/"),
        "401": lambda: client.get("/api/v1/patients"),
        "403": lambda: as_role("researcher").get("/api/v1/patients"),
        "404": lambda: tech.get("/api/v1/patients/NOPE"),
        "422": lambda: tech.post("/api/v1/patients", json={"bogus": 1}),
    }[how]()
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (how, name)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp


def test_a_bad_token_is_neither_logged_nor_echoed(client, tech, caplog):
    """The token sent (right or wrong) appears in no log line and no response."""
    caplog.set_level(logging.DEBUG)
    forged = "bbk_forged-" + "Z" * 30
    seen = [
        client.get(ME, headers={"Authorization": f"Bearer {forged}"}),
        client.get(ME, headers={"Authorization": f"Basic {forged}"}),
        tech.get("/api/v1/patients/NOPE"),
        tech.post("/api/v1/patients", json={"bogus": tech.token}),
    ]
    for response in seen:
        assert forged not in response.get_data(as_text=True)
        assert tech.token not in response.get_data(as_text=True)
    assert forged not in caplog.text and tech.token not in caplog.text
