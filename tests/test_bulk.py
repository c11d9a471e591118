"""bulk.insert_rows: many rows in a few statements, each row as given and in the order given."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from biobank import bulk
from biobank.custody.models import AuditRecord

COLUMNS = (
    "entity_type",
    "entity_key",
    "action",
    "actor",
    "occurred_at",
    "reason",
    "old_values",
    "new_values",
)
PER_STATEMENT = bulk.SQLITE_VARIABLES // len(COLUMNS)  # SQLite's rows per INSERT


@pytest.mark.parametrize(
    "count", [1, PER_STATEMENT - 1, PER_STATEMENT, 2 * PER_STATEMENT + 3, bulk.COPY_FROM]
)
def test_rows_go_in_as_given_in_their_order(session, count):
    """A few rows, one short of a statement's worth, exactly one, several and some over, and
    PostgreSQL's COPY threshold: every row stored with its values (JSON too), ids ascending
    in the order the rows were given."""
    moment = dt.datetime(2026, 12, 6, 9, 30, 15, 123456)
    sqlite = session.get_bind().dialect.name == "sqlite"
    stamp = moment.isoformat(sep=" ", timespec="microseconds") if sqlite else moment
    rows = [
        (
            "patient",
            f"IF21-BULK-{count}-{n:04d}",
            "bulk_tested",
            "bulk-test",
            stamp,
            None if n % 2 else f"reason {n}",
            "null",
            f'{{"n": {n}, "text": "caf\\u00e9 {n}"}}',
        )
        for n in range(count)
    ]
    bulk.insert_rows(
        session.connection(), "audit_record", COLUMNS, rows, ("old_values", "new_values")
    )
    stored = session.scalars(
        select(AuditRecord).where(AuditRecord.actor == "bulk-test").order_by(AuditRecord.id)
    ).all()
    assert [
        (r.entity_key, r.action, r.occurred_at, r.reason, r.old_values, r.new_values)
        for r in stored
    ] == [
        (
            f"IF21-BULK-{count}-{n:04d}",
            "bulk_tested",
            moment.replace(tzinfo=dt.UTC),
            None if n % 2 else f"reason {n}",
            None,
            {"n": n, "text": f"café {n}"},
        )
        for n in range(count)
    ]
