"""Declarative base, engine set-up and the per-request session."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import orjson
from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import JSON, MetaData, Numeric, String, create_engine, event, literal_column
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import (
    DeclarativeBase,
    QueryableAttribute,
    Session,
    mapped_column,
    sessionmaker,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import DateTime, TypeDecorator

F = TypeVar("F")
T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: give every timestamp a time zone")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


Code = Annotated[str, 32]
Str64 = Annotated[str, 64]
Str200 = Annotated[str, 200]
Volume = Annotated[Decimal, "volume"]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        Code: String(32),
        Str64: String(64),
        Str200: String(200),
        str: String(),
        dt.datetime: UTCDateTime(),
        Volume: Numeric(10, 3),
        Decimal: Numeric(12, 4),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def pk() -> Any:
    """An integer primary key column."""
    return mapped_column(primary_key=True)


class json_rows(FunctionElement[Any]):  # noqa: N801 (an SQL function, named like one)
    """An aggregate: the rows of a (sub)query as a JSON list of objects ``{name: value}``.

    ``json_group_array(json_object(…))`` on SQLite, ``json_agg(json_build_object(…))`` on
    PostgreSQL; read back as Python lists (None on PostgreSQL when there are no rows). It lets
    one statement carry a row's one-to-many details, e.g. the scan's events and consent log.
    Values come back as JSON has them: timestamps and dates as text, in the database's format.
    """

    type = JSON()
    inherit_cache = True
    name = "json_rows"

    def __init__(self, **values: ColumnElement[Any] | QueryableAttribute[Any]) -> None:
        pairs: list[ColumnElement[Any] | QueryableAttribute[Any]] = []
        for key, value in values.items():
            if not key.isidentifier():
                raise ValueError(f"json_rows: {key!r} is not a plain name")
            pairs += [literal_column(f"'{key}'"), value]
        super().__init__(*pairs)


class json_value(FunctionElement[Any]):  # noqa: N801
    """A JSON column inside ``json_rows``: embedded as JSON, not as its text (SQLite)."""

    type = JSON()
    inherit_cache = True
    name = "json_value"


@compiles(json_rows, "sqlite")
def _json_rows_sqlite(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array(json_object({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_agg(json_build_object({compiler.process(element.clauses, **kw)}))"


@compiles(json_value, "sqlite")
def _json_value_sqlite(element: json_value, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json({compiler.process(element.clauses, **kw)})"


@compiles(json_value)
def _json_value_default(element: json_value, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


def json_timestamp(value: str | None) -> dt.datetime | None:
    """A timestamp read from ``json_rows`` (stored in UTC, without zone), made aware."""
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


SQLITE_MMAP_BYTES = 1 << 30


def make_engine(
    url: str, echo: bool = False, busy_seconds: float = 30.0, connect_seconds: float = 5.0
) -> Engine:
    """Create the engine; SQLite gets real transactions, foreign keys and WAL. JSON columns
    are read with orjson (the scan reads four per tube; half the time of the json module).
    PostgreSQL connections give up after ``connect_seconds`` (then the request is a 503)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": busy_seconds}, json_deserializer=orjson.loads
        )
        database_file = make_url(url).database

        @event.listens_for(engine, "do_connect")
        def _private_file(*_args: Any) -> None:
            # The file holds everything: readable by its owner only (sqlite3 would make it
            # 0644 under the usual umask); its -wal and -shm files take the same mode.
            if (
                database_file
                and database_file != ":memory:"
                and not database_file.startswith("file:")
            ):
                try:
                    os.close(os.open(database_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    pass
                except OSError:
                    pass  # a folder that is gone: sqlite3 says so, as an OperationalError

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling breaks SAVEPOINT; take it over.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode = WAL")
                # Reads through a memory map of the file: a page the OS holds is read without
                # a system call and a copy into SQLite's cache (a faster scan at full size:
                # docs/performance.md); the map is address space, the memory the OS page cache.
                cursor.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Statement journals and temporary b-trees in memory, not in temporary files: a
            # statement that fires triggers (the availability tally's) opens a journal each time.
            cursor.execute("PRAGMA temp_store = MEMORY")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Straight to the driver: every request begins a transaction, and BEGIN needs
            # none of SQLAlchemy's statement handling. Read-only requests need none.
            if not conn.get_execution_options().get(READ_ONLY):
                conn.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]

        _refuse_writes_when_read_only(engine)
        return engine
    # libpq counts connect_timeout in whole seconds (at least 2).
    connect: dict[str, Any] = {"connect_timeout": max(2, round(connect_seconds))}
    if "options" not in make_url(url).query:
        # No JIT compilation: it starts when a plan's estimated cost is high, and a scoped
        # page of 100 tubes (a recursive CTE the planner cannot size) spent 200-420 ms
        # compiling to run in 8 ms. The service's statements are short; none gains by it.
        connect["options"] = "-c jit=off"
    engine = create_engine(url, echo=echo, json_deserializer=orjson.loads, connect_args=connect)
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    _refuse_writes_when_read_only(engine)
    return engine


# --- read-only requests ---------------------------------------------------------------------

READ_ONLY = "biobank_read_only"
_READS = ("SELECT", "WITH", "PRAGMA", "SHOW")


def read_only(view: F) -> F:
    """Declare a view read-only: its requests run without an explicit transaction.

    Each statement is then its own transaction (one consistent snapshot), and BEGIN and
    COMMIT are not sent: two round trips fewer on PostgreSQL, for views that only read
    (the scan answers in one statement after the token). Anything else such a request
    sends is refused before it reaches the database (``ReadOnlyViolation``), so a write
    added to a read-only view later fails loudly instead of committing on its own.
    """
    view.__dict__[READ_ONLY] = True
    return view


class ReadOnlyViolation(RuntimeError):
    """A read-only request tried to write."""


def refuse_if_read_only(connection: Connection, what: str) -> None:
    """For writes that bypass SQLAlchemy's statement events (PostgreSQL's COPY): refuse them
    on a read-only request's connection as the event guard refuses the others."""
    if connection.get_execution_options().get(READ_ONLY):
        raise ReadOnlyViolation(f"a read-only request may not run: {what[:80]!r}")


def _refuse_writes_when_read_only(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _check(
        conn: Connection,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        if not conn.get_execution_options().get(READ_ONLY):
            return
        writes = context is not None and (context.isinsert or context.isupdate or context.isdelete)
        if writes or not statement.lstrip()[:8].upper().startswith(_READS):
            raise ReadOnlyViolation(f"a read-only request may not run: {statement[:80]!r}")


def is_read_only(session: Session) -> bool:
    """Whether a session is a read-only request's (it runs in autocommit, writes nothing)."""
    return bool(session.info.get(READ_ONLY))


def _read_only_request() -> bool:
    if not has_request_context() or request.endpoint is None:
        return False
    view = current_app.view_functions.get(request.endpoint)
    return bool(getattr(view, READ_ONLY, False))


# A pooled connection unused for this long is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine, seconds: float) -> None:
    """Check a pooled connection before use when it has been idle ``seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip on every
    request, a large share of a scan's database time (docs/performance.md). A connection in
    steady use is known to be alive; one that sat idle may have been dropped (a database
    restart, a firewall's idle timeout), so only that one is pinged, and replaced if dead.
    A connection that dies while in use fails its request, and SQLAlchemy discards it.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool replaces the connection and checks out another.
            raise DisconnectionError(f"idle connection found dead: {error}") from error


def init_app(app: Flask) -> None:
    """Attach an engine and a session factory to the app; close sessions at teardown."""
    engine = make_engine(
        app.config["DATABASE_URL"],
        echo=app.config["SQL_ECHO"],
        busy_seconds=app.config["SQLITE_BUSY_SECONDS"],
        connect_seconds=app.config["DATABASE_CONNECT_TIMEOUT"],
    )
    app.extensions["biobank.engine"] = engine
    app.extensions["biobank.sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    # Read-only requests: autocommit (SQLite: no BEGIN, see make_engine; pysqlite's own
    # AUTOCOMMIT switch would undo the connection's transaction set-up when reset).
    reads: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name != "sqlite":
        reads["isolation_level"] = "AUTOCOMMIT"
    reader = engine.execution_options(**reads)
    app.extensions["biobank.read_engine"] = reader
    app.extensions["biobank.read_sessionmaker"] = sessionmaker(
        bind=reader, expire_on_commit=False, info={READ_ONLY: True}
    )

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        connection: Connection | None = g.pop("db_connection", None)
        if connection is not None:
            connection.close()
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.close()


def closing_stream(chunks: Iterable[T]) -> Iterator[T]:
    """A response body read from the database while it is sent: ``chunks``, then the
    request's session and connection closed.

    A streamed body is iterated after the request has ended: its teardown has closed the
    session already, and the session, used again by the body, takes a connection that no
    teardown returns (the pool ran dry after some thousands of exports). Closing at the end
    of the body (or when the server closes it early) gives it back."""
    session: Session | None = g.get("db_session")
    connection: Connection | None = g.get("db_connection")
    # The request's globals: if its teardown has not run yet when the body ends (an app
    # context that outlives the request, as in the tests), the teardown still closes them.
    request_g = g._get_current_object()  # type: ignore[attr-defined]

    def stream() -> Iterator[T]:
        try:
            yield from chunks
        finally:
            if connection is not None and request_g.get("db_connection") is not connection:
                connection.close()
            if session is not None and request_g.get("db_session") is not session:
                session.close()

    return stream()


def bind_to_connection(app: Flask, connection: Connection) -> None:
    """Make the app's sessions join an outer transaction (tests roll it back); read-only
    requests too (the outer transaction cannot be left for autocommit)."""
    app.extensions["biobank.sessionmaker"] = app.extensions["biobank.read_sessionmaker"] = (
        sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
    )
    app.extensions["biobank.read_engine"] = None  # read_connection() reads through the session


PREPARERS = "biobank.session_preparers"


def get_session() -> Session:
    """The session of the current request or CLI command, made on first use (and handed to
    the app's ``PREPARERS``: the site scope binds itself to it)."""
    if "db_session" not in g:
        maker = "biobank.read_sessionmaker" if _read_only_request() else "biobank.sessionmaker"
        g.db_session = current_app.extensions[maker]()
        for prepare in current_app.extensions.get(PREPARERS, ()):
            prepare(g.db_session)
    return g.db_session


def read_connection() -> Connection:
    """A read-only request's database connection, without an ORM session (the busiest reads
    need none, and making one is a measurable part of a scan); elsewhere, and in tests, the
    session's connection."""
    reader: Engine | None = current_app.extensions.get("biobank.read_engine")
    if reader is None or "db_session" in g or not _read_only_request():
        return get_session().connection()
    if "db_connection" not in g:
        g.db_connection = reader.connect()
    return g.db_connection


def get_engine() -> Engine:
    """The current app's engine."""
    return current_app.extensions["biobank.engine"]
