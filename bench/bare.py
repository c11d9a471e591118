"""The floor of the stack: what Flask and SQLAlchemy Core alone do with the same data.

``make_app(url)`` is a bare Flask app. ``GET /scan/<code>`` is the floor of the issue: the
aliquot by barcode joined to its box position, in one Core query, answered with
``jsonify`` — no authentication, no schema, no service layer. ``GET
/scan-same-work/<code>`` runs the scan's own statement (the tube with its location, its
patient's consent log, its last events and the bearer token's owner) the same bare way:
the floor for the same work, to tell the cost of the query from the cost of the layers
around it.
gunicorn serves it too: ``BENCH_DATABASE_URL=… gunicorn 'bench.bare:make_app()'``.

``insert_rows`` is the bare insert: the driver's executemany of rows into a scratch table
of the aliquot table's shape (same columns, types, keys and indexes).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from flask import Flask, abort, jsonify, request
from sqlalchemy import Column, Index, MetaData, Table, bindparam, select
from sqlalchemy.engine import Connection

from biobank.db import make_engine
from biobank.samples.models import Aliquot
from biobank.scan.service import _CARD
from biobank.storage.models import Position

SCRATCH = "bench_bare_aliquot"


def scan_query() -> Any:
    """The lookup the scan does first: a tube by barcode, with its box and position."""
    aliquot, position = Aliquot.__table__, Position.__table__
    return (
        select(
            aliquot.c.id,
            aliquot.c.barcode,
            aliquot.c.status,
            aliquot.c.sample_id,
            aliquot.c.volume_remaining_ml,
            aliquot.c.freeze_thaw_count,
            position.c.box_id,
            position.c.row_no,
            position.c.col_no,
        )
        .select_from(aliquot.outerjoin(position, position.c.aliquot_id == aliquot.c.id))
        .where(aliquot.c.barcode == bindparam("code"))
    )


def make_app(database_url: str | None = None) -> Flask:
    """The bare app over the database at ``database_url`` (or $BENCH_DATABASE_URL)."""
    url = database_url or os.environ["BENCH_DATABASE_URL"]
    app = Flask("bench_bare")
    engine = make_engine(url)
    query = scan_query()

    @app.get("/scan/<code>")
    def scan(code: str):  # type: ignore[no-untyped-def]
        with engine.connect() as connection:
            row = connection.execute(query, {"code": code.strip().upper()}).first()
        if row is None:
            abort(404)
        answer = row._asdict()
        answer["volume_ml"] = (
            None
            if answer["volume_remaining_ml"] is None
            else str(answer.pop("volume_remaining_ml"))
        )
        return jsonify(answer)

    @app.get("/scan-same-work/<code>")
    def scan_same_work(code: str):  # type: ignore[no-untyped-def]
        # The scan's own SQL (one statement: the card with the token's owner), run bare.
        header = request.headers.get("Authorization", "")
        digest = hashlib.sha256(header.removeprefix("Bearer ").encode()).hexdigest()
        with engine.begin() as connection:
            card = connection.execute(
                _CARD, {"code": code.strip().upper(), "recent": 5, "token_hash": digest}
            ).first()
        if card is None:
            abort(404)
        if not card.asker:
            abort(401)
        return jsonify(card._asdict())

    app.extensions["bench.engine"] = engine
    return app


def scratch_table(metadata: MetaData) -> Table:
    """A table of the aliquot table's shape: its columns, keys and indexes, no foreign keys."""
    source = Aliquot.__table__
    table = Table(
        SCRATCH,
        metadata,
        *[
            Column(
                c.name,
                c.type,
                primary_key=c.primary_key,
                nullable=c.nullable,
                unique=bool(c.unique),
            )
            for c in source.columns
        ],
    )
    for number, index in enumerate(sorted(source.indexes, key=lambda i: i.name or "")):
        Index(
            f"ix_{SCRATCH}_{number}",
            *[table.c[c.name] for c in index.columns],
            unique=bool(index.unique),
        )
    return table


def insert_rows(
    connection: Connection,
    rows: list[tuple[Any, ...]],
    columns: tuple[str, ...],
    chunk: int = 5_000,
) -> None:
    """Executemany ``rows`` (tuples in ``columns`` order) into the scratch table, in chunks."""
    mark = "?" if connection.dialect.name == "sqlite" else "%s"
    sql = (
        f"INSERT INTO {SCRATCH} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    )
    for start in range(0, len(rows), chunk):
        connection.exec_driver_sql(sql, rows[start : start + chunk])
