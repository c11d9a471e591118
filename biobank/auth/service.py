"""Users, API tokens and browser sessions: creation, lookup, revocation, passwords."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from biobank.auth.models import ROLES, ApiToken, User, UserSite, UserSubstudy, WebSession
from biobank.db import json_rows, json_timestamp, json_value, utcnow
from biobank.errors import Conflict, Invalid, NotFound
from biobank.reference.models import Site

TOKEN_PREFIX = "bbk_"
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
PASSWORD_MIN = 12
# Longer input is refused before hashing: scrypt over megabytes is a cheap denial of service.
PASSWORD_MAX = 1024


def hash_token(token: str) -> str:
    """The stored form of a token (tokens are random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session,
    username: str,
    role: str,
    *,
    substudies: list[str] = (),
    sites: list[str] = (),
    password: str | None = None,
    full_name: str | None = None,
) -> User:
    """Create a user with a role and optional sub-study and site scopes."""
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}; one of {', '.join(ROLES)}", field="role")
    if not USERNAME.fullmatch(username):
        raise Invalid(
            "a username is 1-64 letters, digits or . _ @ - (starting with a letter or digit)",
            field="username",
        )
    if role == "researcher" and not substudies:
        raise Invalid("a researcher must be bound to at least one sub-study", field="substudy")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists", field="username")
    for code in sites:
        if session.scalar(select(Site.id).where(Site.code == code)) is None:
            raise Invalid(f"unknown site {code!r}", field="site")
    user = User(
        username=username,
        role=role,
        full_name=full_name,
        password_hash=_password_hash(password) if password else None,
    )
    user.substudies = [UserSubstudy(substudy_code=c) for c in substudies]
    user.sites = [UserSite(site_code=c) for c in sites]
    session.add(user)
    session.flush()
    return user


def issue_token(session: Session, user: User, *, days: int | None = 365) -> str:
    """Create a token for a user; the only time its clear text exists."""
    if not user.active:
        raise Conflict(f"user {user.username!r} is deactivated", field="username")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=days) if days else None
    session.add(
        ApiToken(user_id=user.id, token_hash=hash_token(token), hint=token[:10], expires_at=expires)
    )
    session.flush()
    return token


class Asker(NamedTuple):
    """Who is asking, as authentication reads it; the whole ``User`` is loaded only by the
    requests that need more (``biobank.auth.web.current_user``)."""

    id: int
    username: str
    role: str
    # The sites the user is limited to (empty: every site; ``biobank.auth.scope``).
    sites: tuple[str, ...] = ()
    # A researcher's sub-studies, read where they limit what is seen (the requests:
    # ``biobank.requests.askers``); empty elsewhere.
    substudies: tuple[str, ...] = ()

    @property
    def researcher(self) -> bool:
        """Whether the asker is a researcher (who sees their own sub-studies' requests only)."""
        return self.role == "researcher"


def _site_codes(user_id: ColumnElement[int]) -> ScalarSelect[Any]:
    """A user's sites as one JSON value (a list of ``{"code": …}``; None or [] for none)."""
    return (
        select(json_rows(code=UserSite.site_code))
        .where(UserSite.user_id == user_id)
        .scalar_subquery()
    )


