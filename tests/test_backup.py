"""`backup create` and `backup restore`, on SQLite and on PostgreSQL (BIOBANK_TEST_DATABASE_URL):
a round trip keeps every row and every custody chain; restore refuses a database that is not
empty; a backup taken while a writer holds a transaction open holds what was committed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from biobank import create_app
from tests.db_helpers import one_tube_biobank, private_database


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A one-tube biobank, and an empty database beside it."""
    source, target = (
        private_database(tmp_path, "backup_src"),
        private_database(tmp_path, "backup_dst"),
    )
    source_url, target_url = next(source), next(target)
    one_tube_biobank(source_url)
    yield source_url, target_url
    next(source, None)
    next(target, None)


def _run(url: str, *args: str):  # type: ignore[no-untyped-def]
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    try:
        with app.app_context():
            return app.test_cli_runner().invoke(args=list(args))
    finally:
        app.extensions["biobank.engine"].dispose()


def _counts(output: str) -> dict[str, int]:
    return {
        name: int(rows.replace(",", ""))
        for name, rows in re.findall(r"^(\w+)\s+([\d,]+)$", output, re.MULTILINE)
    }


def test_a_backup_restored_into_an_empty_database_holds_every_row(databases, tmp_path):
    """create, then restore into an empty database: both end with the same row counts for
    every table and the custody chains intact."""
    source, target = databases
    file = tmp_path / "biobank.backup"
    made = _run(source, "backup", "create", str(file))
    assert made.exit_code == 0, made.output
    assert "custody: ok, " in made.output and file.stat().st_size > 0
    restored = _run(target, "backup", "restore", str(file))
    assert restored.exit_code == 0, restored.output
    assert "custody: ok, " in restored.output
    held, written = _counts(made.output), _counts(restored.output)
    assert held == written
    assert held["aliquot"] == 1 and held["custody_event"] >= 1 and held["app_user"] == 1


def test_restore_refuses_a_database_that_is_not_empty(databases, tmp_path):
    """Restoring into the database the backup came from (not empty) is refused, and
    changes nothing."""
    source, _ = databases
    file = tmp_path / "biobank.backup"
    assert _run(source, "backup", "create", str(file)).exit_code == 0
    refused = _run(source, "backup", "restore", str(file))
    assert refused.exit_code != 0
    assert "not empty" in refused.output


def test_create_refuses_to_overwrite_a_file(databases, tmp_path):
    """An existing file is never overwritten by a backup."""
    source, _ = databases
    file = tmp_path / "precious"
    file.write_text("keep me")
    refused = _run(source, "backup", "create", str(file))
    assert refused.exit_code != 0 and "exists already" in refused.output
    assert file.read_text() == "keep me"


def test_a_backup_taken_during_a_write_holds_what_was_committed(databases, tmp_path):
    """A writer holds an uncommitted change while the backup runs (the service at work): the
    backup completes and holds the committed state, not the change."""
    source, target = databases
    app = create_app({"DATABASE_URL": source, "TESTING": True})
    engine = app.extensions["biobank.engine"]
    file = tmp_path / "during.backup"
    try:
        with engine.connect() as writer:
            writer.begin()
            writer.execute(text("UPDATE aliquot SET freeze_thaw_count = 7"))
            made = _run(source, "backup", "create", str(file))
            writer.rollback()
    finally:
        engine.dispose()
    assert made.exit_code == 0, made.output
    assert _run(target, "backup", "restore", str(file)).exit_code == 0
    check = create_app({"DATABASE_URL": target, "TESTING": True})
    with check.extensions["biobank.engine"].connect() as conn:
        assert conn.scalar(text("SELECT max(freeze_thaw_count) FROM aliquot")) == 0
    check.extensions["biobank.engine"].dispose()
