"""Engine creation and the SQLite/PostgreSQL differences of the storage's SQL.

SQLite (embedded default): a 0600 file in a 0700 directory, WAL journal, foreign keys,
a busy timeout, ``BEGIN IMMEDIATE`` transactions and a single database thread, so
writes are serialised and "database is locked" never reaches a caller; every
connection also gets the SQL functions the storage uses (``sat_lower``).
PostgreSQL (scale-out): psycopg 3, a small pool and as many database threads; a
pooled connection is pinged when checked out (one round trip, as SQLAlchemy's
``pool_pre_ping``) except by the driver reads and writes (:func:`checkout_unpinged`),
which run again on a lost connection instead (:meth:`sat_storage.gateway.Gateway.read`,
:meth:`~sat_storage.gateway.Gateway.write`).
Dialect SQL of the table families lives here too: upserts, byte lengths, bulk
bind parameters, substring and case folding. (Full-text search and JSON paths keep
theirs in :mod:`sat_storage.fts` and :mod:`sat_storage.storage.search`.)
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InvalidatePoolError
from sqlalchemy.pool import PoolProxiedConnection, StaticPool

from sat_storage import json_text

SQLITE_BUSY_TIMEOUT_MS = 30_000
# ``[storage] sqlite_synchronous``: NORMAL (WAL) survives a crash of the process but may
# lose the last commits on power loss; FULL and EXTRA fsync every commit.
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
SQLITE_SYNCHRONOUS_DEFAULT = "NORMAL"
# The page size of a *new* SQLite database (an existing file keeps its own; in WAL
# mode SQLite cannot change it): an item row (XML + parsed JSON, ~1.2 KB for an Atom
# post) fills a 4 KiB page 3 to a page; 8 KiB pages hold it with less waste (figures:
# bench/layout.py, doc/benchmarks.rst).
SQLITE_PAGE_SIZE = 8192
POSTGRESQL_THREADS = 6
SUPPORTED = ("sqlite", "postgresql")
# serialization_failure, deadlock_detected
TRANSIENT_SQLSTATES = ("40001", "40P01")
# admin_shutdown, crash_shutdown, cannot_connect_now: the server ends the connection
LOST_SQLSTATES = ("57P01", "57P02", "57P03")
FOREIGN_KEY_VIOLATION = "23503"  # PostgreSQL's SQLSTATE
# lower(): the SQLite function, the PostgreSQL collation (ICU root, built in)
LOWER_FUNCTION = "sat_lower"
ICU_ROOT_COLLATION = "und-x-icu"


class UnsupportedDatabase(ValueError):
    """The database URL names an engine this package does not support."""


def parse_url(url: str | URL) -> URL:
    """Parse and normalise a database URL (``postgresql://`` means psycopg 3).

    Raise :class:`UnsupportedDatabase`, naming the URL (password hidden), when it is
    malformed or names an engine or driver this package does not support.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as e:
        raise UnsupportedDatabase(f"malformed database URL {_hidden(url)!r}: {e}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in SUPPORTED:
        raise UnsupportedDatabase(
            f"unsupported database {backend!r} in URL {safe_url(parsed)!r}: "
            "use sqlite or postgresql"
        )
    if backend == "sqlite" and driver != "pysqlite":
        raise UnsupportedDatabase(
            f"unsupported SQLite driver {driver!r} in URL {safe_url(parsed)!r}: "
            "use sqlite:///PATH (the standard sqlite3 module)"
        )
    if backend == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _hidden(url: object) -> str:
    """``url`` as text with any password hidden, even when it does not parse."""
    text = str(url)
    return re.sub(r"(://[^:/?#@]*:)[^@/?#]*@", r"\1***@", text)


def url_text(url: URL) -> str:
    """The URL as text that connects (password included): never log it."""
    return url.render_as_string(hide_password=False)


def is_sqlite(engine_or_url: Engine | URL) -> bool:
    """True for SQLite engines and URLs."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """File of a SQLite URL, or None for an in-memory database.

    ``sqlite:///file:PATH?uri=true`` URIs name a file too, unless they say
    ``:memory:`` or ``mode=memory``.
    """
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:") and url.query.get("uri") in ("true", "1"):
        database = database[len("file:") :]
        if url.query.get("mode") == "memory" or database in ("", ":memory:"):
            return None
    return Path(database)


def _prepare_sqlite_file(path: Path) -> None:
    """Create the directory (0700) and the file (0600) before SQLite does."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def sqlite_synchronous(value: object) -> str:
    """The checked ``sqlite_synchronous`` setting (case-insensitive), upper case.

    ``None`` gives the default (``NORMAL``); anything else but one of
    :data:`SQLITE_SYNCHRONOUS` is a ``ValueError`` naming the setting.
    """
    if value is None:
        return SQLITE_SYNCHRONOUS_DEFAULT
    if isinstance(value, str) and value.strip().upper() in SQLITE_SYNCHRONOUS:
        return value.strip().upper()
    raise ValueError(
        f"sqlite_synchronous: {value!r} is not one of {', '.join(SQLITE_SYNCHRONOUS)}"
    )


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    """Per-connection pragmas and explicit ``BEGIN IMMEDIATE`` transactions."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")  # only a new file takes it
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")  # a checked constant
        cursor.close()
        # lower(): Python's lower-casing (SQLite's own folds ASCII only)
        dbapi_connection.create_function(LOWER_FUNCTION, 1, unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        # Take the write lock up front: a deferred transaction that later writes
        # can fail with SQLITE_BUSY without waiting for the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


#: ``connection_record.info`` key of a connection not checked out since it connected
_FRESH = "sat_storage_fresh"
_checkout = threading.local()  # ``unpinged``: the thread's checkout skips the ping


def _configure_postgresql(engine: Engine) -> None:
    """Ping a pooled connection when it is checked out, as ``pool_pre_ping`` does
    (not a new one; a lost one invalidates every connection of the pool older than
    now, which are then replaced at their next checkout), unless the checkout is
    :func:`checkout_unpinged`'s."""
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_FRESH] = True

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop(_FRESH, False) or getattr(_checkout, "unpinged", False):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as e:
            if dialect.is_disconnect(e, dbapi_connection, None):
                raise InvalidatePoolError(f"lost connection found by the ping: {e}") from e
            raise


def checkout_unpinged(engine: Engine) -> PoolProxiedConnection:
    """A pooled DBAPI connection of ``engine`` checked out without the ping (a round
    trip on PostgreSQL): for reads and whole driver transactions that, on a lost
    connection, drop it and run again on a connection checked out with the ping
    (which finds the pool's other lost ones, as the ping of any checkout does)."""
    _checkout.unpinged = True
    try:
        return engine.raw_connection()
    finally:
        _checkout.unpinged = False


def create_engine(url: str | URL, *, synchronous: str | None = None) -> Engine:
    """Engine for ``url``, with this package's settings for its dialect.

    ``synchronous``: SQLite's ``PRAGMA synchronous`` (see :func:`sqlite_synchronous`;
    ignored for PostgreSQL).
    """
    parsed = parse_url(url)
    # JSON columns: text that both engines read back equal (big floats on jsonb)
    json_args = {"json_serializer": json_text.dumps}
    synchronous = sqlite_synchronous(synchronous)
    if is_sqlite(parsed):
        path = sqlite_path(parsed)
        if path is None:
            engine = sa.create_engine(
                parsed,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
                **json_args,
            )
        else:
            _prepare_sqlite_file(path)
            # one connection for the transactions, one kept by the reads (Gateway.read)
            engine = sa.create_engine(parsed, pool_size=2, max_overflow=0, **json_args)
        _configure_sqlite(engine, synchronous)
        return engine
    engine = sa.create_engine(
        parsed,
        pool_size=POSTGRESQL_THREADS,
        max_overflow=0,
        connect_args={"connect_timeout": 10},
        **json_args,
    )
    _configure_postgresql(engine)  # the pre-ping, but for the reads
    return engine


def thread_count(engine: Engine) -> int:
    """Database threads: one for SQLite (serialised writes), a pool for PostgreSQL."""
    return 1 if is_sqlite(engine) else POSTGRESQL_THREADS


def is_transient(error: BaseException) -> bool:
    """True for errors that a new attempt of the same transaction may not hit.

    Those are a busy/locked SQLite database, a PostgreSQL serialisation failure or
    deadlock, and a lost connection; the error may come wrapped by SQLAlchemy or raw
    from the driver.
    """
    orig: BaseException | None = error
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        orig = error.orig
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in TRANSIENT_SQLSTATES:
        return True
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        message = str(orig).lower()
        return "database is locked" in message or "database is busy" in message
    return False


def is_lost_connection(dialect: sa.Dialect, error: Exception, driver_connection: Any) -> bool:
    """True when the driver's ``error`` means ``driver_connection`` is lost: as the
    dialect tells it (psycopg's by the connection alone: closed or broken), or a
    PostgreSQL error ending the connection (a terminated server process, a shutdown,
    SQLSTATE class 08), which psycopg reports before it marks the connection broken."""
    if dialect.is_disconnect(error, driver_connection, None):
        return True
    state = getattr(error, "sqlstate", None)
    return isinstance(state, str) and (state in LOST_SQLSTATES or state.startswith("08"))


def is_foreign_key_violation(error: BaseException) -> bool:
    """True for a foreign key violation, wrapped by SQLAlchemy or raw from the driver."""
    orig = error.orig if isinstance(error, DBAPIError) else error
    if getattr(orig, "sqlstate", None) == FOREIGN_KEY_VIOLATION:
        return True
    if isinstance(orig, sqlite3.IntegrityError):
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
        return "foreign key constraint failed" in str(orig).lower()
    return False


def upsert(
    dialect_name: str,
    table: sa.Table,
    index_elements: Sequence[str],
    update_columns: Iterable[str],
    where: Callable[[Any], sa.ColumnElement[bool]] | None = None,
) -> sa.Insert:
    """``INSERT … ON CONFLICT (index_elements) DO UPDATE`` of ``update_columns``.

    ``where(excluded)``: the condition for updating a row that exists (``excluded``
    holds the proposed values). Execute it with a list of parameter dicts for a bulk
    upsert.
    """
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(index_elements),
        set_={name: stmt.excluded[name] for name in update_columns},
        where=None if where is None else where(stmt.excluded),
    )


