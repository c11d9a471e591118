"""`flask --app wsgi import aliquots FILE.csv`: bring an existing inventory in, all or nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tqdm import tqdm

from biobank.clitools import cli_actor
from biobank.db import get_session
from biobank.errors import integrity_field
from biobank.imports import service
from biobank.imports.rows import COLUMNS, REQUIRED
from biobank.samples.numbering import numbering

import_cli = AppGroup("import", help="Bulk import of an existing inventory.")


@import_cli.command(
    "aliquots",
    epilog=(
        "Columns (header required, any order): "
        + ", ".join(COLUMNS)
        + ". Required: "
        + ", ".join(REQUIRED)
        + ", and timepoint or unscheduled_reason, volume_ml or cell_count. "
        "Example: docs/examples/inventory-import.csv"
    ),
)
@click.argument(
    "path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--dry-run", is_flag=True, help="Check the whole file, then write nothing.")
def aliquots(path: Path, dry_run: bool) -> None:
    """Import aliquots from a CSV file, one row per tube.

    One transaction: if any row is wrong, every problem is listed on stderr as
    `line N, column C: problem`, nothing is written and the exit status is 1.
    """
    session = get_session()
    with tqdm(
        total=service.count_rows(path),
        unit=" rows",
        desc=path.name,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        try:
            summary = service.import_aliquots(
                session, cli_actor(), path, numbering(), progress=bar.update
            )
        except service.ImportRefused as exc:
            _refuse(session, bar, [*map(str, exc.problems), f"error: {exc.message}"])
        except IntegrityError as exc:
            # Only a concurrent writer gets here: every rule was checked row by row.
            _refuse(
                session,
                bar,
                [
                    f"error: the database refused the import "
                    f"({integrity_field(exc) or exc.orig}); another import may "
                    "have registered the same tubes meanwhile. Nothing imported."
                ],
            )
    if dry_run:
        session.rollback()
        click.echo(
            f"{path.name} is fine: {summary.aliquots} aliquots in {summary.samples} "
            "samples would be imported (dry run, nothing written)"
        )
        return
    session.commit()
    click.echo(
        f"imported {summary.aliquots} aliquots in {summary.samples} samples from {path.name}"
    )


def _refuse(session: Session, bar: tqdm, lines: list[str]) -> NoReturn:  # type: ignore[type-arg]
    """Undo the import, say why on stderr, exit 1."""
    session.rollback()
    bar.close()
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)
