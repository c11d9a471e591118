"""Streamed answers (custody exports, report CSVs) give their database connection back once
the body is sent: the request's teardown runs before a streamed body is read, so a body that
reads the database must close what it used itself (the long fuzz run ran the pool dry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from db_helpers import one_tube_biobank, private_database

from biobank import clock, create_app

URLS = (
    "/api/v1/aliquots/{code}/events/export?format=json",
    "/api/v1/aliquots/{code}/events/export?format=csv",
    "/api/v1/custody/events?from={today}&to={today}&format=json",
    "/api/v1/custody/events?from={today}&to={today}&format=csv",
    "/api/v1/reports/capacity?format=csv",
    "/api/v1/reports/inventory?format=csv",
)


@pytest.fixture(scope="module")
def biobank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One tube on a database of its own (its own pool), and a manager's token."""
    database = private_database(tmp_path_factory.mktemp("streams"), "streams")
    url = next(database)
    made = one_tube_biobank(url)
    app = create_app({"DATABASE_URL": url, "TESTING": True})
    from biobank.auth import service as auth
    from biobank.db import get_session

    with app.app_context():
        session = get_session()
        token = auth.issue_token(session, auth.create_user(session, "stream-manager", "manager"))
        session.commit()
    made.app, made.manager = app, {"Authorization": f"Bearer {token}"}
    yield made
    app.extensions["biobank.engine"].dispose()
    next(database, None)


@pytest.mark.parametrize("url", URLS)
def test_a_streamed_answer_gives_its_connection_back(biobank, url):  # type: ignore[no-untyped-def]
    """Each streamed answer, read to the end and closed: no connection is left checked out."""
    pool = biobank.app.extensions["biobank.engine"].pool
    response = biobank.app.test_client().get(
        url.format(code=biobank.barcode, today=clock.today().isoformat()), headers=biobank.manager
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_data()
    response.close()
    assert pool.checkedout() == 0
