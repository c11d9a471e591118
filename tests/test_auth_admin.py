"""User administration in the service: admins create users, list them, change role and
scopes, deactivate, issue and revoke tokens (a token shown once), through the API; every
change is an audit record with the admin as actor."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from biobank.auth.models import ApiToken, User
from biobank.consent.service import create_substudy
from biobank.custody.models import AuditRecord
from biobank.reference.models import Site

USERS = "/api/v1/users"


@pytest.fixture
def admin(as_role):  # type: ignore[no-untyped-def]
    """An admin."""
    return as_role("admin")


@pytest.fixture(autouse=True)
def kiel(session):  # type: ignore[no-untyped-def]
    """Site DE-KIEL beside the default NL-PMC."""
    session.add(Site(code="DE-KIEL", name="Kiel", country="DE"))
    session.commit()


@pytest.fixture
def substudy(session):  # type: ignore[no-untyped-def]
    """Sub-study GENOME."""
    create_substudy(
        session, "setup", {"code": "GENOME", "title": "Genome", "principal_investigator": "Dr. P"}
    )
    session.commit()
    return "GENOME"


def trail(session, username: str) -> list[AuditRecord]:  # type: ignore[no-untyped-def]
    """The audit records of a user account, oldest first."""
    return list(
        session.scalars(
            select(AuditRecord)
            .where(AuditRecord.entity_type == "user", AuditRecord.entity_key == username)
            .order_by(AuditRecord.id)
        )
    )


def test_an_admin_creates_a_user_and_issues_a_token_shown_once(admin, client, session):
    """POST /users then POST /users/{name}/tokens: the token works, is stored only hashed,
    and appears in no later answer; both steps are audited with the admin as actor."""
    made = admin.post(
        USERS,
        json={
            "username": "kiel-tech",
            "role": "technician",
            "sites": ["DE-KIEL"],
            "full_name": "Kim Tech",
        },
    )
    assert made.status_code == 201, made.json
    assert (made.json["role"], made.json["sites"], made.json["tokens"]) == (
        "technician",
        ["DE-KIEL"],
        [],
    )
    issued = admin.post(f"{USERS}/kiel-tech/tokens", json={"days": 30})
    assert issued.status_code == 201, issued.json
    token = issued.json["token"]
    assert token.startswith("bbk_") and issued.json["hint"] == token[:10]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json["username"] == "kiel-tech" and me.json["sites"] == ["DE-KIEL"]
    listed = admin.get(USERS).json
    assert token not in str(listed)
    [row] = [u for u in listed if u["username"] == "kiel-tech"]
    assert [t["hint"] for t in row["tokens"]] == [token[:10]]
    assert session.scalar(select(ApiToken.token_hash).where(ApiToken.hint == token[:10])) != token
    records = trail(session, "kiel-tech")
    assert [(r.action, r.actor) for r in records] == [
        ("created", admin.username),
        ("token_issued", admin.username),
    ]
    assert records[0].new_values["sites"] == ["DE-KIEL"]
    assert token not in str([(r.old_values, r.new_values) for r in records])


def test_scopes_are_stored_as_the_command_line_stores_them(admin, session):
    """A user made through the API has the same user_site rows as `users create --site`."""
    admin.post(
        USERS, json={"username": "scoped", "role": "technician", "sites": ["DE-KIEL", "NL-PMC"]}
    )
    user = session.scalar(select(User).where(User.username == "scoped"))
    assert user.site_codes == ["DE-KIEL", "NL-PMC"]


def test_changing_role_and_scopes_is_audited_with_old_and_new_values(admin, session, substudy):
    """PATCH /users/{name}: role, sites and sub-studies change; the audit record holds only
    what changed, before and after, and the reason."""
    admin.post(USERS, json={"username": "mover", "role": "technician"})
    changed = admin.patch(
        f"{USERS}/mover",
        json={
            "role": "researcher",
            "substudies": [substudy],
            "sites": ["NL-PMC"],
            "reason": "joined the genome sub-study",
        },
    )
    assert changed.status_code == 200, changed.json
    assert (changed.json["role"], changed.json["substudies"], changed.json["sites"]) == (
        "researcher",
        [substudy],
        ["NL-PMC"],
    )
    record = trail(session, "mover")[-1]
    assert (record.action, record.actor, record.reason) == (
        "changed",
        admin.username,
        "joined the genome sub-study",
    )
    assert record.old_values == {"role": "technician", "sites": [], "substudies": []}
    assert record.new_values == {
        "role": "researcher",
        "sites": ["NL-PMC"],
        "substudies": [substudy],
    }


def test_a_role_change_applies_to_the_next_request(admin, as_role):
    """A technician made manager may register a printer at once; made researcher, may not
    read patients."""
    tech = as_role("technician")
    assert tech.get("/api/v1/printers").status_code == 200
    admin.post(f"{USERS}/{tech.username}/tokens", json={})
    assert admin.patch(f"{USERS}/{tech.username}", json={"role": "manager"}).status_code == 200
    assert tech.post("/api/v1/printers", json={"name": "Z", "host": "10.0.0.9"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"username": "x y", "role": "technician"}, 422, "username"),
        ({"username": "r1", "role": "researcher"}, 422, "substudies"),
        ({"username": "r1", "role": "researcher", "substudies": ["NOPE"]}, 422, "substudies"),
        ({"username": "t1", "role": "technician", "sites": ["XX-NONE"]}, 422, "sites"),
        ({"username": "t1", "role": "root"}, 422, "role"),
        ({"username": "t1", "role": "technician", "password": "short"}, 422, "password"),
        ({"username": "t1", "role": "technician", "is_admin": True}, 422, "is_admin"),
    ],
)
def test_bad_user_creations_are_422s_naming_the_field(admin, session, body, status, field):
    """Bad names, researchers without a (known) sub-study, unknown sites and roles, short
    passwords, unknown fields: refused, nothing created, nothing audited."""
    response = admin.post(USERS, json=body)
    assert response.status_code == status, response.json
    assert field in str(response.json["errors"])
    assert session.scalar(select(User).where(User.username == body["username"])) is None


def test_a_taken_username_is_a_409(admin):
    """Two users of one name: the second is a 409."""
    admin.post(USERS, json={"username": "twice", "role": "technician"})
    again = admin.post(USERS, json={"username": "twice", "role": "manager"})
    assert again.status_code == 409


def test_deactivating_stops_tokens_at_once_and_is_audited(admin, as_role, session):
    """POST /users/{name}/deactivate: the user's token is refused from the next request;
    the record names the revoked tokens by hint."""
    tech = as_role("technician")
    answer = admin.post(f"{USERS}/{tech.username}/deactivate", json={"reason": "left"})
    assert answer.status_code == 200, answer.json
    assert answer.json["active"] is False and answer.json["tokens"] == []
    assert tech.get("/api/v1/me").status_code == 401
    record = trail(session, tech.username)[-1]
    assert (record.action, record.actor, record.reason) == ("deactivated", admin.username, "left")
    assert record.new_values["tokens_revoked"] == [tech.token[:10]]
    assert admin.post(f"{USERS}/{tech.username}/deactivate", json={}).status_code == 409
    assert admin.post(f"{USERS}/{tech.username}/tokens", json={}).status_code == 409


def test_revoking_one_token_or_all(admin, as_role, client, session):
    """One token revoked by id (the other still works); then all; both audited."""
    tech = as_role("technician")
    second = admin.post(f"{USERS}/{tech.username}/tokens", json={}).json
    revoked = admin.post(f"{USERS}/{tech.username}/tokens/{second['id']}/revoke")
    assert revoked.status_code == 200, revoked.json
    second_client = {"Authorization": f"Bearer {second['token']}"}
    assert client.get("/api/v1/me", headers=second_client).status_code == 401
    assert tech.get("/api/v1/me").status_code == 200
    assert admin.post(f"{USERS}/{tech.username}/tokens/{second['id']}/revoke").status_code == 404
    everything = admin.post(f"{USERS}/{tech.username}/tokens/revoke")
    assert everything.json == {"revoked": 1}
    assert tech.get("/api/v1/me").status_code == 401
    assert [r.action for r in trail(session, tech.username)] == [
        "token_issued",
        "token_revoked",
        "tokens_revoked",
    ]


def test_a_token_of_another_user_cannot_be_revoked_through_this_one(admin, as_role):
    """Token ids are per user: revoking someone else's token by id is a 404."""
    one, other = as_role("technician"), as_role("technician")
    theirs = admin.post(f"{USERS}/{other.username}/tokens", json={}).json
    assert admin.post(f"{USERS}/{one.username}/tokens/{theirs['id']}/revoke").status_code == 404
    assert admin.post(f"{USERS}/{one.username}/tokens/x1/revoke").status_code == 404


