"""A request whose commit fails is answered like a view that failed: never a 500.

Found by the fuzzer (five roles writing at once on SQLite): the request's changes are
flushed at commit, after the view; SQLite's "database is locked" raised there escaped every
error handler and answered 500. It is a 503 with Retry-After, as inside a view.
"""

from __future__ import annotations

import sqlite3

import pytest

from biobank import create_app
from biobank.auth import service
from biobank.db import get_session


@pytest.fixture
def locked_sqlite(tmp_path, database_url):  # type: ignore[no-untyped-def]
    """An app on its own SQLite file (a short busy wait), an admin's token, and a second
    connection holding the write lock, as another worker's transaction would."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer lock")
    path = tmp_path / "locked.db"
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{path}", "SECRET_KEY": "k" * 64, "SQLITE_BUSY_SECONDS": 0.2}
    )
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    assert app.test_cli_runner().invoke(args=["reference", "load"]).exit_code == 0
    with app.app_context():
        session = get_session()
        token = service.issue_token(
            session, service.create_user(session, "locker", "admin", substudies=[], sites=[])
        )
        session.commit()
    other = sqlite3.connect(path, isolation_level=None)
    yield app, token, other
    other.close()
    app.extensions["biobank.engine"].dispose()


def test_a_commit_that_finds_the_database_locked_is_a_503(locked_sqlite):
    """A PATCH that repeats the current name changes no row in the view; its audit record is
    written at commit, where the lock held elsewhere is met: 503, not 500."""
    app, token, other = locked_sqlite
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/aliquot-types/BUFFY", headers=headers).status_code == 200
    audits = "SELECT count(*) FROM audit_record WHERE entity_key = 'BUFFY'"
    before = other.execute(audits).fetchone()
    other.execute("BEGIN IMMEDIATE")
    try:
        response = client.patch(
            "/api/v1/aliquot-types/BUFFY", json={"name": "Buffy coat, viable"}, headers=headers
        )
    finally:
        other.execute("ROLLBACK")
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.json["code"] == 503
    assert response.headers["Retry-After"] == "1"
    assert other.execute(audits).fetchone() == before  # nothing half-written


def test_every_connection_in_use_is_a_503(locked_sqlite):
    """Found by the long fuzzing run on PostgreSQL (five roles at once on a loaded machine):
    when no pooled connection frees up in time, the request is told to retry (503), not 500."""
    app, token, _ = locked_sqlite
    engine = app.extensions["biobank.engine"]
    held = [engine.connect() for _ in range(engine.pool.size() + engine.pool._max_overflow)]
    try:
        response = app.test_client().get(
            "/api/v1/materials", headers={"Authorization": f"Bearer {token}"}
        )
    finally:
        for connection in held:
            connection.close()
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.json["code"] == 503
    assert response.headers["Retry-After"] == "1"
