"""A database of its own, for tests that cannot share the per-test rolled-back transaction
(a live server, requests that must run outside any outer transaction)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def private_database(tmp: Path, suffix: str) -> Iterator[str]:
    """Yield the URL of an empty database, dropped afterwards: a fresh SQLite file, or on
    PostgreSQL (BIOBANK_TEST_DATABASE_URL set) the test database's name + ``_suffix``."""
    test_url = os.environ.get("BIOBANK_TEST_DATABASE_URL")
    if not test_url or not test_url.startswith("postgresql"):
        yield f"sqlite:///{tmp / f'{suffix}.db'}"
        return
    url = make_url(test_url)
    name = f"{url.database}_{suffix}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