def unicode_lower(value: str | None) -> str | None:
    """Full Unicode lower-casing (Unicode's default mapping, ``str.lower``)."""
    return None if value is None else value.lower()


def lower(dialect_name: str, expr: Any) -> sa.ColumnElement[Any]:
    """``expr`` lower-cased in SQL with :func:`unicode_lower`'s meaning, on both engines.

    SQLite's ``lower()`` folds ASCII only: the SQLite connections call Python's
    (registered as ``sat_lower`` on connect). PostgreSQL's ``lower()`` follows the
    collation (ASCII only under ``C``): it runs under the ICU root collation
    ``und-x-icu`` (same mapping as Python's, final sigma included), and the result
    compares by code point (``C``).
    """
    if dialect_name == "sqlite":
        return sa.type_coerce(getattr(sa.func, LOWER_FUNCTION)(expr), sa.Text)
    lowered = sa.func.lower(sa.collate(expr, ICU_ROOT_COLLATION), type_=sa.Text)
    return sa.type_coerce(sa.collate(lowered, "C"), sa.Text)


def insert_ignore(dialect_name: str, table: sa.Table, index_elements: Sequence[str]) -> sa.Insert:
    """``INSERT … ON CONFLICT (index_elements) DO NOTHING``."""
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(index_elements))


