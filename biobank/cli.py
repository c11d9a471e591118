"""Command-line interface: `flask --app wsgi <group> <command>`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.engine import Connection

from biobank import backup
from biobank.clitools import cli_actor, fail  # noqa: F401  (the groups' helpers, also here)
from biobank.db import get_engine, get_session

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic config pointing at migrations/, bound to the app's database."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "file_template",
        "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s",
    )
    config.set_main_option("sqlalchemy.url", current_app.config["DATABASE_URL"].replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _run_alembic(
    command_name: str,
    *args: str,
    check: Callable[[Connection], None] | None = None,
    before: Callable[[Connection], None] | None = None,
    **kwargs: Any,
) -> None:
    """Run an Alembic command in one transaction; ``before(connection)`` and
    ``check(connection)``, when given, run in it before and after the command, and ``check``
    may refuse (raise) before anything is committed."""
    from alembic import command

    with get_engine().connect() as connection:
        # SQLite: batch migrations rebuild a table by copy, drop and rename, which foreign
        # keys enforced at once refuse when other tables' rows point at it. Alembic's advice:
        # switch enforcement off around the migration (only outside a transaction does the
        # pragma act) and check every reference before committing.
        raw = (
            connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
        )
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():
                if before is not None:
                    before(connection)
                getattr(command, command_name)(alembic_config(connection), *args, **kwargs)
                if raw is not None:
                    broken = raw.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise click.ClickException(
                            f"the migration left rows pointing at nothing: {broken[:5]}"
                        )
                if check is not None:
                    check(connection)
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys = ON")


db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to a revision (default: the latest)."""
    _run_alembic("upgrade", revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
@click.option(
    "--force", is_flag=True, help="drop tables and columns that hold data (they are listed)"
)
def db_downgrade(revision: str, force: bool) -> None:
    """Downgrade the schema (default: one step; `base` empties it). A downgrade that would
    drop a table holding rows or a column holding values is refused, with what it would
    lose, unless --force (then it says what was lost)."""
    holdings: dict[str, tuple[int, dict[str, int]]] = {}

    def refuse_losses(connection: Connection) -> None:
        # The downgrade ran in this transaction: what it dropped is what is gone from the
        # schema now, and the counts taken before say what that held.
        lost = losses(connection, holdings)
        if lost and not force:
            raise click.ClickException(
                "refused: this downgrade would drop data:\n  "
                + "\n  ".join(lost)
                + "\nnothing was changed; back the database up (backup create) and add "
                "--force to drop it"
            )
        for line in lost:
            click.echo(f"dropped {line}")

    def count_first(connection: Connection) -> None:
        holdings.update(count_holdings(connection))

    _run_alembic("downgrade", revision, check=refuse_losses, before=count_first)
    click.echo(f"database at {revision}")


def count_holdings(connection: Connection) -> dict[str, tuple[int, dict[str, int]]]:
    """Each table's rows and each column's non-null values (one statement per table)."""
    from sqlalchemy import inspect

    found: dict[str, tuple[int, dict[str, int]]] = {}
    inspector = inspect(connection)
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        columns = [c["name"] for c in inspector.get_columns(table)]
        counts = ", ".join(f'count("{c}")' for c in columns)
        row = connection.exec_driver_sql(f'SELECT count(*), {counts} FROM "{table}"').one()
        found[table] = (row[0], dict(zip(columns, row[1:], strict=True)))
    return found


def losses(connection: Connection, before: dict[str, tuple[int, dict[str, int]]]) -> list[str]:
    """The tables with rows and the columns with values that are no longer there (derived
    tables, which triggers fill from the tubes, lose nothing: ``info={"derived": True}``)."""
    from sqlalchemy import inspect

    from biobank.db import Base

    derived = {t.name for t in Base.metadata.tables.values() if t.info.get("derived")}
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    lost = []
    for table, (rows, columns) in sorted(before.items()):
        if table in derived:
            continue
        if table not in tables:
            if rows:
                lost.append(f"table {table}: {rows} rows")
            continue
        kept = {c["name"] for c in inspector.get_columns(table)}
        lost += [
            f"column {table}.{column}: {values} values"
            for column, values in columns.items()
            if values and column not in kept
        ]
    return lost


@db_cli.command("check")
def db_check() -> None:
    """Fail if the models and the migrated schema differ."""
    _run_alembic("check")
    click.echo("models and migrations agree")


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
def db_revision(message: str, autogenerate: bool) -> None:
    """Create a migration file (review it before committing)."""
    _run_alembic("revision", message=message, autogenerate=autogenerate)


reference_cli = AppGroup("reference", help="Reference data.")


@reference_cli.command("load")
def reference_load() -> None:
    """Add the default sites, timepoints, materials and aliquot types that are missing."""
    from biobank.reference.service import load_defaults

    session = get_session()
    added = load_defaults(session, cli_actor())
    session.commit()
    click.echo("reference data: " + ", ".join(f"{n} {kind} added" for kind, n in added.items()))


backup_cli = AppGroup("backup", help="Backups of the whole database, and restoring them.")


@backup_cli.command("create")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup_create(file: Path) -> None:
    """Back the database up into FILE (a new file; safe while the service runs): SQLite's
    online backup, or pg_dump's custom format. Ends with each table's rows and the custody
    chains verified."""
    try:
        summary = backup.create(current_app.config["DATABASE_URL"], file, get_engine())
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written to {file} ({file.stat().st_size:,} bytes); it holds:")
    _report(summary)


@backup_cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def backup_restore(file: Path) -> None:
    """Restore FILE (from `backup create`) into the database, which must be empty. Ends with
    each table's rows and the custody chains verified."""
    try:
        summary = backup.restore(current_app.config["DATABASE_URL"], file, get_engine(), click.echo)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"restored from {file}; the database holds:")
    _report(summary)


def _report(summary: backup.Summary) -> None:
    for line in summary.lines():
        click.echo(line)
    if summary.broken:
        raise SystemExit(1)


def register(app: Flask) -> None:
    """Attach every command group to the app."""
    from biobank.auth.cli import users_cli
    from biobank.custody.cli import custody_cli
    from biobank.demo.cli import demo_cli
    from biobank.fhir.cli import fhir_cli
    from biobank.imports.cli import import_cli

    for group in (
        db_cli,
        reference_cli,
        users_cli,
        demo_cli,
        import_cli,
        custody_cli,
        fhir_cli,
        backup_cli,
    ):
        app.cli.add_command(group)
