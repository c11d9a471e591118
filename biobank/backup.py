"""Backup and restore: `flask --app wsgi backup create FILE` / `backup restore FILE`.

SQLite: SQLite's online backup API (``sqlite3.Connection.backup``): a consistent copy of the
file, page by page, safe while the service runs (writers go on; the copy restarts the pages
they changed). PostgreSQL: ``pg_dump`` in its custom format (compressed; restored by
``pg_restore``), taken in a snapshot that this command holds open and exports, so that the
custody check and the row counts printed describe exactly what the dump holds.

Restore writes only into an empty database (no table at all): it never merges into, or
overwrites, data. Both commands end by verifying every custody chain of what was written
and printing each table's row count; a broken chain fails the command.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from biobank.custody import audit

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that was refused or failed (the message says why)."""


@dataclass
class Summary:
    """What a backup holds or a restore wrote: rows per table, and the custody check."""

    counts: dict[str, int]
    events: int
    chains: int
    broken: str | None

    def lines(self) -> list[str]:
        """The report: one line per table, then the custody verdict."""
        width = max((len(name) for name in self.counts), default=5)
        out = [f"{name:<{width}} {rows:>10,}" for name, rows in sorted(self.counts.items())]
        if self.broken:
            out.append(f"custody: BROKEN: {self.broken}")
        else:
            out.append(f"custody: ok, {self.events} events in {self.chains} chains intact")
        return out


def summarize(connection: Connection) -> Summary:
    """Row counts of every table, and every custody chain verified, on one connection (in
    its transaction, hence its snapshot)."""
    names = inspect(connection).get_table_names()
    counts = {
        name: connection.scalar(text(f'SELECT count(*) FROM "{name}"')) or 0 for name in names
    }
    if "custody_event" not in names:
        return Summary(counts, 0, 0, None)
    with Session(bind=connection) as session:
        result = audit.verify_all(session)
    return Summary(
        counts, result.checked, result.chains, result.broken.describe() if result.broken else None
    )


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _libpq_url(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it (no driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def create(url: str, target: Path, engine: Engine) -> Summary:
    """Back the database at ``url`` up into a new file ``target``; summarize what it holds."""
    if target.exists():
        raise BackupError(f"{target} exists already: give a new file name")
    if engine.dialect.name == "sqlite":
        source = sqlite3.connect(_sqlite_path(url))
        try:
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
        return _summarize_sqlite(target)
    if engine.dialect.name != "postgresql":
        raise BackupError(f"backups are made for SQLite and PostgreSQL, not {engine.dialect.name}")
    with engine.connect() as connection:
        # One snapshot for the dump and for the check: exported by this transaction, which
        # stays open until pg_dump has finished with it.
        connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
        done = subprocess.run(
            [
                _tool("pg_dump"),
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f"--snapshot={snapshot}",
                f"--file={target}",
                "--dbname",
                _libpq_url(url),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            target.unlink(missing_ok=True)
            raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
        summary = summarize(connection)
        connection.rollback()
    return summary


def _summarize_sqlite(path: Path) -> Summary:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return summarize(connection)
    finally:
        engine.dispose()


def _is_empty(engine: Engine) -> bool:
    with engine.connect() as connection:
        return not inspect(connection).get_table_names()


def restore(
    url: str, source: Path, engine: Engine, progress: Callable[[str], None] = lambda _line: None
) -> Summary:
    """Restore the backup ``source`` into the (empty) database at ``url``; summarize it."""
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    with source.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    kind = (
        "sqlite"
        if head.startswith(SQLITE_MAGIC)
        else "postgresql"
        if head.startswith(PG_DUMP_MAGIC)
        else None
    )
    if kind is None:
        raise BackupError(f"{source} is neither a SQLite database nor a pg_dump custom archive")
    if kind != engine.dialect.name:
        raise BackupError(f"{source} is a {kind} backup; the database is {engine.dialect.name}")
    if not _is_empty(engine):
        raise BackupError(
            "the database is not empty: restore only into an empty database "
            "(create a new one; nothing was changed)"
        )
    if kind == "sqlite":
        target = _sqlite_path(url)
        engine.dispose()
        copy = sqlite3.connect(source)
        try:
            into = sqlite3.connect(target)
            try:
                copy.backup(into)
            finally:
                into.close()
        finally:
            copy.close()
        return _summarize_sqlite(target)
    progress("pg_restore …")
    done = subprocess.run(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--dbname",
            _libpq_url(url),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    if done.returncode:
        raise BackupError(f"pg_restore failed (nothing was restored): {done.stderr.strip()}")
    with engine.connect() as connection:
        return summarize(connection)
