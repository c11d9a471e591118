"""``flask --app wsgi fhir export DIR``: the bulk export, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from tqdm import tqdm

from biobank.db import get_session
from biobank.fhir import export as bulk
from biobank.fhir.directory import Directory
from biobank.fhir.resources import Settings

fhir_cli = AppGroup("fhir", help="FHIR R4 and MIABIS.")


@fhir_cli.command("export")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="no progress bar")
def export_command(folder: Path, quiet: bool) -> None:
    """Write every resource as NDJSON, one file per type, and manifest.json, into FOLDER."""
    session = get_session()
    config = current_app.config
    with tqdm(total=bulk.total(session), unit=" resources", disable=quiet, file=sys.stderr) as bar:
        manifest = bulk.export(
            session, folder, Settings.from_config(config), Directory.from_config(config), bar.update
        )
    session.rollback()
    for item in manifest["output"]:
        click.echo(f"{item['count']:>10} {item['type']:<13} {folder / item['url']}")
