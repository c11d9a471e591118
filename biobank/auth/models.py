"""Users, their roles and scopes, and API tokens (stored only as hashes)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import Base, Code, Str64, Str200, utcnow

ROLES = ("technician", "researcher", "consent_officer", "manager", "admin")
_roles = ", ".join(f"'{r}'" for r in ROLES)


class User(Base):
    """A person who uses the biobank; the actor of everything they do."""

    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(f"role IN ({_roles})", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[Str64] = mapped_column(unique=True)
    role: Mapped[Code]
    full_name: Mapped[Str200 | None]
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    # Loaded when asked for, so authenticating a request stays one query.
    substudies: Mapped[list[UserSubstudy]] = relationship(cascade="all, delete-orphan")
    sites: Mapped[list[UserSite]] = relationship(cascade="all, delete-orphan")

    @property
    def substudy_codes(self) -> list[str]:
        """The sub-studies a researcher is bound to."""
        return sorted(s.substudy_code for s in self.substudies)

    @property
    def site_codes(self) -> list[str]:
        """The sites a user is limited to (empty: all)."""
        return sorted(s.site_code for s in self.sites)


class UserSubstudy(Base):
    """A researcher's binding to one sub-study."""

    __tablename__ = "user_substudy"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    substudy_code: Mapped[Code] = mapped_column(primary_key=True)


class UserSite(Base):
    """A user's restriction to one site."""

    __tablename__ = "user_site"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    site_code: Mapped[Code] = mapped_column(ForeignKey("site.code"), primary_key=True)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is kept."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, to tell tokens apart in listings without revealing them.
    hint: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class WebSession(Base):
    """A browser login: the cookie carries a random secret, the database only its SHA-256."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class LoginThrottle(Base):
    """Recent failed logins for one username from one address, and how long to wait."""

    __tablename__ = "login_throttle"

    # Kept in the database, not in a worker's memory, so every gunicorn worker sees it.
    username: Mapped[Str64] = mapped_column(primary_key=True)
    address: Mapped[Str64] = mapped_column(primary_key=True)
    failures: Mapped[int]
    last_failed_at: Mapped[dt.datetime] = mapped_column(index=True)
    locked_until: Mapped[dt.datetime | None]
