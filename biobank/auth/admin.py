"""User administration, as admins do it through the API, the page or the command line:
create, change role and scopes, deactivate, issue and revoke tokens. Every change is an
audit record (entity ``user``) with the admin as actor, old and new values, and never a
token's clear text; the audit trail is append-only in the database.

Scopes are stored as ``users create --site`` stores them (``user_site`` rows, sub-studies
as ``user_substudy``), so the rules that read them apply to users made here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from biobank.auth import service
from biobank.auth.models import ApiToken, User, UserSite, UserSubstudy
from biobank.consent.models import Substudy
from biobank.custody.service import record_audit
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.reference.models import Site

ENTITY = "user"
TOKEN_DAYS_MAX = 3650


def state(user: User) -> dict[str, Any]:
    """What the audit trail keeps of an account: role, name, scopes, whether active."""
    return {
        "role": user.role,
        "full_name": user.full_name,
        "substudies": user.substudy_codes,
        "sites": user.site_codes,
        "active": user.active,
    }


def record(
    session: Session,
    actor: str,
    user: User,
    action: str,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """An audit record of a change to an account (entity ``user``)."""
    record_audit(
        session, actor, ENTITY, user.username, action, reason=reason, old_values=old, new_values=new
    )


def _check_substudies(session: Session, codes: list[str]) -> None:
    if not codes:
        return
    known = set(session.scalars(select(Substudy.code).where(Substudy.code.in_(codes))))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise Invalid(f"unknown sub-study {', '.join(unknown)}", field="substudies")


def _check_sites(session: Session, codes: list[str]) -> None:
    if not codes:
        return
    known = set(session.scalars(select(Site.code).where(Site.code.in_(codes))))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise Invalid(f"unknown site {', '.join(unknown)}", field="sites")


def _other_active_admins(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.active.is_(True), User.id != user.id)
        )
        or 0
    )


def _keep_an_admin(session: Session, admin: str, user: User, what: str) -> None:
    """Refuse what would leave the biobank without an active admin, or lock oneself out."""
    if user.username == admin:
        raise Conflict(f"you cannot {what} your own account: ask another admin", field="username")
    if user.role == "admin" and user.active and _other_active_admins(session, user) == 0:
        raise Conflict(f"{user.username} is the last active admin", field="username")


def list_users(session: Session) -> list[User]:
    """Every user, by name, with scopes and live tokens (``live_tokens`` set on each)."""
    users = list(
        session.scalars(
            select(User)
            .order_by(User.username)
            .options(selectinload(User.substudies), selectinload(User.sites))
        )
    )
    live: dict[int, list[ApiToken]] = {}
    for token in session.scalars(
        select(ApiToken)
        .where(
            ApiToken.revoked_at.is_(None),
            (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > utcnow()),
        )
        .order_by(ApiToken.id)
    ):
        live.setdefault(token.user_id, []).append(token)
    for user in users:
        user.live_tokens = live.get(user.id, [])  # type: ignore[attr-defined]
    return users


def get_user(session: Session, username: str) -> User:
    """A user by name, or 404."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    user.live_tokens = list_tokens(session, user)  # type: ignore[attr-defined]
    return user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    """A user's unrevoked, unexpired tokens, oldest first."""
    return list(
        session.scalars(
            select(ApiToken)
            .where(
                ApiToken.user_id == user.id,
                ApiToken.revoked_at.is_(None),
                (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > utcnow()),
            )
            .order_by(ApiToken.id)
        )
    )


def create(session: Session, admin: str, values: dict[str, Any]) -> User:
    """Create a user (role, scopes, optional password); audited."""
    substudies, sites = values.get("substudies") or [], values.get("sites") or []
    if values["role"] == "researcher" and not substudies:
        raise Invalid("a researcher must be bound to at least one sub-study", field="substudies")
    _check_substudies(session, substudies)
    _check_sites(session, sites)
    user = service.create_user(
        session,
        values["username"],
        values["role"],
        substudies=substudies,
        sites=sites,
        password=values.get("password"),
        full_name=values.get("full_name"),
    )
    record_audit(session, admin, ENTITY, user.username, "created", new_values=state(user))
    user.live_tokens = []  # type: ignore[attr-defined]
    return user


