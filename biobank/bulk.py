"""Writing many rows at once through the driver: PostgreSQL's COPY from a hundred rows and
the driver's executemany below that; on SQLite, INSERTs of many rows each (executemany of
one row per statement for the last few). Bulk writers (the CSV import, custody events) use it
where SQLAlchemy's per-row parameter processing would cost more than the insert."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Connection

from biobank.db import refuse_if_read_only

# From this many rows, PostgreSQL takes them by COPY: one statement, whose constraints and
# triggers are set up once, where executemany runs (and sets up) the INSERT once per row:
# about half the server's time per row.
COPY_FROM = 100
# SQLite takes up to this many parameters in a statement (the least any version allows). A
# statement per row (executemany) opens the table, each of its indexes and its triggers'
# programs again for every row; a statement of many rows does that once for all of them: an
# import's aliquot and custody event inserts cost about a third less.
SQLITE_VARIABLES = 999


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
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    done = 0
    if not postgresql:
        per = max(1, SQLITE_VARIABLES // len(columns))
        done = len(rows) - len(rows) % per
        if done:
            connection.exec_driver_sql(
                insert + ", ".join([f"({values})"] * per),
                [tuple(chain.from_iterable(rows[at : at + per])) for at in range(0, done, per)],
            )
    if done < len(rows):
        connection.exec_driver_sql(insert + f"({values})", rows[done:])


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
