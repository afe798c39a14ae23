"""The PostgreSQL side of a port: its schema, its progress table, COPY, sequences, FTS.

Progress is kept in the target itself, in ``sat_storage_port`` (one row per table:
the last key copied and the rows copied), updated in the same transaction as each
batch: after an interruption the target holds exactly the rows the table says, so
the next run resumes after them without duplicates. The table is dropped once the
port is verified.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from sat_storage import engines, fts, item_counts, migration
from sat_storage.port.tables import PortTable, copy_rows

STATE_TABLE = "sat_storage_port"
META = ""  # the state row describing the port itself (table_name '')


def conninfo(url: str) -> str:
    """The libpq connection string of a ``postgresql+psycopg://`` URL."""
    parsed = engines.parse_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url: str) -> psycopg.Connection[Any]:
    """A psycopg connection to the target, in UTC (COPY reads SQLite's UTC dates)."""
    connection = psycopg.connect(conninfo(url), connect_timeout=10)
    connection.execute("SET TIME ZONE 'UTC'")
    connection.commit()
    return connection


def upgrade_schema(url: str) -> tuple[migration.SchemaState, dict[str, str | None]]:
    """Create or upgrade the target to this code's head, as the storage does at start:
    the core, then every installed plugin schema; the core state and each plugin
    schema's revision (None when its schema could not be brought to its head)."""
    from sat_storage import branches, schemas

    engine = engines.create_engine(url)
    try:
        with engine.connect() as connection:
            core = migration.initialise_schema(connection)
            states = branches.initialise_plugin_schemas(connection, schemas.discover())
            revisions = {
                name: state.current if state.ready else None for name, state in states.items()
            }
            connection.rollback()
            return core, revisions
    finally:
        engine.dispose()


def read_revision(url: str) -> tuple[str | None, bool]:
    """The target's revision and whether it has any table (nothing is changed)."""
    engine = engines.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            connection.rollback()
            return migration.current_revision(connection), bool(tables)
    finally:
        engine.dispose()


def has_state(connection: psycopg.Connection[Any]) -> bool:
    """Whether an interrupted port left its progress table."""
    found = connection.execute("SELECT to_regclass(%s) IS NOT NULL", [STATE_TABLE]).fetchone()
    connection.rollback()
    return bool(found and found[0])


def non_empty(connection: psycopg.Connection[Any], tables: list[PortTable]) -> dict[str, int]:
    """Tables of the target holding rows, with their count."""
    counts = {}
    for table in tables:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))
        count = connection.execute(query).fetchone()[0]
        if count:
            counts[table.name] = count
    connection.rollback()
    return counts


def create_state(connection: psycopg.Connection[Any], meta: dict[str, Any]) -> None:
    """Create the progress table, recording ``meta`` (source, revision, snapshot)."""
    with connection.transaction():
        connection.execute(
            sql.SQL(
                "CREATE TABLE {} (table_name text PRIMARY KEY, last_key text, "
                "rows bigint NOT NULL DEFAULT 0, done boolean NOT NULL DEFAULT false)"
            ).format(sql.Identifier(STATE_TABLE))
        )
        connection.execute(
            sql.SQL("INSERT INTO {} (table_name, last_key) VALUES (%s, %s)").format(
                sql.Identifier(STATE_TABLE)
            ),
            [META, json.dumps(meta)],
        )


