"""Writing many rows at once through the driver: PostgreSQL's COPY from a hundred rows, the
driver's executemany below that and on SQLite. Bulk writers (the CSV import, custody events)
use it where SQLAlchemy's per-row parameter processing would cost more than the insert."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection

from biobank.db import refuse_if_read_only

# From this many rows, PostgreSQL takes them by COPY: one statement, whose constraints and
# triggers are set up once, where executemany runs (and sets up) the INSERT once per row:
# about half the server's time per row.
COPY_FROM = 100


def insert_rows(
    connection: Connection,
    table: str,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    json_columns: Collection[str] = (),
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``, in the connection's
    transaction. ``json_columns`` get their values as JSON text (cast on PostgreSQL)."""
    if not rows:
        return
    postgresql = connection.dialect.name == "postgresql"
    if postgresql and len(rows) >= COPY_FROM:
        copy_rows(connection, table, ", ".join(columns), rows)
        return
    mark = "%s" if postgresql else "?"
    values = ", ".join(
        f"{mark}::json" if postgresql and column in json_columns else mark for column in columns
    )
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})", rows
    )


def copy_rows(
    connection: Connection, table: str, columns: str, rows: list[tuple[Any, ...]]
) -> None:
    """PostgreSQL: ``COPY table (columns) FROM STDIN`` the rows, in the connection's
    transaction (refused on a read-only request's connection: it bypasses the guard)."""
    statement = f"COPY {table} ({columns}) FROM STDIN"
    refuse_if_read_only(connection, statement)
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection was closed")
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