def _codes(rows: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(sorted(r["code"] for r in rows or () if r["code"] is not None))


# Built once, read as a plain row: every API request runs it.
_TOKEN_ASKER = (
    select(
        User.id,
        User.username,
        User.role,
        User.active,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        _site_codes(User.id).label("sites"),
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def asker_for_token(session: Session, token: str) -> Asker | None:
    """Who owns a valid, unexpired, unrevoked token of an active user, else None."""
    return asker_for_hash(session, hash_token(token))


def asker_for_hash(session: Session, token_hash: str) -> Asker | None:
    """``asker_for_token`` for a token already hashed."""
    row = session.connection().execute(_TOKEN_ASKER, {"token_hash": token_hash}).first()
    return (
        None
        if row is None
        else _valid(
            row.id,
            row.username,
            row.role,
            row.active,
            row.revoked_at,
            row.expires_at,
            _codes(row.sites),
        )
    )


def _valid(
    user_id: int,
    username: str,
    role: str,
    active: bool,
    revoked_at: dt.datetime | None,
    expires_at: dt.datetime | None,
    sites: tuple[str, ...],
) -> Asker | None:
    if revoked_at is not None or not active:
        return None
    if expires_at is not None and expires_at <= utcnow():
        return None
    return Asker(user_id, username, role, sites)


def asker_column(token_hash: ColumnElement[str]) -> ScalarSelect[Any]:
    """The owner of the token ``token_hash`` as one JSON value of the enclosing statement
    (read back by ``asker_of``): a busy read-only view checks its caller in its own
    statement (``biobank.auth.web.checks_token_itself``)."""
    return (
        select(
            json_rows(
                id=User.id,
                username=User.username,
                role=User.role,
                active=User.active,
                revoked_at=ApiToken.revoked_at,
                expires_at=ApiToken.expires_at,
                sites=json_value(_site_codes(User.id)),
            )
        )
        .select_from(ApiToken)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash)
        .scalar_subquery()
    )


def asker_of(rows: list[dict[str, Any]] | None) -> Asker | None:
    """The asker of ``asker_column``'s value, by the rules of ``asker_for_token``."""
    if not rows:
        return None
    [row] = rows
    return _valid(
        row["id"],
        row["username"],
        row["role"],
        bool(row["active"]),
        json_timestamp(row["revoked_at"]),
        json_timestamp(row["expires_at"]),
        _codes(row["sites"]),
    )


def live_token_hints(session: Session) -> dict[int, list[str]]:
    """The hints of every unexpired, unrevoked token, by user id."""
    rows = session.execute(
        select(ApiToken.user_id, ApiToken.hint)
        .where(
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()),
        )
        .order_by(ApiToken.id)
    )
    hints: dict[int, list[str]] = {}
    for user_id, hint in rows:
        hints.setdefault(user_id, []).append(hint)
    return hints


def get_user(session: Session, username: str) -> User:
    """A user by name, or NotFound."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}", field="username")
    return user


def revoke_tokens(session: Session, user: User) -> int:
    """Revoke every live token of a user; returns how many."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount or 0


def rotate_token(session: Session, user: User, *, days: int | None = 365) -> str:
    """Revoke a user's tokens and issue a new one."""
    revoke_tokens(session, user)
    return issue_token(session, user, days=days)


def deactivate(session: Session, user: User) -> None:
    """Deactivate a user: tokens and browser sessions stop at once; history keeps the name."""
    user.active = False
    revoke_tokens(session, user)
    end_web_sessions(session, user)
    session.flush()


def _password_hash(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise Invalid(f"a password needs at least {PASSWORD_MIN} characters", field="password")
    if len(password) > PASSWORD_MAX:
        raise Invalid(f"a password has at most {PASSWORD_MAX} characters", field="password")
    return generate_password_hash(password, method="scrypt")


def set_password(session: Session, user: User, password: str) -> None:
    """Set a user's password (scrypt through werkzeug); their browser sessions end."""
    user.password_hash = _password_hash(password)
    end_web_sessions(session, user)
    session.flush()


def check_password(user: User | None, password: str) -> bool:
    """Whether a password matches; the same work is done for an unknown user."""
    if len(password) > PASSWORD_MAX:
        password = password[:PASSWORD_MAX]
        user = None
    if user is None or not user.password_hash or not user.active:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)


def user_for_password(session: Session, username: str, password: str) -> User | None:
    """The active user a username and password belong to, else None (whatever was wrong)."""
    user = None
    if USERNAME.fullmatch(username):
        user = session.scalar(select(User).where(User.username == username))
    return user if check_password(user, password) else None


def start_web_session(session: Session, user: User, *, hours: int) -> str:
    """Open a browser session; returns the secret its cookie carries (stored only hashed)."""
    now = utcnow()
    # Tidy this user's finished sessions rather than let the table grow forever.
    session.execute(
        delete(WebSession).where(
            WebSession.user_id == user.id,
            or_(WebSession.ended_at.is_not(None), WebSession.expires_at <= now),
        )
    )
    secret = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            user_id=user.id,
            token_hash=hash_token(secret),
            created_at=now,
            expires_at=now + dt.timedelta(hours=hours),
        )
    )
    session.flush()
    return secret


def user_for_web_session(session: Session, secret: str) -> User | None:
    """The active user of a live browser session, else None."""
    row = session.scalar(select(WebSession).where(WebSession.token_hash == hash_token(secret)))
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        return None
    return row.user if row.user.active else None


def end_web_session(session: Session, secret: str) -> None:
    """End one browser session (logout)."""
    session.execute(
        update(WebSession)
        .where(WebSession.token_hash == hash_token(secret), WebSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def end_web_sessions(session: Session, user: User) -> int:
    """End every browser session of a user; returns how many."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
    return result.rowcount or 0


@functools.cache
def _dummy_hash() -> str:
    # Hashing for unknown users too keeps the answer time from telling names apart.
    return generate_password_hash(secrets.token_hex(8), method="scrypt")