def safe_url(url: str | URL) -> str:
    """The URL as text with its password hidden (also when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return _hidden(url)


# --- dialect SQL of the table families ----------------------------------------------


def byte_length(dialect_name: str, column: Any) -> sa.ColumnElement[int]:
    """Size in bytes of a text column (SQLite before 3.43 has no ``octet_length``)."""
    if dialect_name == "postgresql":
        return sa.func.octet_length(column)
    return sa.func.length(sa.cast(column, sa.LargeBinary))


def has_substring(dialect_name: str, column: Any, value: str) -> sa.ColumnElement[bool]:
    """``value`` occurs in ``column``, case-sensitively (no LIKE pattern)."""
    if dialect_name == "sqlite":
        return sa.func.instr(column, value) > 0
    return sa.func.strpos(column, value) > 0


def bulk_bind(dialect_name: str, column: str) -> Any:
    """Bind parameter of a pre-processed ``pubsub_items`` column for bulk upserts.

    SQLite takes the text as is (no per-row type processing: twice as fast);
    PostgreSQL needs typed parameters (JSON text cast to JSONB).
    """
    if column == "node_id":
        return sa.bindparam(column, type_=sa.Integer())
    if dialect_name == "postgresql":
        if column == "parsed":
            return sa.cast(sa.bindparam(column, type_=sa.Text()), postgresql.JSONB)
        if column in ("created", "updated"):
            return sa.bindparam(column, type_=sa.DateTime(timezone=True))
    return sa.bindparam(column, type_=sa.Text())


def db_value(dialect: sa.Dialect, column: sa.Column[Any], value: Any) -> Any:
    """``value`` converted by ``column``'s type as it would be when bound."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)


def ddl_listener(statements: Callable[[str], Sequence[str]]) -> Callable[..., None]:
    """A table ``after_create``/``after_drop`` listener running ``statements(dialect)``
    (raw DDL the models cannot express: triggers, generated columns)."""

    def listener(target: sa.Table, connection: sa.Connection, **kw: Any) -> None:
        for statement in statements(connection.dialect.name):
            connection.exec_driver_sql(statement)

    return listener
