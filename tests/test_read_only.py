"""Read-only requests (the scan) run without an explicit transaction, and cannot write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from db_helpers import private_database
from flask import Flask
from sqlalchemy import event, insert, select

from biobank import SECURITY_HEADERS, clock, create_app
from biobank.auth import service as auth
from biobank.auth.web import checks_token_itself
from biobank.bulk import copy_rows
from biobank.db import ReadOnlyViolation, get_engine, get_session, read_connection, read_only
from biobank.patients import service as patients
from biobank.reference.models import Site
from biobank.samples import service as samples


@pytest.fixture(scope="module")
def own_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app on a database of its own (no outer test transaction to join), with a
    technician's token and one tube, a read-only view that tries to write and one that
    defers the token check and forgets it."""
    database = private_database(tmp_path_factory.mktemp("read-only"), "read_only")
    app = create_app({"DATABASE_URL": next(database), "TESTING": True})

    @app.get("/test/read-only-write")
    @read_only
    def _writes():  # type: ignore[no-untyped-def]
        get_session().execute(
            insert(Site).values(code="XX-WRITE", name="not allowed", country="NL")
        )
        return {"wrote": True}

    _writes.biobank_permission = "scan"  # type: ignore[attr-defined]

    @app.get("/test/read-only-copy")
    @read_only
    def _copies():  # type: ignore[no-untyped-def]
        copy_rows(read_connection(), "site", "code, name, country", [("XX-COPY", "no", "NL")])
        return {"wrote": True}

    _copies.biobank_permission = "scan"  # type: ignore[attr-defined]

    @app.get("/test/forgets-the-token")
    @checks_token_itself
    @read_only
    def _forgets():  # type: ignore[no-untyped-def]
        return {"secret": "shown to whoever asks"}

    _forgets.biobank_permission = "scan"  # type: ignore[attr-defined]
    with app.app_context():
        runner = app.test_cli_runner()
        for args in (["db", "upgrade"], ["reference", "load"]):
            assert runner.invoke(args=args).exit_code == 0
        session = get_session()
        user = auth.create_user(session, "ro-tech", "technician")
        app.config["TEST_TOKEN"] = auth.issue_token(session, user)
        patient = patients.register(
            session,
            "test",
            {
                "study_id": "IF21-RO-001",
                "site": "NL-PMC",
                "sex": "F",
                "diagnosis": "B-ALL",
                "fusion_partner": "AFF1",
                "diagnosis_date": clock.today(),
                "age_at_diagnosis_days": 200,
                "wbc_at_diagnosis": Decimal("50"),
                "day8_blasts_per_ul": None,
                "prednisone_response": "good",
            },
        )
        collected = dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)
        sample = samples.register_sample(
            session,
            "test",
            {
                "study_id": patient.study_id,
                "timepoint": "DX",
                "material": "BM",
                "collected_at": collected,
                "received_at": collected + dt.timedelta(hours=4),
                "volume_ml": Decimal("2"),
                "container_code": "PED",
                "precentrifugation_delay_hours": Decimal("4"),
                "precentrifugation_temperature": "RT",
            },
            samples.Numbering(),
        )
        [tube] = samples.split(
            session,
            "test",
            sample,
            [{"aliquot_type": "PLASMA", "volume_ml": "0.5"}],
            samples.Numbering(),
        )
        app.config["TEST_TUBE"] = tube.barcode
        session.commit()
    yield app
    app.extensions["biobank.engine"].dispose()
    next(database, None)


def _in_transaction(dbapi_connection: Any) -> bool:
    info = getattr(dbapi_connection, "info", None)
    if info is not None and hasattr(info, "transaction_status"):  # psycopg
        return info.transaction_status != 0  # 0: IDLE, outside any transaction
    return bool(dbapi_connection.in_transaction)  # sqlite3


def test_a_scan_runs_its_statements_outside_any_transaction(own_app):
    """No BEGIN before the card statement (which checks the token too), no COMMIT."""
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        seen.append((statement.split()[0], _in_transaction(conn.connection.driver_connection)))

    with own_app.app_context():
        engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = own_app.test_client().get(
            f"/api/v1/scan/{own_app.config['TEST_TUBE']}",
            headers={"Authorization": f"Bearer {own_app.config['TEST_TOKEN']}"},
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.json
    assert response.json["study_id"] == "IF21-RO-001"
    assert seen == [("WITH", False)]  # one statement: the card, with the token's owner


def test_a_write_in_a_read_only_request_is_refused_before_it_reaches_the_database(own_app):
    """A view declared read-only that inserts fails loudly; nothing is written."""
    client = own_app.test_client()
    with pytest.raises(ReadOnlyViolation):
        client.get(
            "/test/read-only-write",
            headers={"Authorization": f"Bearer {own_app.config['TEST_TOKEN']}"},
        )
    with own_app.app_context():
        assert get_session().scalar(select(Site).where(Site.code == "XX-WRITE")) is None


def test_a_view_that_defers_the_token_check_and_forgets_it_answers_401(own_app):
    """Fail closed: whatever token comes, the forgetful view's answer is never sent."""
    client = own_app.test_client()
    for token in (own_app.config["TEST_TOKEN"], "bbk_" + "y" * 43):
        response = client.get(
            "/test/forgets-the-token", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401 and "secret" not in response.get_data(as_text=True)


def test_the_401_of_a_forgetful_view_carries_the_security_headers(own_app):
    """The refusal made after the view ran is an answer like any other: same headers."""
    response = own_app.test_client().get(
        "/test/forgets-the-token",
        headers={"Authorization": f"Bearer {own_app.config['TEST_TOKEN']}"},
    )
    assert response.status_code == 401
    for name, value in SECURITY_HEADERS:
        assert response.headers.get(name) == value, name


def test_only_a_read_only_view_may_check_the_token_itself():
    """A view that could write must have its asker checked before it runs."""
    with pytest.raises(TypeError, match="read_only"):
        checks_token_itself(lambda: None)


def test_a_copy_in_a_read_only_request_is_refused_too(own_app):
    """PostgreSQL's COPY bypasses SQLAlchemy's statement events: refused all the same."""
    with pytest.raises(ReadOnlyViolation):
        own_app.test_client().get(
            "/test/read-only-copy",
            headers={"Authorization": f"Bearer {own_app.config['TEST_TOKEN']}"},
        )
    with own_app.app_context():
        assert get_session().scalar(select(Site).where(Site.code == "XX-COPY")) is None
