"""Fixtures: a real database (SQLite file, or PostgreSQL when BIOBANK_TEST_DATABASE_URL is
set), built once through Alembic; each test runs in a transaction rolled back at the end
(SQLAlchemy's "join a Session into an external transaction" recipe)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from biobank import clock, create_app
from biobank.auth import service as auth_service
from biobank.db import bind_to_connection, make_engine
from biobank.patients import service as patients
from biobank.samples import service as samples

PG_URL = os.environ.get("BIOBANK_TEST_DATABASE_URL")
# The printer rule the tests need: fake printers listen on 127.0.0.1 on ephemeral ports
# (tests/test_labels_network.py sets the rule it checks itself).
LOOPBACK_PRINTERS = {
    "PRINTER_NETWORKS": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.0/8",
    "PRINTER_PORTS": "1-65535",
}


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PostgreSQL when BIOBANK_TEST_DATABASE_URL is set, else a SQLite file."""
    if PG_URL:
        return PG_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def _empty_database(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """The schema is built once, through the Alembic migrations, with reference data."""
    engine = make_engine(database_url)
    _empty_database(engine)
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    with app.app_context():
        runner = app.test_cli_runner()
        result = runner.invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(args=["reference", "load"])
        assert result.exit_code == 0, result.output
    app.extensions["biobank.engine"].dispose()
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection per test, inside a transaction that is rolled back afterwards."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture(scope="session")
def shared_app(engine: Engine, database_url: str) -> Iterator[Flask]:
    """One app for the whole run: building it (the OpenAPI spec above all) is the slow part.
    Printers may be on loopback, any port: the printer tests listen on 127.0.0.1."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True, **LOOPBACK_PRINTERS})
    yield app
    app.extensions["biobank.engine"].dispose()


@pytest.fixture
def app(shared_app: Flask, connection: Connection) -> Iterator[Flask]:
    """The app, its sessions joined to the test's transaction; config changes are undone."""
    saved = dict(shared_app.config)
    bind_to_connection(shared_app, connection)
    with shared_app.app_context():
        yield shared_app
    shared_app.config.clear()
    shared_app.config.update(saved)


@pytest.fixture
def session(app: Flask) -> Session:
    """The app-context session (the one services and CLI commands use)."""
    from biobank.db import get_session

    return get_session()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An anonymous test client."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    """The CLI runner."""
    return app.test_cli_runner()


class ApiClient:
    """A test client that sends a bearer token with every request."""

    def __init__(self, client: FlaskClient, token: str, username: str) -> None:
        self.client = client
        self.token = token
        self.username = username
        self.headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, url: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return getattr(self.client, method)(url, headers=headers, **kwargs)

    def get(self, url: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self._call("get", url, **kw)

    def post(self, url: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self._call("post", url, **kw)

    def patch(self, url: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self._call("patch", url, **kw)

    def put(self, url: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self._call("put", url, **kw)

    def delete(self, url: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self._call("delete", url, **kw)


@pytest.fixture
def as_role(client: FlaskClient, session: Session) -> Callable[..., ApiClient]:
    """``as_role("technician")`` → a client authenticated as a new user of that role."""
    counter = iter(range(1, 10_000))

    def make(
        role: str, substudies: list[str] | None = None, sites: list[str] | None = None
    ) -> ApiClient:
        username = f"{role}-{next(counter)}"
        user = auth_service.create_user(
            session,
            username,
            role,
            substudies=substudies or (["DEMO"] if role == "researcher" else []),
            sites=sites or [],
        )
        token = auth_service.issue_token(session, user)
        session.commit()
        return ApiClient(client, token, username)

    return make


@pytest.fixture
def tech(as_role: Callable[..., ApiClient]) -> ApiClient:
    """A lab technician."""
    return as_role("technician")


@pytest.fixture
def manager(as_role: Callable[..., ApiClient]) -> ApiClient:
    """A biobank manager."""
    return as_role("manager")


# --- factories through the service layer ----------------------------------------------

ACTOR = "test-fixture"
NUMBERING = samples.Numbering()


@pytest.fixture
def make_patient(session: Session) -> Callable[..., Any]:
    """Register a patient through the service; keyword arguments override the defaults."""
    counter = iter(range(1, 10_000))

    def make(**overrides: Any):  # type: ignore[no-untyped-def]
        values = {
            "study_id": f"IF21-T-{next(counter):03d}",
            "site": "NL-PMC",
            "sex": "F",
            "diagnosis": "B-ALL",
            "fusion_partner": "AFF1",
            "diagnosis_date": clock.today() - dt.timedelta(days=200),
            "age_at_diagnosis_days": 250,
            "wbc_at_diagnosis": Decimal("120"),
            "day8_blasts_per_ul": None,
            "prednisone_response": "good",
        }
        values.update(overrides)
        patient = patients.register(session, ACTOR, values)
        session.commit()
        return patient

    return make


@pytest.fixture
def make_sample(session: Session, make_patient: Callable[..., Any]) -> Callable[..., Any]:
    """Register a sample (for a new patient unless one is given)."""

    def make(patient: Any = None, **overrides: Any):  # type: ignore[no-untyped-def]
        patient = patient or make_patient()
        collected = dt.datetime.combine(patient.diagnosis_date, dt.time(9), dt.UTC)
        values = {
            "study_id": patient.study_id,
            "timepoint": "DX",
            "unscheduled_reason": None,
            "material": "BM",
            "collected_at": collected,
            "received_at": collected + dt.timedelta(hours=5),
            "volume_ml": Decimal("4.0"),
            "container_code": "PED",
            "precentrifugation_delay_hours": Decimal("5"),
            "precentrifugation_temperature": "RT",
            "accession_number": "ACC-1",
            "notes": "residual after diagnostics",
        }
        values.update(overrides)
        sample = samples.register_sample(session, ACTOR, values, NUMBERING)
        session.commit()
        return sample

    return make


@pytest.fixture
def make_aliquots(session: Session, make_sample: Callable[..., Any]) -> Callable[..., Any]:
    """Split a sample into ``n`` aliquots of ``volume`` mL each."""

    def make(n: int = 3, parent: Any = None, aliquot_type: str = "PLASMA", volume: str = "0.5"):  # type: ignore[no-untyped-def]
        parent = parent or make_sample()
        children = [{"aliquot_type": aliquot_type, "volume_ml": Decimal(volume)} for _ in range(n)]
        made = samples.split(session, ACTOR, parent, children, NUMBERING)
        session.commit()
        return made

    return make


# --- counting queries ------------------------------------------------------------------


class QueryCounter:
    """Counts the SQL statements a block of code sends."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        """How many statements were sent."""
        return len(self.statements)


@pytest.fixture
def count_queries(connection: Connection) -> Callable[[], Any]:
    """``with count_queries() as counted: ...`` then ``counted.count``."""

    @contextmanager
    def counting() -> Iterator[QueryCounter]:
        counter = QueryCounter()

        def before(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
                counter.statements.append(statement)

        event.listen(connection, "before_cursor_execute", before)
        try:
            yield counter
        finally:
            event.remove(connection, "before_cursor_execute", before)

    return counting


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many FHIR resources the run validated (tests/fhir_helpers.py), and how many failed."""
    import sys

    helpers = sys.modules.get("fhir_helpers")
    if helpers is not None and helpers.COUNTS["validated"] + helpers.COUNTS["failures"]:
        counts = helpers.COUNTS
        terminalreporter.write_line(
            f"FHIR resources validated (fhir.resources R4B models, R4 value sets, MIABIS "
            f"profiles): {counts['validated']}, failures: {counts['failures']}"
        )
