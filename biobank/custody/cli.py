"""`flask --app wsgi custody …`: checking the custody log's hash chains."""

from __future__ import annotations

import sys
import time

import click
from flask.cli import AppGroup
from tqdm import tqdm

from biobank.custody import audit
from biobank.db import get_session

custody_cli = AppGroup("custody", help="The chain-of-custody log.")


@custody_cli.command("verify")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def verify(quiet: bool) -> None:
    """Walk every hash chain; exit 1 naming the first broken event."""
    session = get_session()
    total = audit.count_events(session)
    started = time.perf_counter()
    with tqdm(
        total=total, unit="event", unit_scale=True, file=sys.stderr, disable=quiet, desc="verifying"
    ) as bar:
        result = audit.verify_all(session, bar.update)
    seconds = max(time.perf_counter() - started, 1e-9)
    session.rollback()
    if result.broken is not None:
        click.echo(f"BROKEN: {result.broken.describe()}", err=True)
        click.echo(f"checked {result.checked} of {total} events before it", err=True)
        sys.exit(1)
    click.echo(
        f"ok: {result.checked} events in {result.chains} chains intact "
        f"({result.checked / seconds:,.0f} events/s)"
    )
