"""A database of its own, for tests that cannot share the per-test rolled-back transaction
(a live server, requests that must run outside any outer transaction)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import Integer, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from biobank.db import Base

# Tables a request may write without changing anything of the biobank (who logged in).
_ACCOUNT_TABLES = {
    "login_throttle",
    "api_token",
    "app_user",
    "user_site",
    "user_substudy",
    "web_session",
}


def row_counts(session: Session) -> dict[str, int]:
    """How many rows each table of the biobank holds (accounts aside): equal before and
    after, nothing was written."""
    return {
        name: session.scalar(select(func.count()).select_from(table))
        for name, table in Base.metadata.tables.items()
        if name not in _ACCOUNT_TABLES
    }


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


def one_tube_biobank(url: str) -> SimpleNamespace:
    """Migrate an empty database, and give it one tube and a technician's token."""
    from biobank import clock, create_app
    from biobank.auth import service as auth_service
    from biobank.patients import service as patients
    from biobank.samples import service as samples

    app = create_app({"DATABASE_URL": url, "TESTING": True})
    runner = app.test_cli_runner()
    for command in (["db", "upgrade"], ["reference", "load"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 0, result.output
    engine = app.extensions["biobank.engine"]
    with Session(engine, expire_on_commit=False) as session:
        patient = patients.register(
            session,
            "setup",
            {
                "study_id": "IF21-NL-901",
                "site": "NL-PMC",
                "sex": "F",
                "diagnosis": "B-ALL",
                "fusion_partner": "AFF1",
                "diagnosis_date": clock.today(),
                "age_at_diagnosis_days": 100,
                "wbc_at_diagnosis": Decimal("50"),
                "day8_blasts_per_ul": None,
                "prednisone_response": "good",
            },
        )
        collected = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
        sample = samples.register_sample(
            session,
            "setup",
            {
                "study_id": patient.study_id,
                "timepoint": "DX",
                "unscheduled_reason": None,
                "material": "BM",
                "collected_at": collected,
                "received_at": collected + dt.timedelta(hours=1),
                "volume_ml": Decimal("4"),
                "container_code": "PED",
                "precentrifugation_delay_hours": None,
                "precentrifugation_temperature": None,
                "accession_number": None,
                "notes": None,
            },
            samples.Numbering(),
        )
        tube = samples.split(
            session,
            "setup",
            sample,
            [{"aliquot_type": "PLASMA", "volume_ml": Decimal("0.1")}],
            samples.Numbering(),
        )[0]
        user = auth_service.create_user(session, "deploy-tech", "technician")
        token = auth_service.issue_token(session, user)
        session.commit()
    engine.dispose()
    return SimpleNamespace(barcode=tube.barcode, headers={"Authorization": f"Bearer {token}"})


def _kept_whole() -> list:  # type: ignore[type-arg]
    """Tables without an integer id and without a foreign key: the tallies the triggers keep
    (a cleanup that removes rows by id cannot tell which of their counts it made)."""
    import biobank.models  # noqa: F401  (every table known)

    return [
        t
        for t in Base.metadata.sorted_tables
        if not ("id" in t.c and isinstance(t.c.id.type, Integer)) and not t.foreign_keys
    ]


def save_tallies(conn) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def,type-arg]
    """The tallies' rows, before a test commits data it removes afterwards with the triggers
    bypassed (``restore_tallies``)."""
    return {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in _kept_whole()}


def restore_tallies(conn, saved: dict[str, list[dict]]) -> None:  # type: ignore[no-untyped-def,type-arg]
    """Put the tallies back as ``save_tallies`` found them (the removed rows' counts go)."""
    for table in _kept_whole():
        conn.execute(table.delete())
        if saved.get(table.name):
            conn.execute(table.insert(), saved[table.name])
