"""The admin's users page: the same schemas and service (biobank.auth.admin) as the API, so
every change is checked and audited the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from biobank.auth import admin
from biobank.auth.admin_api import DeactivateIn, TokenIn, UserIn, UserPatch, token_number
from biobank.auth.models import ROLES, User
from biobank.auth.permissions import requires
from biobank.auth.web import current_actor
from biobank.consent.models import Substudy
from biobank.db import get_session
from biobank.errors import DomainError
from biobank.reference.models import Site
from biobank.web.common import load_values, page_blueprint

bp = page_blueprint("web_users", __name__)

_LISTS = ("substudies", "sites")


def _choices() -> dict[str, Any]:
    session = get_session()
    return {
        "roles": ROLES,
        "sites": list(session.scalars(select(Site.code).order_by(Site.code))),
        "substudies": list(session.scalars(select(Substudy.code).order_by(Substudy.code))),
    }


def _form(fields: tuple[str, ...]) -> dict[str, Any]:
    """The posted fields named, blank ones left out; multi-selects as lists."""
    values: dict[str, Any] = {}
    for name in fields:
        if name in _LISTS:
            values[name] = [v for v in request.form.getlist(name) if v.strip()]
        elif value := request.form.get(name, "").strip():
            values[name] = value
    return values


def _list_page(
    values: dict[str, Any], error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    return render_template(
        "web/users.html",
        users=admin.list_users(get_session()),
        values=values,
        error=error,
        **_choices(),
    ), status


def _user_page(
    username: str, error: str | None = None, status: int = 200, token: dict[str, Any] | None = None
) -> ResponseReturnValue:
    user = admin.get_user(get_session(), username)
    return render_template(
        "web/user.html", user=user, error=error, token=token, **_choices()
    ), status


@bp.get("/users")
@requires("user:admin")
def users() -> ResponseReturnValue:
    """Every user, and the form to create one."""
    return _list_page({})


@bp.post("/users")
@requires("user:admin")
def create_user() -> ResponseReturnValue:
    """Create a user (then issue a token on their page)."""
    session = get_session()
    try:
        values = load_values(
            UserIn(), _form(("username", "role", "full_name", "substudies", "sites", "password"))
        )
        user = admin.create(session, current_actor(), values)
    except DomainError as exc:
        session.rollback()
        return _list_page(
            {
                **request.form.to_dict(),
                "sites": request.form.getlist("sites"),
                "substudies": request.form.getlist("substudies"),
            },
            exc.message,
            exc.status_code,
        )
    flash(
        f"User {user.username} created ({user.role}). Issue a token or set a password "
        "for them below."
    )
    return redirect(url_for("web_users.user_page", username=user.username), 303)


@bp.get("/users/<username>")
@requires("user:admin")
def user_page(username: str) -> ResponseReturnValue:
    """One user: role and scopes to change, tokens to issue and revoke, deactivation."""
    return _user_page(username)


def _act(
    username: str, action: Callable[[Session, User], object], done: str
) -> ResponseReturnValue:
    """Run ``action(session, user)``; back to the user's page saying what was done, or
    the page again with the refusal."""
    session = get_session()
    try:
        action(session, admin.get_user(session, username))
    except DomainError as exc:
        session.rollback()
        return _user_page(username, exc.message, exc.status_code)
    flash(done)
    return redirect(url_for("web_users.user_page", username=username), 303)


@bp.post("/users/<username>/change")
@requires("user:admin")
def change_user(username: str) -> ResponseReturnValue:
    """Change role, name and scopes (an empty selection clears a scope)."""
    form = _form(("role", "full_name", "reason", "substudies", "sites"))

    def change(session: Session, user: User) -> None:
        values = load_values(UserPatch(), form)
        admin.change(session, current_actor(), user, values)

    return _act(username, change, f"{username} changed.")


@bp.post("/users/<username>/deactivate")
@requires("user:admin")
def deactivate_user(username: str) -> ResponseReturnValue:
    """Deactivate a user: tokens and browser sessions stop at once."""
    form = _form(("reason",))

    def deactivate(session: Session, user: User) -> None:
        admin.deactivate(
            session, current_actor(), user, load_values(DeactivateIn(), form)["reason"]
        )

    return _act(
        username, deactivate, f"{username} deactivated: their tokens and sessions no longer work."
    )


@bp.post("/users/<username>/tokens")
@requires("user:admin")
def issue_token(username: str) -> ResponseReturnValue:
    """Issue a token and show it on this answer only."""
    session = get_session()
    try:
        values = load_values(TokenIn(), _form(("days",)))
        token, row = admin.issue_token(
            session, current_actor(), admin.get_user(session, username), values["days"]
        )
    except DomainError as exc:
        session.rollback()
        return _user_page(username, exc.message, exc.status_code)
    return _user_page(username, token={"token": token, "expires_at": row.expires_at}, status=201)


@bp.post("/users/<username>/tokens/<token_id>/revoke")
@requires("user:admin")
def revoke_token(username: str, token_id: str) -> ResponseReturnValue:
    """Revoke one token."""
    return _act(
        username,
        lambda session, user: admin.revoke_token(
            session, current_actor(), user, token_number(token_id)
        ),
        "Token revoked.",
    )
