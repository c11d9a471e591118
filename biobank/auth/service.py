"""Users and tokens: creation, lookup by bearer token, revocation."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from biobank.auth.models import ROLES, ApiToken, User, UserSite, UserSubstudy
from biobank.db import utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.reference.models import Site

TOKEN_PREFIX = "bbk_"


def hash_token(token: str) -> str:
    """The stored form of a token (tokens are random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, username: str, role: str, *, substudies: list[str] = (),
                sites: list[str] = (), password: str | None = None,
                full_name: str | None = None) -> User:
    """Create a user with a role and optional sub-study and site scopes."""
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}; one of {', '.join(ROLES)}", field="role")
    if role == "researcher" and not substudies:
        raise Invalid("a researcher must be bound to at least one sub-study", field="substudy")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", field="username")
    for code in sites:
        if session.scalar(select(Site.id).where(Site.code == code)) is None:
            raise Invalid(f"unknown site {code!r}", field="site")
    user = User(username=username, role=role, full_name=full_name,
                password_hash=generate_password_hash(password) if password else None)
    user.substudies = [UserSubstudy(substudy_code=c) for c in substudies]
    user.sites = [UserSite(site_code=c) for c in sites]
    session.add(user)
    session.flush()
    return user


def issue_token(session: Session, user: User, *, days: int | None = 365) -> str:
    """Create a token for a user; the only time its clear text exists."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=days) if days else None
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), hint=token[:10],
                         expires_at=expires))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a valid, unexpired, unrevoked token belongs to, else None."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row.user


def get_user(session: Session, username: str) -> User:
    """A user by name, or NotFound."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return user


def revoke_tokens(session: Session, user: User) -> int:
    """Revoke every live token of a user; returns how many."""
    result = session.execute(
        update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount or 0


def rotate_token(session: Session, user: User, *, days: int | None = 365) -> str:
    """Revoke a user's tokens and issue a new one."""
    revoke_tokens(session, user)
    return issue_token(session, user, days=days)


def deactivate(session: Session, user: User) -> None:
    """Deactivate a user: tokens stop working at once, history keeps the name."""
    user.active = False
    revoke_tokens(session, user)
    session.flush()


def set_password(session: Session, user: User, password: str) -> None:
    """Set a user's password (scrypt through werkzeug)."""
    user.password_hash = generate_password_hash(password)
    session.flush()


def check_password(user: User | None, password: str) -> bool:
    """Whether a password matches; the same work is done for an unknown user."""
    if user is None or not user.password_hash or not user.active:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    # Hashing for unknown users too keeps the answer time from telling names apart.
    return generate_password_hash(secrets.token_hex(8))