def read_state(connection: psycopg.Connection[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, progress)``: progress maps a table to ``{last_key, rows, done}``."""
    rows = connection.execute(
        sql.SQL("SELECT table_name, last_key, rows, done FROM {}").format(
            sql.Identifier(STATE_TABLE)
        )
    ).fetchall()
    connection.rollback()
    meta: dict[str, Any] = {}
    progress: dict[str, Any] = {}
    for name, last_key, count, done in rows:
        if name == META:
            meta = json.loads(last_key)
        else:
            key = json.loads(last_key) if last_key is not None else None
            progress[name] = {"last_key": key, "rows": count, "done": done}
    return meta, progress


def drop_state(connection: psycopg.Connection[Any]) -> None:
    """Remove the progress table (the port is verified)."""
    with connection.transaction():
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(STATE_TABLE)))


def copy_batch(
    connection: psycopg.Connection[Any],
    table: PortTable,
    rows: list[tuple[Any, ...]],
    copied: int,
    done: bool,
) -> None:
    """COPY ``rows`` into ``table`` and record the progress, in one transaction."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table.name), columns)
    last_key = json.dumps(table.key_of(rows[-1])) if rows else None
    with connection.transaction():
        if rows:
            with connection.cursor().copy(statement) as copy:
                for row in copy_rows(table, rows):
                    copy.write_row(row)
        connection.execute(
            sql.SQL(
                "INSERT INTO {} (table_name, last_key, rows, done) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (table_name) DO UPDATE SET "
                "last_key = coalesce(excluded.last_key, {}.last_key), "
                "rows = excluded.rows, done = excluded.done"
            ).format(sql.Identifier(STATE_TABLE), sql.Identifier(STATE_TABLE)),
            [table.name, last_key, copied, done],
        )


def fix_sequences(connection: psycopg.Connection[Any], tables: list[PortTable]) -> list[str]:
    """Move each serial key's sequence past the largest id copied; the sequences set."""
    fixed = []
    with connection.transaction():
        for table in tables:
            if table.serial is None:
                continue
            found = connection.execute(
                "SELECT pg_get_serial_sequence(%s, %s)",
                [table.name, table.serial],
            ).fetchone()
            if not found or found[0] is None:
                continue
            query = sql.SQL("SELECT setval(%s, coalesce(max({}), 0) + 1, false) FROM {}").format(
                sql.Identifier(table.serial), sql.Identifier(table.name)
            )
            connection.execute(query, [found[0]])
            fixed.append(found[0])
    return fixed


def drop_derived(connection: psycopg.Connection[Any]) -> None:
    """Drop what the database derives from item rows before the copy: the full-text
    column and index (rebuilt once at the end) and the item count triggers (the nodes'
    counts and versions are copied: the items' rows must not add to them)."""
    with connection.transaction():
        for statement in fts.drop_statements("postgresql") + item_counts.drop_statements(
            "postgresql"
        ):
            connection.execute(statement)


WORDS_BATCH = 5000
_SET_VECTORS = (
    f"UPDATE pubsub_items SET {fts.VECTOR_COLUMN} = "
    + fts.POSTGRESQL_VECTOR.format("w.words")
    + " FROM unnest(%s::bigint[], %s::text[]) AS w(id, words) WHERE pubsub_items.id = w.id"
)


def _index_words(connection: psycopg.Connection[Any], words: sqlite3.Connection) -> None:
    """Set every item's vector from its words in the SQLite FTS5 table (the words it was
    indexed with: no XML parsed again), in batches."""
    cursor = words.execute(f"SELECT rowid, {fts.TEXT_COLUMN} FROM {fts.TABLE} ORDER BY rowid")
    while batch := cursor.fetchmany(WORDS_BATCH):
        ids, texts = zip(*batch, strict=True)
        connection.execute(_SET_VECTORS, [list(ids), list(texts)])


def rebuild_derived(connection: psycopg.Connection[Any], words: sqlite3.Connection) -> None:
    """Create them again (once: a resumed port may find them): every item is indexed
    with the words it has in the source's FTS5 table (``words``: the snapshot); item
    writes are counted from then on."""
    with connection.transaction():
        present = connection.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'pubsub_items' "
            "AND column_name = %s",
            [fts.VECTOR_COLUMN],
        ).fetchone()
        if not present:
            for statement in fts.create_statements("postgresql"):
                connection.execute(statement)
            _index_words(connection, words)
        counted = connection.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s", [item_counts.TRIGGERS[0]]
        ).fetchone()
        if not counted:
            for statement in item_counts.create_statements("postgresql"):
                connection.execute(statement)
