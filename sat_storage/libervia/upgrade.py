"""The in-place upgrade of a Libervia 0.9 database to this package's head.

One SQLite transaction (``BEGIN IMMEDIATE``, foreign keys off, checked before the
commit): Libervia's full-text table, triggers and indexes are dropped, its tables
renamed aside, this package's tables created from the models, every row copied with
its ids and converted (:data:`CONVERTERS`), the old tables dropped and
``alembic_version`` set to this package's head. Any error rolls everything back: the
file is as Libervia left it.

What is converted:

- pickles (``history.extra``, ``private_*_bin.value``) -> JSON by the restricted
  unpickler (:mod:`sat_storage.libervia.values`); a refused pickle names its row;
- enum names (``pubsub_nodes.sync_state``, ``pubsub_subs.state``: ``COMPLETED``) ->
  this package's values (``completed``);
- ``'null'`` JSON text -> SQL NULL (``pubsub_nodes.extra``, ``pubsub_items.parsed``);
  NULL ``files.access``/``extra`` -> ``{}`` (what Libervia gives back for them);
- naive-UTC date text (``2024-01-02 03:04:05``) -> this package's UTC form;
- the full-text words computed for every item (this package's text-content index,
  :mod:`sat_storage.fts`, written to its own FTS5 table), which replace Libervia's
  FTS5 table on the raw XML.

Libervia revisions older than its head lack some tables or columns: those are taken
as empty or NULL.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sat_storage import fts, migration
from sat_storage.libervia import detect
from sat_storage.libervia.errors import AdoptionError
from sat_storage.libervia.values import PickleRefused, to_json, unpickle
from sat_storage.models import Base, SubscriptionState, SyncState

__all__ = ["CONVERTERS", "OLD_PREFIX", "upgrade_connection"]

log = logging.getLogger(__name__)
OLD_PREFIX = "_libervia_"
BATCH = 2000
# The models' SQLite date form (SQLAlchemy's DATETIME storage format)
DATE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
LIBERVIA_FTS = (
    "pubsub_items_fts_sync_ins",
    "pubsub_items_fts_sync_del",
    "pubsub_items_fts_sync_upd",
)

Row = dict[str, Any]


def _json_text(value: Any) -> Any:
    """JSON for a JSON column: a bare number as a BLOB (NUMERIC affinity would change it)."""
    text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return text.encode()
    return text


def _from_pickle(column: str) -> Callable[[Row], None]:
    def convert(row: Row) -> None:
        raw = row[column]
        if raw is None:
            return
        row[column] = _json_text(to_json(unpickle(raw)))

    return convert


def _enum(column: str, enum_cls: Any) -> Callable[[Row], None]:
    names = {m.name: m.value for m in enum_cls}
    values = set(names.values())

    def convert(row: Row) -> None:
        value = row[column]
        if value is None or value in values:
            return
        try:
            row[column] = names[value]
        except KeyError:
            raise ValueError(f"{column} {value!r} is none of {', '.join(names)}") from None

    return convert


def _null_json(column: str) -> Callable[[Row], None]:
    def convert(row: Row) -> None:
        value = row[column]
        if value is None:
            return
        decoded = json.loads(value)
        row[column] = None if decoded is None else _json_text(decoded)

    return convert


def _dict_default(column: str) -> Callable[[Row], None]:
    def convert(row: Row) -> None:
        value = row[column]
        decoded = None if value is None else json.loads(value)
        row[column] = "{}" if decoded is None else _json_text(decoded)

    return convert


def _date(column: str) -> Callable[[Row], None]:
    def convert(row: Row) -> None:
        value = row[column]
        if value is None:
            return
        if isinstance(value, (int, float)):
            raise ValueError(f"{column} is a number, not a date: {value!r}")
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is not None:
            raise ValueError(f"{column} has a time zone, Libervia stores naive UTC: {value!r}")
        row[column] = parsed.strftime(DATE_FORMAT)

    return convert


def _fts_text(row: Row) -> None:
    row[fts.TEXT_COLUMN] = fts.item_text(row["data"])


#: per table: what turns a Libervia row into this package's (in place, in order)
CONVERTERS: dict[str, list[Callable[[Row], None]]] = {
    "history": [_from_pickle("extra")],
    "private_gen_bin": [_from_pickle("value")],
    "private_ind_bin": [_from_pickle("value")],
    "files": [_dict_default("access"), _dict_default("extra")],
    "pubsub_nodes": [_enum("sync_state", SyncState), _null_json("extra")],
    "pubsub_subs": [_enum("state", SubscriptionState)],
    "pubsub_items": [_date("created"), _date("updated"), _null_json("parsed"), _fts_text],
}
#: how a row is named in an error
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "history": ("uid",),
    "private_gen_bin": ("namespace", "key"),
    "private_ind_bin": ("namespace", "key", "profile_id"),
    "files": ("id", "version"),
}


def _names(raw: sqlite3.Connection, kind: str) -> list[tuple[str, str]]:
    return raw.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = ? AND sql IS NOT NULL", (kind,)
    ).fetchall()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows(raw: sqlite3.Connection, table: str, columns: list[str]) -> Iterator[list[Row]]:
    cursor = raw.execute(
        f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(OLD_PREFIX + table)} ORDER BY rowid"
    )
    while batch := cursor.fetchmany(BATCH):
        yield [dict(zip(columns, values, strict=True)) for values in batch]


def _describe(table: str, row: Row) -> str:
    keys = ROW_KEYS.get(table) or tuple(k for k in ("id", "name") if k in row) or tuple(row)[:2]
    return f"{table} row " + ", ".join(f"{k}={row.get(k)!r}" for k in keys)


def _copy_table(raw: sqlite3.Connection, table: Any, old_columns: list[str]) -> int:
    columns = [c.name for c in table.columns if c.name in old_columns]
    targets = list(columns)
    indexed = table.name == "pubsub_items"  # the words go to the FTS5 table
    insert = (
        f"INSERT INTO {_quote(table.name)} ({', '.join(map(_quote, targets))}) "
        f"VALUES ({', '.join('?' * len(targets))})"
    )
    converters = CONVERTERS.get(table.name, [])
    count = 0
    for batch in _rows(raw, table.name, columns):
        for row in batch:
            try:
                for convert in converters:
                    convert(row)
            except (PickleRefused, ValueError, TypeError) as e:
                raise AdoptionError(
                    f"{_describe(table.name, row)} cannot be adopted: {e}; "
                    "the database was left untouched"
                ) from None
        try:
            raw.executemany(insert, [[row.get(c) for c in targets] for row in batch])
            if indexed:
                fts.sqlite_write(_run(raw), [(r["id"], r[fts.TEXT_COLUMN]) for r in batch])
        except sqlite3.IntegrityError as e:
            raise AdoptionError(
                f"{table.name}: a row cannot be adopted ({e}); the database was left untouched"
            ) from None
        count += len(batch)
    return count


def _run(raw: sqlite3.Connection) -> Callable[[str, Any], object]:
    """``execute(sql, params)`` on ``raw`` (a list of parameter sets: ``executemany``)."""
    return lambda sql, params: (raw.executemany if isinstance(params, list) else raw.execute)(
        sql, params
    )


def upgrade_connection(connection: Any) -> dict[str, int]:
    """Upgrade the Libervia database on ``connection`` (a SQLAlchemy connection whose
    transaction the caller began with foreign keys off); rows copied per table.
    """
    raw: sqlite3.Connection = connection.connection.driver_connection
    row = raw.execute("SELECT version_num FROM alembic_version").fetchone()
    revision = None if row is None else row[0]
    if not detect.is_libervia(revision):
        raise AdoptionError(f"not a Libervia 0.9 database (revision {revision!r})")
    for trigger in LIBERVIA_FTS:
        raw.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    raw.execute(f"DROP TABLE IF EXISTS {fts.TABLE}")
    tables = {t.name for t in Base.metadata.sorted_tables}
    present = {name for name, _ in _names(raw, "table")}
    for name, table in _names(raw, "index"):
        if table in tables:
            raw.execute(f"DROP INDEX {_quote(name)}")
    raw.execute("PRAGMA legacy_alter_table = ON")
    old_columns: dict[str, list[str]] = {}
    for name in tables & present:
        old_columns[name] = [r[1] for r in raw.execute(f"PRAGMA table_info({_quote(name)})")]
        raw.execute(f"ALTER TABLE {_quote(name)} RENAME TO {_quote(OLD_PREFIX + name)}")
    raw.execute("PRAGMA legacy_alter_table = OFF")
    Base.metadata.create_all(connection)
    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in old_columns:
            counts[table.name] = _copy_table(raw, table, old_columns[table.name])
            raw.execute(f"DROP TABLE {_quote(OLD_PREFIX + table.name)}")
    raw.execute("DELETE FROM alembic_version")
    raw.execute(
        "INSERT INTO alembic_version (version_num) VALUES (?)", (migration.head_revision(),)
    )
    log.info("Libervia database upgraded from %s: %s", revision, counts)
    return counts