def change(session: Session, admin: str, user: User, values: dict[str, Any]) -> User:
    """Change a user's role, full name, sub-studies or sites; audited with old and new."""
    before = state(user)
    role = values.get("role", user.role)
    if role != user.role:
        _keep_an_admin(session, admin, user, "change the role of")
    substudies = values.get("substudies", user.substudy_codes)
    if role == "researcher" and not substudies:
        raise Invalid("a researcher must be bound to at least one sub-study", field="substudies")
    _check_substudies(session, substudies)
    sites = values.get("sites", user.site_codes)
    _check_sites(session, sites)
    user.role = role
    if "full_name" in values:
        user.full_name = values["full_name"]
    if sorted(substudies) != user.substudy_codes:
        user.substudies = [UserSubstudy(substudy_code=c) for c in sorted(set(substudies))]
    if sorted(sites) != user.site_codes:
        user.sites = [UserSite(site_code=c) for c in sorted(set(sites))]
    session.flush()
    after = state(user)
    changed = sorted(key for key in after if after[key] != before[key])
    if changed:
        record_audit(
            session,
            admin,
            ENTITY,
            user.username,
            "changed",
            reason=values.get("reason"),
            old_values={key: before[key] for key in changed},
            new_values={key: after[key] for key in changed},
        )
    user.live_tokens = list_tokens(session, user)  # type: ignore[attr-defined]
    return user


def deactivate(session: Session, admin: str, user: User, reason: str | None = None) -> User:
    """Deactivate a user: tokens and browser sessions stop at once; audited."""
    if not user.active:
        raise Conflict(f"{user.username} is deactivated already", field="username")
    _keep_an_admin(session, admin, user, "deactivate")
    revoked = [token.hint for token in list_tokens(session, user)]
    service.deactivate(session, user)
    record_audit(
        session,
        admin,
        ENTITY,
        user.username,
        "deactivated",
        reason=reason,
        old_values={"active": True},
        new_values={"active": False, "tokens_revoked": revoked},
    )
    user.live_tokens = []  # type: ignore[attr-defined]
    return user


def issue_token(session: Session, admin: str, user: User, days: int) -> tuple[str, ApiToken]:
    """A new token for a user: its clear text (shown once) and its row; audited by hint."""
    token = service.issue_token(session, user, days=days)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == service.hash_token(token)))
    assert row is not None
    record_audit(
        session,
        admin,
        ENTITY,
        user.username,
        "token_issued",
        new_values={"token": row.hint, "expires_at": _iso(row.expires_at)},
    )
    return token, row


def revoke_token(session: Session, admin: str, user: User, token_id: int) -> ApiToken:
    """Revoke one live token of a user (404 if it is not theirs or not live); audited."""
    token = session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if token is None or token.revoked_at is not None:
        raise NotFound(f"{user.username} has no live token {token_id}")
    token.revoked_at = utcnow()
    session.flush()
    record_audit(
        session,
        admin,
        ENTITY,
        user.username,
        "token_revoked",
        old_values={"token": token.hint},
        new_values={"revoked_at": _iso(token.revoked_at)},
    )
    return token


def revoke_all(session: Session, admin: str, user: User) -> int:
    """Revoke every live token of a user; audited with their hints."""
    hints = [token.hint for token in list_tokens(session, user)]
    count = service.revoke_tokens(session, user)
    if count:
        record_audit(
            session,
            admin,
            ENTITY,
            user.username,
            "tokens_revoked",
            old_values={"tokens": hints},
            new_values={"revoked": count},
        )
    return count


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
