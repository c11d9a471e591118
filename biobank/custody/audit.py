"""For inspectors: verifying the hash chains, and exporting custody histories.

Verification streams the chains one after another, each oldest first, so it keeps only the
hash of the event before; it reads the JSON values as the text the database stores, so it
needs no JSON parsing on the normal path.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session, aliased

from biobank import csvsafe
from biobank.auth import scope
from biobank.custody.chain import ChainCheck, diagnose
from biobank.custody.models import CustodyEvent
from biobank.samples.models import Aliquot, Sample

_STREAM = 10_000  # export rows per fetch


@dataclass
class Broken:
    """The first event found broken, and what is wrong with it."""

    event_id: int
    aliquot: str | None
    sample: str | None
    problem: str

    def describe(self) -> str:
        """One line naming the event and the tube."""
        tube = (
            f"aliquot {self.aliquot}"
            if self.aliquot
            else f"sample {self.sample}"
            if self.sample
            else "no tube"
        )
        return f"event {self.event_id} ({tube}): {self.problem}"


@dataclass
class Verification:
    """How many events were checked, and the first broken one if any."""

    checked: int
    chains: int
    broken: Broken | None
    looked_at: int = 0  # events the fast path left to a closer look

    @property
    def ok(self) -> bool:
        """Whether every chain checked is intact."""
        return self.broken is None


# The database assembles each event's canonical text (biobank.custody.chain.event_hash) as
# UTF-8, so verifying costs Python one SHA-256 and two comparisons per event. The time is
# "YYYY-MM-DD HH:MM:SS.ffffff": the very text SQLAlchemy keeps in SQLite; PostgreSQL
# formats its own. printf (SQLite) and format (PostgreSQL) build the text in one go, in C.
_CANONICAL = """{format}('{prefix}%s|%s:%s|%s:%s|%s|%s|%s:%s|%s:%s|%s', {number},
    length(event_type), event_type, length(actor), actor, {stamp},
    CASE WHEN reason IS NULL THEN '-' ELSE length(reason) || ':' || reason END,
    length(COALESCE(CAST(old_values AS TEXT), 'null')), COALESCE(CAST(old_values AS TEXT), 'null'),
    length(COALESCE(CAST(new_values AS TEXT), 'null')), COALESCE(CAST(new_values AS TEXT), 'null'),
    COALESCE(prev_hash, ''))"""
_STAMP = {"postgresql": "to_char(occurred_at, 'YYYY-MM-DD HH24:MI:SS.US')", "sqlite": "occurred_at"}
# PostgreSQL hashes in the database too, and sends the text only for a mismatch.
_TEXT = {
    "postgresql": "CASE WHEN encode(sha256(convert_to({canonical}, 'UTF8')), 'hex') = hash "
    "THEN NULL ELSE convert_to({canonical}, 'UTF8') END",
    "sqlite": "CAST({canonical} AS BLOB)",
}
# Chain by chain, each oldest first: the order of the indexes on (aliquot_id, id) and
# (sample_id, id), so no chain's last hash needs remembering past its last event.
_VERIFY_SQL = (
    "SELECT id, {number}, {text}, prev_hash, hash FROM custody_event "
    "WHERE {where} ORDER BY {number}, id"
)
# Rows per fetch: batches of 10,000 kept enough rows alive to set off full garbage
# collections over the whole app (a sixth slower).
_BATCH = 1_000


@dataclass(frozen=True)
class _Chains:
    """Which chains to walk: aliquots' ("a") or samples' own ("s"), and which events."""

    prefix: str
    number: str
    where: str


_ALL = (
    _Chains("a", "aliquot_id", "aliquot_id IS NOT NULL"),
    # With sample_id NULL too, which the check constraint forbids: such an event, written
    # around it, is read (and found broken) rather than skipped.
    _Chains("s", "sample_id", "aliquot_id IS NULL"),
)


def _select(dialect: str, chains: _Chains) -> str:
    canonical = _CANONICAL.format(
        format="format" if dialect == "postgresql" else "printf",
        prefix=chains.prefix,
        number=chains.number,
        stamp=_STAMP.get(dialect, _STAMP["sqlite"]),
    )
    return _VERIFY_SQL.format(
        number=chains.number,
        where=chains.where,
        text=_TEXT.get(dialect, _TEXT["sqlite"]).format(canonical=canonical),
    )


def _batches(raw: Any, dialect: str, sql: str) -> Iterator[list[Any]]:
    """The rows of ``sql`` from the driver's cursor, a batch at a time. PostgreSQL streams
    them (libpq's chunked rows), computing the next rows while Python checks these."""
    if dialect == "postgresql":
        import psycopg

        if psycopg.capabilities.has_stream_chunked():
            cursor = raw.cursor()
            stream = cursor.stream(sql, size=_BATCH)
            try:
                while rows := list(islice(stream, _BATCH)):
                    yield rows
            finally:
                stream.close()
                cursor.close()
            return
    cursor = raw.cursor("custody_verify") if dialect == "postgresql" else raw.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(_BATCH):
            yield rows
    finally:
        cursor.close()


def _walk(
    session: Session, walks: tuple[_Chains, ...], progress: Callable[[int], None] | None = None
) -> Verification:
    """Check the chains straight from the driver's cursor; then look closer, oldest first,
    at the events the fast check could not settle, until one is broken."""
    session.flush()
    connection = session.connection()
    dialect = connection.dialect.name
    checker = ChainCheck()
    for chains in walks:
        checker.start(chains.prefix)
        for rows in _batches(connection.connection, dialect, _select(dialect, chains)):
            checker.scan(rows)
            if progress is not None:
                progress(len(rows))
    looked_at = 0
    for event_id, key, expected in sorted(checker.suspects):
        looked_at += 1
        problem = _diagnose(session, event_id, key, expected)
        if problem is not None:
            # As many as a walk in id order would have checked when it got there.
            checked = (
                session.scalar(
                    select(func.count())
                    .select_from(CustodyEvent)
                    .where(
                        CustodyEvent.id <= event_id,
                        text("(" + " OR ".join(f"({chains.where})" for chains in walks) + ")"),
                    )
                )
                or 0
            )
            return Verification(
                checked, checker.chains, _broken(session, event_id, problem), looked_at
            )
    return Verification(checker.checked, checker.chains, None, looked_at)


def _diagnose(session: Session, event_id: int, key: str, expected_prev: str) -> str | None:
    """Look at one event's values as the application reads them."""
    e = CustodyEvent
    try:
        row = session.execute(
            select(
                e.event_type,
                e.actor,
                e.occurred_at,
                e.reason,
                e.old_values,
                e.new_values,
                e.prev_hash,
                e.hash,
            ).where(e.id == event_id)
        ).one()
    except ValueError:  # a JSON value or a time that cannot be read back
        return "its time or values are unreadable: the event was altered"
    return diagnose(key, *row, expected_prev)


def _broken(session: Session, event_id: int, problem: str) -> Broken:
    aliquot_id, sample_id = session.execute(
        select(CustodyEvent.aliquot_id, CustodyEvent.sample_id).where(CustodyEvent.id == event_id)
    ).one()
    aliquot = (
        session.scalar(select(Aliquot.barcode).where(Aliquot.id == aliquot_id))
        if aliquot_id is not None
        else None
    )
    sample = (
        session.scalar(select(Sample.barcode).where(Sample.id == sample_id))
        if sample_id is not None
        else None
    )
    return Broken(event_id, aliquot, sample, problem)


def count_events(session: Session) -> int:
    """How many custody events there are (for a progress bar)."""
    return session.scalar(select(func.count()).select_from(CustodyEvent)) or 0


def verify_all(session: Session, progress: Callable[[int], None] | None = None) -> Verification:
    """Walk every chain; report the first (oldest) broken event."""
    return _walk(session, _ALL, progress)


def verify_aliquot(session: Session, aliquot_id: int) -> Verification:
    """Walk one tube's chain."""
    return _walk(session, (_Chains("a", "aliquot_id", f"aliquot_id = {int(aliquot_id)}"),))


def verify_sample(session: Session, sample_id: int) -> Verification:
    """Walk a sample's own chain (its events without an aliquot)."""
    return _walk(
        session,
        (_Chains("s", "sample_id", f"sample_id = {int(sample_id)} AND aliquot_id IS NULL"),),
    )


# --- export ------------------------------------------------------------------------------

COLUMNS = (
    "id",
    "aliquot",
    "sample",
    "event_type",
    "actor",
    "occurred_at",
    "reason",
    "old_values",
    "new_values",
    "prev_hash",
    "hash",
)


def _export_query(where: Any) -> Select[Any]:
    e = CustodyEvent
    tube = aliased(Aliquot)
    own = aliased(Sample)
    tube_sample = aliased(Sample)
    return (
        select(
            e.id,
            tube.barcode,
            func.coalesce(own.barcode, tube_sample.barcode),
            e.event_type,
            e.actor,
            e.occurred_at,
            e.reason,
            e.old_values,
            e.new_values,
            e.prev_hash,
            e.hash,
        )
        .outerjoin(tube, tube.id == e.aliquot_id)
        .outerjoin(tube_sample, tube_sample.id == tube.sample_id)
        .outerjoin(own, own.id == e.sample_id)
        .where(where)
        .order_by(e.id)
    )


def aliquot_history(aliquot_id: int) -> Select[Any]:
    """The select behind a tube's full custody history."""
    return _export_query(CustodyEvent.aliquot_id == aliquot_id)


def events_between(within: scope.Scope, start: dt.datetime, end: dt.datetime) -> Select[Any]:
    """The select behind every event with start <= occurred_at < end, of the tubes and
    samples at the scope's sites."""
    return _export_query(
        (CustodyEvent.occurred_at >= start)
        & (CustodyEvent.occurred_at < end)
        & scope.event_filter(within, CustodyEvent.aliquot_id, CustodyEvent.sample_id)
    )


def _records(session: Session, query: Select[Any]) -> Iterator[dict[str, Any]]:
    for partition in session.execute(query.execution_options(yield_per=_STREAM)).partitions():
        for row in partition:
            record = dict(zip(COLUMNS, row, strict=True))
            record["occurred_at"] = record["occurred_at"].isoformat()
            yield record


def csv_lines(session: Session, query: Select[Any]) -> Iterator[str]:
    """The events as CSV (header first), a chunk of lines at a time; values as JSON; every
    cell through the safe writer (a reason such as ``=HYPERLINK(...)`` stays text)."""

    def rows() -> Iterator[list[Any]]:
        for record in _records(session, query):
            for key in ("old_values", "new_values"):
                value = record[key]
                record[key] = "" if value is None else json.dumps(value, sort_keys=True)
            yield list(record.values())

    return csvsafe.stream_csv(COLUMNS, rows())


def json_chunks(session: Session, query: Select[Any], header: dict[str, Any]) -> Iterator[str]:
    """The events as one JSON document: ``header`` plus an "events" list, streamed."""
    head = json.dumps(header, sort_keys=True)
    yield head[:-1] + (", " if header else "") + '"events": ['
    for count, record in enumerate(_records(session, query)):
        yield ("," if count else "") + "\n" + json.dumps(record, sort_keys=True)
    yield "\n]}\n"
