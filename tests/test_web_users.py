"""The admin's users page: the API's schemas and service behind forms; the token shown on
the answer that issued it and never again."""

from __future__ import annotations

import re

from sqlalchemy import select
from web_helpers import login  # noqa: F401

from biobank.auth.models import User
from biobank.custody.models import AuditRecord


def text(response) -> str:  # type: ignore[no-untyped-def]
    """The page's text."""
    return response.get_data(as_text=True)


def test_an_admin_creates_a_user_issues_a_token_and_deactivates_them(login, client, session):
    """Create on /users, issue a token on the user's page (shown once, it works), change
    the scope, deactivate; each step audited with the admin as actor."""
    admin = login("admin")
    assert "Create a user" in text(admin.get("/users"))
    made = admin.post(
        "/users",
        {
            "username": "bench-7",
            "role": "technician",
            "full_name": "Bench Seven",
            "sites": ["NL-PMC"],
        },
    )
    assert made.status_code == 303, text(made)
    assert made.headers["Location"].endswith("/users/bench-7")
    page = text(admin.get("/users/bench-7"))
    assert "Bench Seven" in page and "NL-PMC" in page
    issued = admin.post("/users/bench-7/tokens", {"days": "30"})
    assert issued.status_code == 201
    token = re.search(r'id="token-value"[^>]*value="(bbk_[^"]+)"', text(issued)).group(1)
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json["username"]
        == "bench-7"
    )
    assert token not in text(admin.get("/users/bench-7"))
    assert token[:10] in text(admin.get("/users/bench-7"))
    changed = admin.post(
        "/users/bench-7/change",
        {"role": "technician", "sites": [], "reason": "works at every site now"},
    )
    assert changed.status_code == 303, text(changed)
    gone = admin.post("/users/bench-7/deactivate", {"reason": "left the lab"})
    assert gone.status_code == 303, text(gone)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    user = session.scalar(select(User).where(User.username == "bench-7"))
    assert (user.active, user.site_codes) == (False, [])
    records = session.execute(
        select(AuditRecord.action, AuditRecord.actor)
        .where(AuditRecord.entity_type == "user", AuditRecord.entity_key == "bench-7")
        .order_by(AuditRecord.id)
    ).all()
    assert records == [
        ("created", admin.username),
        ("token_issued", admin.username),
        ("changed", admin.username),
        ("deactivated", admin.username),
    ]


def test_a_refused_creation_is_shown_on_the_form(login):
    """A researcher without a sub-study: the form again, the reason, a 422."""
    admin = login("admin")
    answer = admin.post("/users", {"username": "r-9", "role": "researcher"})
    assert answer.status_code == 422
    assert "sub-study" in text(answer) and 'value="r-9"' in text(answer)


def test_only_admins_see_the_users_pages(login):
    """Managers and the other roles: 403 on the pages and no Users link."""
    manager = login("manager")
    assert manager.get("/users").status_code == 403
    assert manager.post("/users", {"username": "x", "role": "admin"}).status_code == 403
    assert 'href="/users"' not in text(manager.get("/"))
    assert 'href="/users"' in text(login("admin").get("/"))
