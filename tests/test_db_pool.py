"""Pooled PostgreSQL connections: pinged only after sitting idle, replaced when found dead."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from biobank import db

PG_URL = os.environ.get("BIOBANK_TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="needs a PostgreSQL server to drop connections")


@pytest.fixture
def admin() -> Iterator[Engine]:
    """A connection of its own, to end the pool's connections from the server side."""
    engine = create_engine(PG_URL)  # type: ignore[arg-type]
    yield engine
    engine.dispose()


def pool_of(monkeypatch: pytest.MonkeyPatch, idle_seconds: float) -> Engine:
    """The service's engine, pinging after ``idle_seconds`` idle (used one connection at a
    time, so the pool holds one)."""
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", idle_seconds)
    return db.make_engine(PG_URL)  # type: ignore[arg-type]


def backend_of(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT pg_backend_pid()"))  # type: ignore[return-value]


def drop(admin: Engine, pid: int) -> None:
    with admin.begin() as connection:
        assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_an_idle_connection_dropped_by_the_server_is_replaced_before_use(admin, monkeypatch):
    """The server ended the pooled connection while it sat idle: the next request still works,
    on a new connection."""
    engine = pool_of(monkeypatch, idle_seconds=0.0)
    first = backend_of(engine)
    drop(admin, first)
    assert backend_of(engine) != first
    engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(admin, monkeypatch):
    """Within the idle allowance the pool trusts its connection (no extra round trip): one
    dropped in that window fails one request, and the pool replaces it for the next."""
    engine = pool_of(monkeypatch, idle_seconds=3600.0)
    first = backend_of(engine)
    drop(admin, first)
    with pytest.raises(OperationalError):
        backend_of(engine)
    assert backend_of(engine) != first
    engine.dispose()
