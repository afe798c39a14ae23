"""Rows of cached pubsub items and the statements writing them (the hot write path).

:func:`item_rows` makes the rows of ``pubsub_items`` for checked items in one pass
(XML text, parsed JSON text, full-text words: :func:`sat_storage.fts.item_text`), as
tuples in :data:`ITEM_COLUMNS` order. :func:`write_item_rows` writes them with one
statement of driver SQL compiled once per dialect (SQLAlchemy's Core upsert, compiled
on first use and kept, so no statement is built or compiled per call and no per-row
parameter processing runs): SQLite executes it for every row (``executemany``),
PostgreSQL once for all the rows of a call (columns bound as arrays). The upsert is
for items with a payload, an insert of new items only for those without (an empty
item never replaces one).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from twisted.words.xish import domish

from sat_storage import engines, json_text
from sat_storage.fts import item_text
from sat_storage.models import PubsubItem
from sat_storage.storage.checks import check_json_text, check_storable, unstorable
from sat_storage.xml_tools import to_xml

__all__ = ["ITEM_COLUMNS", "build_item_rows", "item_rows", "write_item_rows"]

#: the columns of a row of :func:`item_rows`, in order
ITEM_COLUMNS = ("node_id", "name", "data", "parsed", "fts_text", "created", "updated")
ITEM_KEY = ("node_id", "name")
ITEM_KEPT_ON_UPDATE = ("node_id", "name", "created")  # the id is never written
_NAME = ITEM_COLUMNS.index("name")

Row = tuple[Any, ...]


def item_rows(
    node_id: int,
    items: Sequence[domish.Element],
    parsed_items: Sequence[dict[str, Any] | None],
    now: Any,
) -> tuple[list[Row], set[str]]:
    """Rows of ``pubsub_items`` for checked ``items`` (:data:`ITEM_COLUMNS`), and the
    names of the rows whose item has no payload (no child element).

    ``now`` is the database form of the time stamp of the call. When an id comes
    twice, the row takes the place of the first and the content (payload or not) of
    the last. ``ValueError`` names the index of an item that cannot be serialised, or
    holds what an engine cannot store (NUL, lone surrogates:
    :func:`checks.check_storable`).
    """
    rows: dict[str, Row] = {}
    empty: set[str] = set()
    dumps = json_text.dumps  # floats read back equal on both engines
    for index, (item, parsed) in enumerate(zip(items, parsed_items, strict=True)):
        try:
            data = to_xml(item)
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
        name = item["id"]
        rows[name] = (node_id, name, data, parsed, item_text(item), now, now)
        if item.firstChildElement() is None:
            empty.add(name)
        else:
            empty.discard(name)
    return list(rows.values()), empty


def build_item_rows(
    node_id: int,
    items: Sequence[domish.Element],
    parsed_items: Sequence[dict[str, Any] | None],
    now: Any,
) -> list[dict[str, Any]]:
    """The rows of :func:`item_rows` as dicts (column -> value)."""
    rows = item_rows(node_id, items, parsed_items, now)[0]
    return [dict(zip(ITEM_COLUMNS, row, strict=True)) for row in rows]


def _statement(dialect_name: str, payload: bool) -> sa.Insert:
    """The bulk write of item rows (Core).

    With ``payload``: an upsert that updates a known item only when its XML or its
    parsed data changed (a notification of an unchanged item changes nothing, not
    even ``updated``); without: an insert of new items only. SQLite: one bound
    parameter per column (executed many times); PostgreSQL: one statement for every
    row of a call, its columns bound as arrays (:func:`_unnest_rows`), so that the
    statement triggers of :mod:`sat_storage.item_counts` run once per call.
    """
    table = PubsubItem.__table__
    if payload:

        def changed(excluded: Any) -> Any:
            return sa.or_(
                table.c.data.is_distinct_from(excluded.data),
                table.c.parsed.is_distinct_from(excluded.parsed),
            )

        updated = [c for c in ITEM_COLUMNS if c not in ITEM_KEPT_ON_UPDATE]
        stmt = engines.upsert(dialect_name, table, ITEM_KEY, updated, where=changed)
    else:
        stmt = engines.insert_ignore(dialect_name, table, ITEM_KEY)
    if dialect_name == "postgresql":
        return stmt.from_select(ITEM_COLUMNS, _unnest_rows())
    return stmt.values({c: engines.bulk_bind(dialect_name, c) for c in ITEM_COLUMNS})


# PostgreSQL: the columns bound as arrays (one element a row); node_id and the time
# stamp (created, updated) are the same for every row of a call
_ARRAYS = ("name", "data", "parsed", "fts_text")


def _unnest_rows() -> sa.Select[Any]:
    """PostgreSQL: the rows of a call from its column arrays, in their order."""
    arrays = sa.func.unnest(
        *(sa.bindparam(c, type_=postgresql.ARRAY(sa.Text())) for c in _ARRAYS)
    ).table_valued(*_ARRAYS, with_ordinality="ord").render_derived()
    now = sa.bindparam("now", type_=sa.DateTime(timezone=True))
    values = {
        "node_id": sa.bindparam("node_id", type_=sa.Integer()),
        "parsed": sa.cast(arrays.c.parsed, postgresql.JSONB),
        "created": now,
        "updated": now,
    }
    columns = [values.get(c, arrays.c[c] if c in _ARRAYS else None) for c in ITEM_COLUMNS]
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


@dataclass(frozen=True)
class _DriverWrite:
    """A compiled write: its SQL text, and the driver parameters of rows (a list of
    rows: executed many times; a dict: executed once)."""

    sql: str
    parameters: Callable[[Sequence[Row]], Any]


_writes: dict[tuple[str, bool], _DriverWrite] = {}


def _driver_write(dialect: sa.Dialect, payload: bool) -> _DriverWrite:
    """:func:`_statement` compiled for ``dialect`` (once: kept for every later call)."""
    key = (dialect.name, payload)
    write = _writes.get(key)
    if write is None:
        compiled = _statement(dialect.name, payload).compile(dialect=dialect)
        parameters: Callable[[Sequence[Row]], Any]
        if dialect.name == "postgresql":
            parameters = _array_parameters
        else:  # SQLite: positional, in the table's column order
            pick = operator.itemgetter(*map(ITEM_COLUMNS.index, compiled.positiontup or ()))

            def parameters(rows: Sequence[Row]) -> list[Any]:
                return list(map(pick, rows))

        write = _writes[key] = _DriverWrite(compiled.string, parameters)
    return write


def write_item_rows(session: Session, rows: Sequence[Row], empty: set[str]) -> None:
    """Write ``rows`` of :func:`item_rows` (one node's) in ``session``'s transaction:
    one statement, and one more for the rows named in ``empty`` (insert only)."""
    connection = session.connection()
    batches = [(True, rows)]
    if empty:
        batches = [
            (True, [row for row in rows if row[_NAME] not in empty]),
            (False, [row for row in rows if row[_NAME] in empty]),
        ]
    for payload, batch in batches:
        if batch:
            write = _driver_write(connection.dialect, payload)
            connection.exec_driver_sql(write.sql, write.parameters(batch))
