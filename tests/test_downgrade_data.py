"""`db downgrade` never loses data silently: a step that would drop a table holding rows or a
column holding values is refused (nothing changed) unless --force, which says what was lost.
On SQLite, and on PostgreSQL when BIOBANK_TEST_DATABASE_URL is set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session

from biobank import create_app
from biobank.samples.service import Numbering
from biobank.storage import service as storage
from tests.db_helpers import one_tube_biobank, private_database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A migrated biobank with one tube and one freezer."""
    urls = private_database(tmp_path, "downgrade")
    url = next(urls)
    one_tube_biobank(url)
    engine = create_engine(url)
    with Session(engine) as session:
        storage.create_freezer(
            session,
            "setup",
            {"site": "NL-PMC", "name": "F1", "freezer_type": "mechanical-80"},
            Numbering(),
        )
        session.commit()
    engine.dispose()
    yield url
    next(urls, None)


# The revision before box mixing: going down to it drops storage_container.mixing_allowed,
# which every container row holds a value in (and whatever later revisions added).
BEFORE_BOX_MIXING = "a7c3e51d9b20"


def _cli(url: str, *args: str):  # type: ignore[no-untyped-def]
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    try:
        with app.app_context():
            return app.test_cli_runner().invoke(args=list(args))
    finally:
        app.extensions["biobank.engine"].dispose()


def _state(url: str) -> tuple[str, set[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.scalar(text("SELECT version_num FROM alembic_version"))
            columns = {c["name"] for c in inspect(conn).get_columns("storage_container")}
        return version, columns
    finally:
        engine.dispose()


def test_a_downgrade_dropping_a_column_with_values_is_refused_and_changes_nothing(database):
    """Going below box mixing drops storage_container.mixing_allowed, which the freezer's
    row holds a value in: refused, naming the column and the values; the schema and its
    revision are as before."""
    before = _state(database)
    refused = _cli(database, "db", "downgrade", BEFORE_BOX_MIXING)
    assert refused.exit_code != 0
    assert "column storage_container.mixing_allowed: 1 values" in refused.output
    assert "--force" in refused.output
    assert _state(database) == before


def test_with_force_the_downgrade_runs_and_says_what_was_lost(database):
    """--force: the column goes, and the command lists it as dropped."""
    before_version, _ = _state(database)
    done = _cli(database, "db", "downgrade", BEFORE_BOX_MIXING, "--force")
    assert done.exit_code == 0, done.output
    assert "dropped column storage_container.mixing_allowed: 1 values" in done.output
    version, columns = _state(database)
    assert version == BEFORE_BOX_MIXING != before_version and "mixing_allowed" not in columns


def test_a_downgrade_that_drops_only_empty_things_needs_no_force(tmp_path):
    """A biobank without a single container: the same downgrade loses nothing, and runs."""
    urls = private_database(tmp_path, "downgrade_empty")
    url = next(urls)
    try:
        one_tube_biobank(url)
        done = _cli(url, "db", "downgrade", BEFORE_BOX_MIXING)
        assert done.exit_code == 0, done.output
        assert "dropped" not in done.output
    finally:
        next(urls, None)
