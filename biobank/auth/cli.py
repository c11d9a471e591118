"""`flask --app wsgi users ...`: accounts and tokens from the command line."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from biobank.auth import admin, service
from biobank.auth.models import ROLES, User
from biobank.db import get_session
from biobank.errors import DomainError

users_cli = AppGroup("users", help="Users, roles and API tokens.")
# A token always expires: at most ten years, at least a day (0 would mean "never").
_DAYS = click.IntRange(1, 3650)

T = TypeVar("T")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--substudy", "substudies", multiple=True, help="A researcher's sub-study.")
@click.option("--site", "sites", multiple=True, help="Limit the user to a site.")
@click.option("--full-name", default=None)
@click.option("--days", default=365, show_default=True, type=_DAYS, help="Token lifetime.")
def create(
    username: str,
    role: str,
    substudies: tuple[str, ...],
    sites: tuple[str, ...],
    full_name: str | None,
    days: int,
) -> None:
    """Create a user and print a new API token as the last line."""
    from biobank.clitools import cli_actor, fail

    session = get_session()
    try:
        user = service.create_user(
            session,
            username,
            role,
            substudies=list(substudies),
            sites=list(sites),
            full_name=full_name,
        )
        admin.record(session, cli_actor(), user, "created", new=admin.state(user))
        token = service.issue_token(session, user, days=days)
        admin.record(session, cli_actor(), user, "token_issued", new={"token": token[:10]})
    except DomainError as exc:
        session.rollback()
        fail(exc)
    session.commit()
    click.echo(f"created {role} {username}; API token (shown once):")
    click.echo(token)


@users_cli.command("list")
def list_users() -> None:
    """List users with role, sub-studies, sites, state and live tokens (by their hint)."""
    session = get_session()
    live = service.live_token_hints(session)
    click.echo("username\trole\tsubstudies\tsites\tstate\ttokens")
    users = session.scalars(
        select(User)
        .order_by(User.username)
        .options(selectinload(User.substudies), selectinload(User.sites))
    )
    for user in users:
        state = "active" if user.active else "inactive"
        hints = ",".join(f"{hint}..." for hint in live.get(user.id, [])) or "-"
        click.echo(
            "\t".join(
                [
                    user.username,
                    user.role,
                    ",".join(user.substudy_codes) or "-",
                    ",".join(user.site_codes) or "-",
                    state,
                    hints,
                ]
            )
        )


def _user_command(action: Callable[[Session, User], T], what: str) -> Callable[[str], T]:
    """Run ``action(session, user)`` for USERNAME, reporting a refusal on stderr; the change
    is an audit record ``what`` with the operating-system user as actor."""
    from biobank.clitools import cli_actor, fail

    session = get_session()

    def run(username: str) -> T:
        try:
            user = service.get_user(session, username)
            result = action(session, user)
            admin.record(session, cli_actor(), user, what)
        except DomainError as exc:
            session.rollback()
            fail(exc)
        session.commit()
        return result

    return run


@users_cli.command("revoke")
@click.argument("username")
def revoke(username: str) -> None:
    """Revoke every token of a user."""
    count = _user_command(service.revoke_tokens, "tokens_revoked")(username)
    click.echo(f"revoked {count} token(s) of {username}")


@users_cli.command("rotate")
@click.argument("username")
@click.option("--days", default=365, show_default=True, type=_DAYS, help="Token lifetime.")
def rotate(username: str, days: int) -> None:
    """Revoke a user's tokens and print a new one as the last line."""
    token = _user_command(lambda s, u: service.rotate_token(s, u, days=days), "token_rotated")(
        username
    )
    click.echo(f"new API token for {username} (shown once):")
    click.echo(token)


@users_cli.command("deactivate")
@click.argument("username")
def deactivate(username: str) -> None:
    """Deactivate a user; their tokens and browser sessions stop working at once."""
    _user_command(service.deactivate, "deactivated")(username)
    click.echo(f"deactivated {username}")


@users_cli.command("set-password")
@click.argument("username")
@click.password_option()
def set_password(username: str, password: str) -> None:
    """Set a user's password for the web pages (ends their browser sessions)."""
    _user_command(lambda s, u: service.set_password(s, u, password), "password_set")(username)
    click.echo(f"password set for {username}")
