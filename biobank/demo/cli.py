"""`flask --app wsgi demo load`: a believable biobank to try the service on."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from biobank.db import get_session
from biobank.errors import DomainError

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
def load() -> None:
    """Add demo sites, patients, samples, aliquots and one user per role (idempotent)."""
    from biobank.clitools import cli_actor, fail
    from biobank.demo import service
    from biobank.samples.numbering import numbering

    session = get_session()
    try:
        result = service.load(session, cli_actor(), numbering())
    except DomainError as exc:
        session.rollback()
        fail(exc)
    session.commit()
    added = ", ".join(f"{n} {kind}" for kind, n in result.reference.items())
    click.echo(f"reference data added: {added}")
    click.echo(
        f"demo data added: {result.sites} sites, {result.patients} patients "
        f"({result.patients_skipped} already there), {result.samples} samples, "
        f"{result.aliquots} aliquots, {result.users} users"
    )
    for domain, summary in result.domains.items():
        click.echo(f"{domain} demo data added: {summary}")
    click.echo("")
    click.echo(
        f"Demo users (demo only: every one has the password {service.PASSWORD!r}; "
        "tokens are new on every run):"
    )
    rows = [("username", "role", "password", "token")]
    rows += [(name, role, service.PASSWORD, token) for name, role, token in result.credentials]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        # the first three cells padded to their column, the last as it is
        cells = (cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        click.echo("  ".join(cells) + "  " + row[3])
