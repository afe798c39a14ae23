"""Rows of cached pubsub items and the statements writing them (the hot write path).

:func:`item_rows` makes the rows of ``pubsub_items`` for checked items in one pass
(XML text and full-text words in one walk of the element,
:func:`sat_storage.fts.item_xml_text`; parsed JSON text), as
tuples in :data:`ITEM_COLUMNS` order. :func:`write_item_rows` writes them with driver
SQL compiled once per dialect (SQLAlchemy's Core upsert, compiled on first use and
kept, so no statement is built or compiled per call and no per-row parameter
processing runs): SQLite as one multi-row statement returning the ids written, then
their words into the FTS5 table (``executemany``); PostgreSQL once for the rows of
each chunk of :data:`POSTGRESQL_ROWS_PER_STATEMENT` (columns bound as arrays, the
words as the ``tsvector`` column). The upsert is
for items with a payload, an insert of new items only for those without (an empty
item never replaces one).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TSVECTOR
from twisted.words.xish import domish

from sat_storage import engines, json_text
from sat_storage.driver_write import DriverSQL
from sat_storage.fts import TEXT_COLUMN, VECTOR_COLUMN, item_xml_text, sqlite_write
from sat_storage.models import PubsubItem
from sat_storage.storage.checks import check_json_text, check_storable, unstorable

__all__ = [
    "ITEM_COLUMNS",
    "POSTGRESQL_ROWS_PER_STATEMENT",
    "build_item_rows",
    "item_rows",
    "write_item_rows",
    "write_items",
]

#: the columns of a row of :func:`item_rows`, in order (``fts_text``: the item's
#: full-text words, which are not a column of ``pubsub_items``: :mod:`sat_storage.fts`)
ITEM_COLUMNS = ("node_id", "name", "data", "parsed", "fts_text", "created", "updated")
ITEM_KEY = ("node_id", "name")
ITEM_KEPT_ON_UPDATE = ("node_id", "name", "created")  # the id is never written
_NAME = ITEM_COLUMNS.index("name")
_TEXT = ITEM_COLUMNS.index(TEXT_COLUMN)
_Element = domish.Element

Row = tuple[Any, ...]


def item_rows(
    node_id: int,
    items: Sequence[domish.Element],
    parsed_items: Sequence[dict[str, Any] | None],
    now: Any,
    start: int = 0,
) -> tuple[list[Row], set[str]]:
    """Rows of ``pubsub_items`` for checked ``items`` (:data:`ITEM_COLUMNS`), and the
    names of the rows whose item has no payload (no child element).

    ``now`` is the database form of the time stamp of the call. When an id comes
    twice, the row takes the place of the first and the content (payload or not) of
    the last. ``ValueError`` names the index of an item that cannot be serialised, or
    holds what an engine cannot store (NUL, lone surrogates:
    :func:`checks.check_storable`); ``start``: the index of the first item (a chunk of
    a call's).
    """
    rows: dict[str, Row] = {}
    empty: set[str] = set()
    dumps = json_text.dumps  # floats read back equal on both engines
    for index, (item, parsed) in enumerate(zip(items, parsed_items, strict=True), start):
        try:
            data, words = item_xml_text(item)  # one walk: XML and full-text words
        except (TypeError, AttributeError) as e:
            raise ValueError(f"items[{index}] cannot be serialised as XML: {e}") from None
        if unstorable(data) is not None:
            check_storable(f"items[{index}] (its XML)", data)
        if parsed is not None:
            try:
                text = dumps(parsed)
            except (TypeError, ValueError) as e:
                raise ValueError(f"parsed_items[{index}] is not JSON-serialisable: {e}") from None
            check_json_text(f"parsed_items[{index}]", parsed, text)
            parsed = text
        name = item.attributes["id"]
        rows[name] = (node_id, name, data, parsed, words, now, now)
        if _has_child_element(item):
            empty.discard(name)
        else:
            empty.add(name)
    return list(rows.values()), empty


def write_items(
    sql: DriverSQL,
    node_id: int,
    items: Sequence[domish.Element],
    parsed_items: Sequence[dict[str, Any] | None],
    now: Any,
) -> list[str]:
    """Make the rows of checked ``items`` (:func:`item_rows`) and write them
    (:func:`write_item_rows`) in the transaction of ``sql``; the names of the rows.

    PostgreSQL, more items than :data:`POSTGRESQL_ROWS_PER_STATEMENT` with distinct ids
    (the usual call): the rows of each chunk are made then sent at once, so that the
    server writes a chunk while the next one is made (the pipeline reads no result;
    no per-row step as SQLite's, so no contention for the GIL). The rows of items
    without payload are written last, as :func:`write_item_rows` writes them, so that
    the ids are those of one :func:`item_rows` call. Otherwise (SQLite, an id given
    twice): every row made, then written.
    """
    size = POSTGRESQL_ROWS_PER_STATEMENT
    if sql.dialect.name == "postgresql" and len(items) > size:
        names = [item.attributes["id"] for item in items]
        if len(set(names)) == len(names):
            empty_rows: list[Row] = []
            for start in range(0, len(items), size):
                end = start + size
                rows, empty = item_rows(
                    node_id, items[start:end], parsed_items[start:end], now, start
                )
                if empty:
                    empty_rows.extend(row for row in rows if row[_NAME] in empty)
                    rows = [row for row in rows if row[_NAME] not in empty]
                write_item_rows(sql, rows, set())
            if empty_rows:
                write_item_rows(sql, empty_rows, {row[_NAME] for row in empty_rows})
            return names
    rows, empty = item_rows(node_id, items, parsed_items, now)
    write_item_rows(sql, rows, empty)
    return [row[_NAME] for row in rows]


def _has_child_element(item: domish.Element) -> bool:
    """``item.firstChildElement() is not None``, without its interface check for the
    usual children (text, plain elements)."""
    for child in item.children:
        if child.__class__ is _Element:
            return True
        if child.__class__ is not str:
            return item.firstChildElement() is not None
    return False


def build_item_rows(
    node_id: int,
    items: Sequence[domish.Element],
    parsed_items: Sequence[dict[str, Any] | None],
    now: Any,
) -> list[dict[str, Any]]:
    """The rows of :func:`item_rows` as dicts (column -> value)."""
    rows = item_rows(node_id, items, parsed_items, now)[0]
    return [dict(zip(ITEM_COLUMNS, row, strict=True)) for row in rows]


def _table(dialect_name: str) -> sa.Table:
    """``pubsub_items`` as the write sees it: on PostgreSQL with its ``tsvector``
    column (which the models do not map, :mod:`sat_storage.fts`)."""
    table = PubsubItem.__table__
    if dialect_name != "postgresql":
        return table
    columns = [sa.Column(c.name, c.type, primary_key=c.primary_key) for c in table.c]
    return sa.Table(table.name, sa.MetaData(), *columns, sa.Column(VECTOR_COLUMN, TSVECTOR))


def _columns(dialect_name: str) -> tuple[str, ...]:
    """The columns of ``pubsub_items`` written from a row's: SQLite keeps the words out
    of the table (in its FTS5 table), PostgreSQL writes their vector."""
    if dialect_name == "postgresql":
        return tuple(VECTOR_COLUMN if c == TEXT_COLUMN else c for c in ITEM_COLUMNS)
    return tuple(c for c in ITEM_COLUMNS if c != TEXT_COLUMN)


def _statement(dialect_name: str, payload: bool) -> sa.Insert:
    """The bulk write of item rows (Core).

    With ``payload``: an upsert that updates a known item only when its XML or its
    parsed data changed (a notification of an unchanged item changes nothing, not
    even ``updated``); without: an insert of new items only. SQLite: one row of
    parameters, returning the id and name of each row written (the statement is
    repeated for the rows of a call, :func:`_sqlite_write`), whose words then go to the
    FTS5 table; PostgreSQL: one statement for the rows of a chunk
    (:data:`POSTGRESQL_ROWS_PER_STATEMENT`), its columns bound as arrays
    (:func:`_unnest_rows`), so that the statement triggers of
    :mod:`sat_storage.item_counts` run once per chunk, not per row.
    """
    table = _table(dialect_name)
    columns = _columns(dialect_name)
    if payload:

        def changed(excluded: Any) -> Any:
            return sa.or_(
                table.c.data.is_distinct_from(excluded.data),
                table.c.parsed.is_distinct_from(excluded.parsed),
            )

        updated = [c for c in columns if c not in ITEM_KEPT_ON_UPDATE]
        stmt = engines.upsert(dialect_name, table, ITEM_KEY, updated, where=changed)
    else:
        stmt = engines.insert_ignore(dialect_name, table, ITEM_KEY)
    if dialect_name == "postgresql":
        return stmt.from_select(columns, _unnest_rows())
    stmt = stmt.values({c: engines.bulk_bind(dialect_name, c) for c in columns})
    return stmt.returning(table.c.id, table.c.name)


# PostgreSQL: the columns bound as arrays (one element a row); node_id and the time
# stamp (created, updated) are the same for every row of a call
_ARRAYS = ("name", "data", "parsed", TEXT_COLUMN)


def _unnest_rows() -> sa.Select[Any]:
    """PostgreSQL: the rows of a call from its column arrays, in their order."""
    arrays = (
        sa.func.unnest(*(sa.bindparam(c, type_=postgresql.ARRAY(sa.Text())) for c in _ARRAYS))
        .table_valued(*_ARRAYS, with_ordinality="ord")
        .render_derived()
    )
    now = sa.bindparam("now", type_=sa.DateTime(timezone=True))
    vector = sa.func.to_tsvector(
        sa.literal_column("'simple'::regconfig"),
        sa.func.coalesce(arrays.c[TEXT_COLUMN], sa.literal_column("''")),
        type_=TSVECTOR,
    )
    values = {
        "node_id": sa.bindparam("node_id", type_=sa.Integer()),
        "parsed": sa.cast(arrays.c.parsed, postgresql.JSONB),
        "created": now,
        "updated": now,
        VECTOR_COLUMN: vector,
    }
    columns = [values.get(c, arrays.c[c] if c in _ARRAYS else None) for c in _columns("postgresql")]
    return sa.select(*columns).order_by(arrays.c.ord)  # ids given in the rows' order


def _array_parameters(rows: Sequence[Row]) -> dict[str, Any]:
    """PostgreSQL: the parameters of :func:`_unnest_rows` for ``rows``."""
    columns = dict(zip(ITEM_COLUMNS, zip(*rows, strict=True), strict=True))
    first = rows[0]
    return {
        "node_id": first[0],
        "now": first[ITEM_COLUMNS.index("created")],
        **{c: list(columns[c]) for c in _ARRAYS},
    }


#: SQLite: rows written by one statement (6 parameters a row, far under the limit)
SQLITE_ROWS_PER_STATEMENT = 500
#: PostgreSQL: rows written by one statement (its arrays). The server keeps the rows
#: of ``unnest`` in a tuplestore that spills to temporary files beyond ``work_mem``
#: (4 MB by default: ~1,700 rows of ~2.4 KB); statements of 250 rows, all sent
#: together in the pipeline (none is read), wrote 5,000 items in 103-109 us/item
#: against 130-148 for one statement (same server, same process, interleaved)
POSTGRESQL_ROWS_PER_STATEMENT = 250


@dataclass
class _SQLiteWrite:
    """SQLite: the one-row statement's SQL (:func:`_statement`), repeated as a
    multi-row ``VALUES`` for the rows of a call (texts kept per row count)."""

    head: str
    group: str
    tail: str
    pick: Callable[[Row], tuple[Any, ...]]
    texts: dict[int, str] = field(default_factory=dict)

    def sql(self, count: int) -> str:
        text = self.texts.get(count)
        if text is None:
            if len(self.texts) > 64:
                self.texts.clear()
            text = self.texts[count] = self.head + ", ".join([self.group] * count) + self.tail
        return text

    def write(self, sql: DriverSQL, rows: Sequence[Row]) -> None:
        """Write ``rows``, then the words of those written (inserted or changed)."""
        words = {row[_NAME]: row[_TEXT] for row in rows}
        entries: list[tuple[int, str]] = []
        pick = self.pick
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start : start + SQLITE_ROWS_PER_STATEMENT]
            parameters = tuple(chain.from_iterable(map(pick, chunk)))  # no Python loop
            written = sql.fetch(self.sql(len(chunk)), parameters)
            entries.extend((item_id, words[name]) for item_id, name in written)
        if entries:
            sqlite_write(sql.execute, entries)


_sqlite_writes: dict[bool, _SQLiteWrite] = {}
_pg_writes: dict[bool, str] = {}


def _sqlite_write(dialect: sa.Dialect, payload: bool) -> _SQLiteWrite:
    """:func:`_statement` compiled for SQLite (once: kept for every later call)."""
    write = _sqlite_writes.get(payload)
    if write is None:
        compiled = _statement(dialect.name, payload).compile(dialect=dialect)
        positions = compiled.positiontup or ()
        group = "(" + ", ".join("?" * len(positions)) + ")"
        head, found, tail = compiled.string.partition(" VALUES " + group)
        if not found:
            raise RuntimeError(f"unexpected SQL of the item write: {compiled.string}")
        pick = operator.itemgetter(*map(ITEM_COLUMNS.index, positions))
        write = _sqlite_writes[payload] = _SQLiteWrite(head + " VALUES ", group, tail, pick)
    return write


def write_item_rows(sql: DriverSQL, rows: Sequence[Row], empty: set[str]) -> None:
    """Write ``rows`` of :func:`item_rows` (one node's) in the transaction of ``sql``,
    with their full-text words: one statement, and one more for the rows named in
    ``empty`` (insert only), each repeated for chunks of
    :data:`SQLITE_ROWS_PER_STATEMENT` / :data:`POSTGRESQL_ROWS_PER_STATEMENT` rows;
    SQLite: then the words of the rows written. PostgreSQL:
    no result is read (with a :class:`~sat_storage.driver_write.Writer`, the
    statements go with the next one whose rows are read)."""
    batches = [(True, rows)]
    if empty:
        batches = [
            (True, [row for row in rows if row[_NAME] not in empty]),
            (False, [row for row in rows if row[_NAME] in empty]),
        ]
    dialect = sql.dialect
    for payload, batch in batches:
        if not batch:
            continue
        if dialect.name == "postgresql":
            text = _pg_writes.get(payload)
            if text is None:
                text = _pg_writes[payload] = (
                    _statement(dialect.name, payload).compile(dialect=dialect).string
                )
            for start in range(0, len(batch), POSTGRESQL_ROWS_PER_STATEMENT):
                chunk = batch[start : start + POSTGRESQL_ROWS_PER_STATEMENT]
                sql.execute(text, _array_parameters(chunk))
        else:
            _sqlite_write(dialect, payload).write(sql, batch)
