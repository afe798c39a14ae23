"""Search of cached pubsub items: full text, node filters, parsed-data filters, order.

The query is a dict (DESIGN.md §7). Every key is optional except the scope:

``profiles``
    names of the profiles whose cache may be read: the caller's scope, required.
    Only ``search_pubsub_items(query, all_profiles=True)`` (an explicit admin call)
    searches every profile; ``profiles`` then narrows it.
``fts``
    full-text query (syntax in :mod:`sat_storage.fts`).
``nodes``, ``services``, ``names``
    node names, services (``str`` or ``JID``), item names.
``types``, ``subtypes``
    node types/subtypes; ``None`` in the list matches a node without one.
``parsed``
    list of filters ``{"path": [...], "op": ..., "value": ...}`` on the parsed data.
``order-by``
    list of ``{"order": "creation"|"modification"|"item_id"|"rank"}`` or
    ``{"path": [...]}``, each with an optional ``"direction": "asc"|"desc"``
    (default asc). Default order: ``rank`` with ``fts``, else ``creation``; ties are
    broken by creation order.
``index``, ``limit``
    offset and maximum number of results (``limit`` None: all).

A list filter matches the items whose value is in the list (an empty list matches
nothing); a missing key (or None) does not filter. Lists hold at most 500 values;
at most 32 parsed filters, order-by entries and steps per path are accepted.

Parsed data. A path is a non-empty list of object keys (``str``, without ``"``,
``\\`` or NUL) and array indexes (``int``, negative from the end; an index of
something that is not an array, or a key of something that is not an object, leads
to no value). Filters are typed: a value is compared only with values of the same
JSON type (numbers as numbers, strings by code point, booleans), so ``{"op": ">",
"value": 3}`` never matches the string ``"5"``. Operators: ``==``/``eq`` (``None``
matches JSON null, not a missing key), ``>``/``gt``, ``>=``/``ge``, ``<``/``lt``
(strictly less), ``<=``/``le``, ``between`` (``[low, high]``, inclusive), ``in``
(list), ``like``/``ilike`` (SQL patterns: ``%``, ``_``, ``\\`` escapes), ``overlap``
and ``ioverlap`` (the array at the path shares an element with the list; a scalar
counts as a one-element array; an object, null or no value has no elements: its
values are not looked into). The negated operators ``!=``/``ne``, ``not_in``,
``not_like``, ``not_ilike``, ``disjoint`` and ``idisjoint`` match exactly the items
their positive twin does not match, items without a value at the path included.

Numbers compare by their exact value, as Python compares them (``2**53 + 1`` is not
the float ``2**53``; ``2.0 == 2``), the same on both engines; integers beyond 64 bits
in parsed data compare as their nearest float (query numbers are limited to 64 bits).

Case: the case-insensitive operators (``ilike``, ``not_ilike``, ``ioverlap``,
``idisjoint``) compare both sides lower-cased with full Unicode lower-casing
(Python's ``str.lower``, on both engines: ``CAFÉ`` is ``café``, ``ÑANDÚ`` is
``ñandú``). It is lower-casing, not case folding: ``STRASSE`` is not ``straße``.
``ilike`` is: the value lower-cased matches the pattern lower-cased.

Sorting by a path: numbers (numerically), then strings (by code point), then
booleans (false first), then arrays, then objects (arrays and objects are not
compared with one another: the next key, else creation order, decides); items
without a value and items with JSON null at the path are equal, and come last in
both directions, in creation order. ``desc`` reverses the rest.

Bad input (unknown key, operator, order or direction; malformed path; value of the
wrong type; bad full-text syntax; an ``all_profiles`` flag that is not ``True`` or
``False``) raises ``ValueError`` naming the culprit before the database is touched;
the caller's dict is never modified. Unknown profiles raise ``ProfileUnknownError``.

This module is a little over 500 lines, most of it this documented grammar and its
checks, kept beside the one translation into a statement; the parts that grow are
elsewhere (:mod:`.search_cache`, :mod:`.sort_keys`, :mod:`sat_storage.fts`).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID

from sat_storage import fts
from sat_storage.driver_sql import BoundStatement, Reader, execute_and_capture
from sat_storage.engines import unicode_lower
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.storage.base import StorageBase, as_deferred
from sat_storage.storage.checks import (
    INT64_MAX,
    check_count,
    check_flag,
    check_storable,
    check_strings,
)
from sat_storage.storage.item_reads import (
    ITEM_READ_COLUMNS,
    NODE_COLUMNS,
    ItemRow,
    item_from_row,
    node_from_row,
    readers,
)
from sat_storage.storage.search_cache import SearchStatements
from sat_storage.storage.search_sql import DIALECTS, JSONDialect, Scalar

if TYPE_CHECKING:
    from sat_storage.storage.sort_keys import SortKeyIndex

__all__ = ["DIRECTIONS", "ORDERS", "QUERY_KEYS", "SearchStore", "build_search"]

QUERY_KEYS = (
    "fts", "profiles", "nodes", "services", "types", "subtypes", "names", "parsed",
    "order-by", "index", "limit",
)  # fmt: skip
OPERATORS = {
    "==": "eq", "eq": "eq", "!=": "ne", "ne": "ne", ">": "gt", "gt": "gt",
    ">=": "ge", "ge": "ge", "<": "lt", "lt": "lt", "<=": "le", "le": "le",
    "between": "between", "in": "in", "not_in": "not_in", "overlap": "overlap",
    "ioverlap": "ioverlap", "disjoint": "disjoint", "idisjoint": "idisjoint",
    "like": "like", "ilike": "ilike", "not_like": "not_like", "not_ilike": "not_ilike",
}  # fmt: skip
NEGATIONS = {
    "ne": "eq", "not_in": "in", "not_like": "like", "not_ilike": "ilike",
    "disjoint": "overlap", "idisjoint": "ioverlap",
}  # fmt: skip
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
    "le": operator.le,
}  # fmt: skip
ORDERS = ("creation", "modification", "item_id", "rank")
DIRECTIONS = ("asc", "desc")
# Sizes accepted (SQLite binds at most 32766 values per statement).
MAX_VALUES = 500  # per list
MAX_CLAUSES = 32  # parsed filters, order-by entries, steps of a path
INT32_MAX = 2**31 - 1
_ITEMS_AND_NODES = sa.join(
    PubsubItem.__table__, PubsubNode.__table__, PubsubItem.node_id == PubsubNode.id
)
_NODE_START = len(ITEM_READ_COLUMNS)  # where the node's values start in a row
# Sort order of the JSON kinds of a parsed value (null and missing: last).
KIND_ORDER = ("number", "string", "boolean", "array", "object")


# --- validation and compilation --------------------------------------------------------


def _sequence(name: str, value: object, most: int = MAX_VALUES) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list, got {type(value).__name__}: {value!r}")
    if len(value) > most:
        raise ValueError(f"{name} has {len(value)} entries: at most {most} are accepted")
    return value


def _texts(name: str, value: object, allow_none: bool = False) -> list[str | None]:
    if name == "services" and isinstance(value, list | tuple | set | frozenset):
        value = [item.full() if isinstance(item, JID) else item for item in value]
    return check_strings(name, value, allow_none=allow_none, most=MAX_VALUES)


def _in_list(column: sa.ColumnElement[Any], values: list[str | None]) -> sa.ColumnElement[bool]:
    """``column IN values``; ``None`` in ``values`` matches NULL."""
    present = [v for v in values if v is not None]
    conditions = [column.in_(present)] if present else []
    if None in values:
        conditions.append(column.is_(None))
    return sa.or_(*conditions) if conditions else sa.false()


def _path(name: str, value: object) -> tuple[str | int, ...]:
    path = tuple(_sequence(name, value, MAX_CLAUSES))
    if not path:
        raise ValueError(f"{name} must not be empty")
    for i, step in enumerate(path):
        if isinstance(step, str):
            check_storable(f"{name}[{i}]", step)
            if any(c in step for c in '"\\'):
                raise ValueError(f"{name}[{i}]: keys with '\"' or '\\' are not supported")
        elif isinstance(step, bool) or not isinstance(step, int) or abs(step) > INT32_MAX:
            raise ValueError(f"{name}[{i}] must be a str key or an int index, got {step!r}")
    return path


def _kind(name: str, value: object, allowed: Sequence[str]) -> str:
    """JSON kind of a filter value, which must be one of ``allowed``."""
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, int | float):
        if not math.isfinite(value) or (isinstance(value, int) and abs(value) > INT64_MAX):
            raise ValueError(f"{name} must be a finite number (ints: 64 bits), got {value!r}")
        kind = "number"
    elif isinstance(value, str):
        check_storable(name, value)
        kind = "string"
    else:
        kind = type(value).__name__
    if kind not in allowed:
        raise ValueError(f"{name} must be a {' or '.join(allowed)} value here, got {value!r}")
    return kind


_SCALARS = ("number", "string", "boolean", "null")
_ORDERED = ("number", "string")


def _parsed_filter(name: str, spec: object, json: JSONDialect) -> sa.ColumnElement[bool]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"{name} must be a dict with path, op and value, got {spec!r}")
    keys = {"path", "op", "value"}
    if set(spec) != keys:
        wrong = sorted(map(str, set(spec) - keys)) or sorted(keys - set(spec))
        raise ValueError(f"{name} must have exactly the keys path, op and value: {wrong}")
    path = _path(f"{name}.path", spec["path"])
    op = spec["op"]
    if not isinstance(op, str) or op not in OPERATORS:
        raise ValueError(f"{name}.op: unknown operator {op!r} (one of {', '.join(OPERATORS)})")
    op = OPERATORS[op]
    base = NEGATIONS.get(op, op)
    condition = _condition(f"{name}.value", base, spec["value"], path, json)
    if op in NEGATIONS:
        return sa.not_(sa.func.coalesce(condition, sa.false()))
    return condition


def _condition(
    name: str, op: str, value: Any, path: Sequence[str | int], json: JSONDialect
) -> sa.ColumnElement[bool]:
    if op in ("overlap", "ioverlap"):
        values = list(_sequence(name, value))
        allowed = ("string",) if op == "ioverlap" else _ORDERED
        kinds = [_kind(f"{name}[{i}]", v, allowed) for i, v in enumerate(values)]
        table, element = json.elements(path)
        return sa.exists().select_from(table).where(_one_of(json, element, values, kinds, op))
    scalar = json.at(path)
    if op == "in":
        values = list(_sequence(name, value))
        kinds = [_kind(f"{name}[{i}]", v, _SCALARS) for i, v in enumerate(values)]
        return _one_of(json, scalar, values, kinds, op)
    if op == "between":
        bounds = _sequence(name, value)
        if len(bounds) != 2:
            raise ValueError(f"{name} must be a [low, high] list, got {value!r}")
        kinds = {_kind(f"{name}[{i}]", v, _ORDERED) for i, v in enumerate(bounds)}
        if len(kinds) != 1:
            raise ValueError(f"{name}: both bounds must be numbers or both strings: {value!r}")
        kind = kinds.pop()
        return json.typed(scalar, kind).between(*(_bound(json, kind, v) for v in bounds))
    if op in ("like", "ilike"):
        _kind(name, value, ("string",))
        if value.replace("\\\\", "").endswith("\\"):
            raise ValueError(f"{name}: pattern ends with an escape character: {value!r}")
        text = json.typed(scalar, "string")
        if op == "ilike":
            return json.like(json.lower(text), unicode_lower(value))
        return json.like(text, value)
    kind = _kind(name, value, _SCALARS if op == "eq" else _ORDERED)
    if kind == "null":
        return scalar.kind.in_(json.kinds["null"])
    return COMPARISONS[op](json.typed(scalar, kind), _bound(json, kind, value))


def _bound(json: JSONDialect, kind: str, value: Any) -> Any:
    """A query value of ``kind`` as the SQL value it is compared with."""
    if kind == "number":
        return json.number(value)
    return sa.literal(value, sa.Text if kind == "string" else sa.Boolean)


def _one_of(
    json: JSONDialect, scalar: Scalar, values: list[Any], kinds: list[str], op: str
) -> sa.ColumnElement[bool]:
    """``scalar`` equals one of ``values`` (of the same kind; ``ioverlap``: any case)."""
    conditions = []
    for kind in dict.fromkeys(kinds):
        same = [v for v, k in zip(values, kinds, strict=True) if k == kind]
        if kind == "null":
            conditions.append(scalar.kind.in_(json.kinds["null"]))
            continue
        typed = json.typed(scalar, kind)
        if op == "ioverlap":
            typed, same = json.lower(typed), [unicode_lower(v) for v in same]
        conditions.append(typed.in_([_bound(json, kind, v) for v in same]))
    return sa.or_(*conditions) if conditions else sa.false()


def _direction(name: str, spec: Mapping[str, Any]) -> bool:
    """True for a descending ``order-by`` entry."""
    direction = spec.get("direction", "asc")
    if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
        raise ValueError(f"{name}.direction must be 'asc' or 'desc', got {direction!r}")
    return direction.lower() == "desc"


def order_terms(
    name: str, spec: object, json: JSONDialect, rank: sa.ColumnElement[Any] | None
) -> list[sa.ColumnElement[Any]]:
    """The ORDER BY terms of one ``order-by`` entry (the one place that compiles them).

    Ties are left to the next entry; :func:`build_search` ends with creation order.
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"{name} must be a dict, got {spec!r}")
    unknown = set(spec) - {"order", "path", "direction"}
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(map(str, unknown))}")
    desc = _direction(name, spec)

    def directed(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return expr.desc() if desc else expr.asc()

    if ("order" in spec) == ("path" in spec):
        raise ValueError(f"{name} must have either 'order' or 'path'")
    if "order" in spec:
        order = spec["order"]
        if not isinstance(order, str) or order not in ORDERS:
            raise ValueError(f"{name}.order: unknown order {order!r} (one of {', '.join(ORDERS)})")
        if order == "rank":
            if rank is None:
                raise ValueError(f"{name}: order 'rank' needs an 'fts' query")
            return [directed(rank)]
        if order == "modification":
            return [directed(PubsubItem.updated)]
        if order == "item_id":
            return [directed(json.code_points(PubsubItem.name))]
        return [directed(PubsubItem.id)]
    return [directed(e) for e in path_sort_keys(_path(f"{name}.path", spec["path"]), desc, json)]


def path_sort_keys(
    path: Sequence[str | int], desc: bool, json: JSONDialect
) -> list[sa.ColumnElement[Any]]:
    """The undirected ORDER BY terms of an order by ``path``.

    The kind first (null and missing: last in both directions), then the value;
    values of one kind only are compared (arrays and objects: all equal). Also what
    :mod:`.sort_keys` stores for a declared key, so both orders are one. Made once
    per path, direction and dialect (the expressions are immutable).
    """
    return list(_path_sort_keys(tuple(path), desc, json))


@functools.lru_cache(maxsize=512)
def _path_sort_keys(
    path: tuple[str | int, ...], desc: bool, json: JSONDialect
) -> tuple[sa.ColumnElement[Any], ...]:
    scalar = json.at(path)
    ranks = {name: i for i, kind in enumerate(KIND_ORDER) for name in json.kinds[kind]}
    kind_rank = sa.case(ranks, value=scalar.kind, else_=-1 if desc else len(KIND_ORDER))
    return (kind_rank, *json.sort_values(scalar))


def build_search(
    query: Mapping[str, Any],
    profile_ids: Sequence[int] | None,
    dialect: str,
    sort_keys: SortKeyIndex | None = None,
) -> sa.Select[Any]:
    """The statement of a search; ``profile_ids`` None: every profile.

    It selects :data:`~.item_reads.ITEM_READ_COLUMNS` then :data:`~.item_reads.NODE_COLUMNS`
    (Core rows: :meth:`SearchStore.search_pubsub_items_txn` makes the results).

    Validates ``query`` (``ValueError`` naming the culprit) without touching it.
    ``sort_keys``: the declared sort keys (:mod:`.sort_keys`); an order by, or a range
    filter on, a declared path then reads their index (same results).
    """
    if not isinstance(query, Mapping):
        raise ValueError(f"the search query must be a dict, got {type(query).__name__}")
    unknown = [k for k in query if k not in QUERY_KEYS]
    if unknown:
        raise ValueError(f"unknown search keys {unknown} (known: {', '.join(QUERY_KEYS)})")
    json = DIALECTS[dialect]
    stmt = sa.select(*ITEM_READ_COLUMNS, *NODE_COLUMNS).select_from(_ITEMS_AND_NODES)
    if profile_ids is not None:
        stmt = stmt.where(PubsubNode.profile_id.in_(profile_ids))
    for key, column in (
        ("nodes", PubsubNode.name),
        ("services", PubsubNode.service),
        ("names", PubsubItem.name),
        ("types", PubsubNode.type_),
        ("subtypes", PubsubNode.subtype),
    ):
        if query.get(key) is not None:
            values = _texts(key, query[key], allow_none=key in ("types", "subtypes"))
            stmt = stmt.where(_in_list(column, values))
    if query.get("parsed") is not None:
        for i, spec in enumerate(_sequence("parsed", query["parsed"], MAX_CLAUSES)):
            condition = _parsed_filter(f"parsed[{i}]", spec, json)  # checks the spec
            if sort_keys is not None:
                condition = sort_keys.condition(spec, json, condition)
            stmt = stmt.where(condition)
    rank = None
    if query.get("fts") is not None:
        stmt, rank = fts.match(stmt, fts.parse_query(query["fts"]), dialect)
    order_by = query.get("order-by")
    if order_by is None:
        order_by = [{"order": "rank" if rank is not None else "creation"}]
    for i, spec in enumerate(_sequence("order-by", order_by, MAX_CLAUSES)):
        terms = order_terms(f"order-by[{i}]", spec, json, rank)  # checks the spec
        if sort_keys is not None:
            stmt, terms = sort_keys.order(stmt, spec, terms, position=i)
        stmt = stmt.order_by(*terms)
    stmt = stmt.order_by(PubsubItem.id)
    if query.get("index") is not None:
        stmt = stmt.offset(check_count("index", query["index"]))
    if query.get("limit") is not None:
        stmt = stmt.limit(check_count("limit", query["limit"]))
    return stmt


class SearchStore(StorageBase):
    """Search of cached pubsub items (full text and parsed data)."""

    #: the statements of the last searches (:mod:`.search_cache`), made at the first
    _search_statements: SearchStatements[KeptSearch] | None = None

    @as_deferred
    def search_pubsub_items(
        self, query: Mapping[str, Any], *, all_profiles: bool = False
    ) -> defer.Deferred[list[ItemRow]]:
        """Cached items matching ``query`` (see the module docstring), in order.

        The search is scoped: ``query["profiles"]`` lists the profiles the caller may
        read. ``all_profiles=True`` is the explicit admin call searching every profile
        (still narrowed by ``profiles`` when given). Items are
        :class:`~sat_storage.storage.item_reads.ItemRow` objects (read as
        ``PubsubItem`` entities: ``.name``, ``.data`` (``domish.Element``, parsed when
        first read), ``.parsed``, ...) with their ``.node`` (a detached ``PubsubNode``).
        """
        check_flag("all_profiles", all_profiles)
        if not isinstance(query, Mapping):
            raise ValueError(f"the search query must be a dict, got {type(query).__name__}")
        profiles = query.get("profiles")
        if profiles is None:
            if not all_profiles:
                raise ValueError(
                    "profiles: a search must name the profiles it may read "
                    "(an unscoped search needs all_profiles=True)"
                )
            profile_ids = None
        else:
            profile_ids = [self.get_profile_id(p) for p in _texts("profiles", profiles)]
        statements = self._search_statements
        if statements is None:
            statements = self._search_statements = SearchStatements[KeptSearch]()
        sort_keys, dialect = self.sort_key_index, self.dialect
        search = statements.get(
            query, profile_ids, dialect, sort_keys,
            lambda: KeptSearch(build_search(query, profile_ids, dialect, sort_keys)),
        )  # fmt: skip
        if search.driver is not None:  # run before: the driver alone replays it
            return self.db.read(self.read_search, search.driver)
        d = self.db.run(self.search_and_capture_txn, search.select)
        return d.addCallback(search.keep)

    @staticmethod
    def search_pubsub_items_txn(session: Session, stmt: sa.Select[Any]) -> list[ItemRow]:
        """Run a statement made by :func:`build_search`: its rows as items, with their
        nodes (one detached ``PubsubNode`` for the items of each node)."""
        connection = session.connection()
        return _items_of_rows(connection.execute(stmt), connection.dialect)

    @staticmethod
    def search_and_capture_txn(
        session: Session, stmt: sa.Select[Any]
    ) -> tuple[list[ItemRow], BoundStatement | None]:
        """:meth:`search_pubsub_items_txn`, and what SQLAlchemy sent the driver
        (:func:`~sat_storage.driver_sql.execute_and_capture`)."""
        connection = session.connection()
        rows, bound = execute_and_capture(connection, stmt)
        return _items_of_rows(rows, connection.dialect), bound

    @staticmethod
    def read_search(reader: Reader, bound: BoundStatement) -> list[ItemRow]:
        """A search run before, replayed by the driver alone
        (:meth:`~sat_storage.gateway.Gateway.read`): the same items."""
        rows, processors = reader.unprocessed_rows(bound)
        return _items_of_rows(rows, reader.dialect, processors)


class KeptSearch:
    """A search's statement as :class:`SearchStatements` keeps it: the Core statement
    and, once SQLAlchemy ran it, its :class:`~sat_storage.driver_sql.BoundStatement`
    (all the values of a search are in its statement, so its driver SQL and
    parameters are the same at every run)."""

    __slots__ = ("select", "driver")

    def __init__(self, select: sa.Select[Any]) -> None:
        self.select = select
        self.driver: BoundStatement | None = None

    def keep(self, result: tuple[list[ItemRow], BoundStatement | None]) -> list[ItemRow]:
        """Keep the bound statement of a first run (in the reactor thread); its items."""
        items, self.driver = result
        return items


def _items_of_rows(
    rows: Iterable[Sequence[Any]],
    dialect: Dialect,
    processors: Sequence[Callable[[Any], Any] | None] | None = None,
) -> list[ItemRow]:
    """The items of a search's rows, with their nodes (one detached ``PubsubNode``
    for the items of each node). ``processors``: of rows as the driver gives them,
    applied to a node's columns once per node (the item's columns have none)."""
    row_readers = readers(dialect)
    node_processors = None
    if processors is not None:
        if any(processors[:_NODE_START]):  # (none on either engine) all converted
            pairs = list(enumerate(processors))
            rows = [tuple(row[i] if p is None else p(row[i]) for i, p in pairs) for row in rows]
        else:
            node_processors = list(enumerate(processors[_NODE_START:], _NODE_START))
    nodes: dict[int, PubsubNode] = {}
    items = []
    for row in rows:
        node = nodes.get(row[1])
        if node is None:
            if node_processors is None:
                values: Sequence[Any] = row[_NODE_START:]
            else:
                values = [row[i] if p is None else p(row[i]) for i, p in node_processors]
            node = nodes[row[1]] = node_from_row(values)
        items.append(item_from_row(row, row_readers, node))
    return items
