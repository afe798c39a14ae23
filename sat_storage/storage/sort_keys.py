"""Sort keys declared by analysers: an index for ordering and range filters on a path.

An analyser may declare paths of its parsed data sort keys (XEP-0277: ``published``
and ``updated``). :meth:`SortKeyStore.declare_sort_key` records a key (path,
direction, type) in ``pubsub_sort_keys`` and stores, in ``pubsub_item_sort_values``,
the sort value of *every* cached item for it: the very keys the search orders by
(:func:`.search.path_sort_keys`: the rank of the JSON kind, missing and null last in
the key's direction, then the value), computed by the database from the same
expressions, so that the results cannot differ. Item writes keep the values in step
in their own transaction (:class:`SortValueWriter`: the declared keys are cached with
the statement writing their values, and checked in every write transaction, after the
items are written, by one small driver-level read of the keys table compared with the
cached rows: a key declared by another process is honoured at once); deletions cascade.

The search (:func:`.search.build_search`) then reads the index
``(key_id, rank, num, txt, flag, item_id)``: an ``order-by`` on a declared path in its
declared direction joins the values instead of computing JSON per item, and a range
filter (``<``, ``<=``, ``>``, ``>=``, ``between`` on numbers) on a declared path is a
range of that index. Undeclared paths, the other direction and other filters keep the
JSON expressions. A process knows the keys declared when it started or by itself
(:attr:`SortKeyStore.sort_key_index`); one declared later elsewhere is used after its
next start (until then: the JSON expressions, same results).

The stored values and the bounds of range filters are the search's own expressions
(``JSONDialect.typed``/``number``), so comparisons are exactly the JSON form's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage import engines
from sat_storage.driver_write import CompiledWrite, DriverSQL, SessionSQL, bind, compile_driver
from sat_storage.models import PubsubItem, PubsubItemSortValue, PubsubSortKey
from sat_storage.storage.base import StorageBase
from sat_storage.storage.search import KIND_ORDER, OPERATORS, _path, path_sort_keys
from sat_storage.storage.search_sql import DIALECTS, JSONDialect

__all__ = ["SORT_KEY_TYPES", "SortKey", "SortKeyIndex", "SortKeyStore", "SortValueWriter"]

SORT_KEY_TYPES = ("number", "string")
DIRECTIONS = ("asc", "desc")
_RANGES = ("gt", "ge", "lt", "le", "between")
_NUMBER_RANK = KIND_ORDER.index("number")
_values = PubsubItemSortValue.__table__
# Every declared key, as the write path compares them (our constant, no user value).
_KEY_ROWS_SQL = "SELECT id, path, direction, type FROM pubsub_sort_keys ORDER BY id"


@dataclass(frozen=True)
class SortKey:
    """One declared key."""

    id: int
    path: tuple[str | int, ...]
    direction: str
    type_: str


def _path_text(path: Sequence[str | int]) -> str:
    return json.dumps(list(path), ensure_ascii=False, separators=(",", ":"))


def value_select(key: SortKey, dialect: str) -> sa.Select[Any]:
    """``(key_id, item_id, rank, num, txt, flag)`` of every item, for ``key``."""
    rank, *values = path_sort_keys(key.path, key.direction == "desc", DIALECTS[dialect])
    num, txt, flag = values if len(values) == 3 else (values[0], sa.null(), sa.null())
    return sa.select(sa.literal(key.id, sa.Integer), PubsubItem.id, rank, num, txt, flag).where(
        sa.true()  # SQLite: an INSERT ... SELECT with ON CONFLICT needs a WHERE
    )


def _insert_values(select: sa.Select[Any], dialect: str) -> sa.Insert:
    columns = ["key_id", "item_id", "rank", "num", "txt", "flag"]
    stmt = engines.upsert(dialect, _values, ("item_id", "key_id"), columns[2:])
    return stmt.from_select(columns, select)


@functools.lru_cache(maxsize=256)
def _values_alias(position: int, key_id: int) -> sa.Alias:
    """The values table as the ``position``-th order-by entry joins it, for key
    ``key_id``: made once (an alias's columns are costly to make, and a statement's
    own FROM list, compiled, would be too); one name per entry."""
    return _values.alias(f"sort_values_{position}_{key_id}")


@dataclass(frozen=True)
class SortKeyIndex:
    """The keys a process knows, for :func:`.search.build_search` (immutable)."""

    keys: Mapping[tuple[tuple[str | int, ...], str], SortKey] = field(default_factory=dict)

    def with_key(self, key: SortKey) -> SortKeyIndex:
        return SortKeyIndex({**self.keys, (key.path, key.direction): key})

    def _find(self, path: object, direction: str | None = None) -> SortKey | None:
        try:
            steps = tuple(path)  # type: ignore[call-overload]
        except TypeError:
            return None
        if direction is not None:
            return self.keys.get((steps, direction))
        return self.keys.get((steps, "asc")) or self.keys.get((steps, "desc"))

    def order(
        self, stmt: sa.Select[Any], spec: Mapping[str, Any], keys: list[Any], position: int = 0
    ) -> tuple[sa.Select[Any], list[Any]]:
        """``stmt`` and the sort keys of a checked ``order-by`` entry ``spec`` (the
        ``position``-th): the declared key's index when there is one for its path and
        direction, else ``keys``."""
        if "path" not in spec:
            return stmt, keys
        direction = str(spec.get("direction", "asc")).lower()
        key = self._find(spec["path"], direction)
        if key is None:
            return stmt, keys
        values = _values_alias(position, key.id)
        stmt = stmt.join(
            values, sa.and_(values.c.item_id == PubsubItem.id, values.c.key_id == key.id)
        )
        columns = [values.c.rank, values.c.num, values.c.txt, values.c.flag]
        return stmt, [c.desc() if direction == "desc" else c.asc() for c in columns]

    def condition(
        self, spec: Mapping[str, Any], sql: JSONDialect, condition: sa.ColumnElement[bool]
    ) -> sa.ColumnElement[bool]:
        """A checked ``parsed`` filter as a range of a declared key's index when it
        is one on numbers, else ``condition`` (its JSON form)."""
        op = OPERATORS.get(spec["op"]) if isinstance(spec.get("op"), str) else None
        if op not in _RANGES:
            return condition
        bounds = spec["value"] if op == "between" else [spec["value"]]
        if not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
            return condition
        key = self._find(spec["path"])
        if key is None:
            return condition
        num = _values.c.num
        low = sql.number(bounds[0])  # bound as the JSON form binds it
        if op == "between":
            test = num.between(low, sql.number(bounds[1]))
        else:
            test = {"gt": num > low, "ge": num >= low, "lt": num < low, "le": num <= low}[op]
        inner = sa.select(_values.c.item_id).where(
            _values.c.key_id == key.id, _values.c.rank == _NUMBER_RANK, test
        )
        return PubsubItem.id.in_(inner)


class SortKeyStore(StorageBase):
    """Declared sort keys and their values (see the module docstring)."""

    sort_key_index: SortKeyIndex = SortKeyIndex()

    def declare_sort_key(
        self, path: Sequence[str | int], direction: str = "asc", type_: str = "number"
    ) -> defer.Deferred[SortKey]:
        """Declare ``path`` (of items' parsed data) a sort key; the key.

        ``direction`` (``asc``/``desc``): the order the index serves (the other one
        still works, by the JSON expressions); ``type_`` (``number``/``string``): what
        the analyser's parser puts there (range filters use the index for numbers).
        Declaring a known key again changes nothing. Values of the items already
        cached are stored in the same transaction.
        """
        try:
            steps = _path("path", path)
            if direction not in DIRECTIONS:
                raise ValueError(f"direction must be 'asc' or 'desc', got {direction!r}")
            if type_ not in SORT_KEY_TYPES:
                raise ValueError(f"type_ must be one of {', '.join(SORT_KEY_TYPES)}, got {type_!r}")
        except Exception:
            return defer.fail()
        d = self.db.run(self.declare_sort_key_txn, steps, direction, type_)
        d.addCallback(self._known_sort_key)
        return d

    def _known_sort_key(self, key: SortKey) -> SortKey:
        self.sort_key_index = self.sort_key_index.with_key(key)
        return key

    def declare_sort_key_txn(
        self, session: Session, path: tuple[str | int, ...], direction: str, type_: str
    ) -> SortKey:
        """Record the key if new and store every item's value for it."""
        text = _path_text(path)
        dialect = session.get_bind().dialect.name
        query = sa.select(PubsubSortKey).where(
            PubsubSortKey.path == text, PubsubSortKey.direction == direction
        )
        found = session.execute(query).scalar_one_or_none()
        if found is None and dialect == "postgresql":
            # writers that have not seen the key yet finish first; later ones see it
            session.execute(sa.text("LOCK TABLE pubsub_items IN SHARE MODE"))
            found = session.execute(query).scalar_one_or_none()
        if found is None:
            found = PubsubSortKey(path=text, direction=direction, type_=type_)
            session.add(found)
            session.flush()
            key = SortKey(found.id, path, direction, type_)
            session.execute(_insert_values(value_select(key, dialect), dialect))
        return SortKey(found.id, path, direction, found.type_)

    def load_sort_keys(self) -> defer.Deferred[SortKeyIndex]:
        """Read the declared keys into :attr:`sort_key_index` (done at start)."""

        def loaded(keys: list[SortKey]) -> SortKeyIndex:
            index = SortKeyIndex()
            for key in keys:
                index = index.with_key(key)
            self.sort_key_index = index
            return index

        return self.db.run(self.sort_keys_txn).addCallback(loaded)

    @staticmethod
    def sort_keys_txn(session: Session) -> list[SortKey]:
        """Every declared key."""
        return _keys_of(_key_rows(SessionSQL(session)))


KeyRows = tuple[tuple[Any, ...], ...]


def _key_rows(sql: DriverSQL) -> KeyRows:
    """The rows of ``pubsub_sort_keys`` (id, path, direction, type), by id."""
    return tuple(sql.fetch(_KEY_ROWS_SQL))


def _keys_of(rows: KeyRows) -> list[SortKey]:
    return [SortKey(r[0], tuple(json.loads(r[1])), r[2], r[3]) for r in rows]


@dataclass(frozen=True)
class _Declared:
    """The keys a writer last read, and the driver SQL storing their values (None: no key)."""

    rows: KeyRows
    insert: CompiledWrite | None


_GIVEN = ("node_id", "names")  # the parameters of _values_insert given at each write


def _values_insert(keys: Sequence[SortKey], dialect: str) -> sa.Insert | None:
    """Upsert of the values of items ``:names`` of node ``:node_id`` for ``keys``
    (``names``: one parameter, a JSON array on SQLite, an array on PostgreSQL, so that
    the statement is compiled once whatever the number of items)."""
    if not keys:
        return None
    node_id = sa.bindparam("node_id", None, type_=sa.Integer())
    if dialect == "postgresql":
        names = sa.bindparam("names", None, type_=postgresql.ARRAY(sa.Text()))
        named: sa.ColumnElement[bool] = PubsubItem.name == sa.any_(names)
    else:
        names = sa.bindparam("names", None, type_=sa.Text())
        listed = sa.select(sa.column("value", sa.Text)).select_from(sa.func.json_each(names))
        named = PubsubItem.name.in_(listed)
    selects = [
        value_select(key, dialect).where(PubsubItem.node_id == node_id, named) for key in keys
    ]
    return _insert_values(selects[0] if len(selects) == 1 else sa.union_all(*selects), dialect)


def _names_value(dialect: str, names: Sequence[str]) -> Any:
    """The ``names`` parameter of :func:`_values_insert`."""
    if dialect == "postgresql":
        return list(names)
    return json.dumps(list(names), ensure_ascii=False)


class SortValueWriter:
    """Stores the sort values of written items, for every declared key (one per storage).

    The keys and the statement (driver SQL, :func:`.driver_write.compile_driver`) are
    built when the keys read in a write transaction differ from the cached ones (a key
    declared by this process or another one), and reused otherwise. The read comes
    after the items' own write in the transaction: on PostgreSQL a declaration locks
    ``pubsub_items`` in SHARE mode, so a writer either wrote its rows before the
    declaration filled the values (which then include them) or reads the key once the
    declaration committed; SQLite serialises writers. Safe to share between database
    threads (a snapshot is replaced, never changed).
    """

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self._declared = _Declared((), None)

    def key_rows(self, sql: DriverSQL) -> KeyRows:
        """Read the declared keys (the statement whose rows the write waits for)."""
        return _key_rows(sql)

    def write_values(
        self, sql: DriverSQL, rows: KeyRows, node_id: int, names: Sequence[str]
    ) -> None:
        """Store the values of items ``names`` of node ``node_id`` (already written) for
        the keys ``rows`` (:meth:`key_rows`, read after the items' write)."""
        declared = self._declared
        if rows != declared.rows:
            insert = _values_insert(_keys_of(rows), self.dialect)
            compiled = None if insert is None else compile_driver(insert, sql.dialect, _GIVEN)
            declared = self._declared = _Declared(rows, compiled)
        if declared.insert is not None:
            params = {"node_id": node_id, "names": _names_value(self.dialect, names)}
            sql.execute(declared.insert[0], bind(declared.insert, params))

    def write_txn(self, sql: DriverSQL, node_id: int, names: Sequence[str]) -> None:
        """Store the values of items ``names`` of node ``node_id`` (already written)."""
        self.write_values(sql, self.key_rows(sql), node_id, names)