def test_admins_cannot_lock_themselves_or_everyone_out(admin, session):
    """An admin cannot deactivate or demote themself; the last active admin stays one."""
    assert admin.post(f"{USERS}/{admin.username}/deactivate", json={}).status_code == 409
    assert admin.patch(f"{USERS}/{admin.username}", json={"role": "manager"}).status_code == 409
    user = session.scalar(select(User).where(User.username == admin.username))
    assert (user.role, user.active) == ("admin", True)


@pytest.mark.parametrize("role", ["technician", "researcher", "consent_officer", "manager"])
def test_only_admins_administer_users(as_role, role):
    """Every user-administration route is a 403 for every other role."""
    them = as_role(role)
    for method, url in (
        ("get", USERS),
        ("post", USERS),
        ("get", f"{USERS}/{them.username}"),
        ("patch", f"{USERS}/{them.username}"),
        ("post", f"{USERS}/{them.username}/deactivate"),
        ("post", f"{USERS}/{them.username}/tokens"),
        ("post", f"{USERS}/{them.username}/tokens/1/revoke"),
        ("post", f"{USERS}/{them.username}/tokens/revoke"),
    ):
        kwargs = {"json": {"role": "admin"}} if method in ("post", "patch") else {}
        assert getattr(them, method)(url, **kwargs).status_code == 403, (method, url)
    assert them.get("/api/v1/me").json["role"] == role


def test_unknown_users_are_404s(admin):
    """A name that is no user: 404 on every route that names one."""
    assert admin.get(f"{USERS}/nobody").status_code == 404
    assert admin.patch(f"{USERS}/nobody", json={"role": "manager"}).status_code == 404
    assert admin.post(f"{USERS}/nobody/tokens", json={}).status_code == 404


def test_command_line_changes_are_audited_too(runner, session):
    """`users create`, `rotate`, `deactivate`: audit records with the operating-system user
    as actor, and no token in them."""
    import getpass

    created = runner.invoke(
        args=["users", "create", "cli-tech", "--role", "technician", "--site", "NL-PMC"]
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    for command in (["users", "rotate", "cli-tech"], ["users", "deactivate", "cli-tech"]):
        assert runner.invoke(args=command).exit_code == 0
    records = trail(session, "cli-tech")
    assert [r.action for r in records] == [
        "created",
        "token_issued",
        "token_rotated",
        "deactivated",
    ]
    assert {r.actor for r in records} == {f"cli:{getpass.getuser()}"}
    assert records[0].new_values["sites"] == ["NL-PMC"]
    assert token not in str([(r.old_values, r.new_values) for r in records])
