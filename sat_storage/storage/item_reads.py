"""Cached pubsub items as the reads give them: Core rows, light objects, lazy values.

The item reads (:meth:`~sat_storage.Storage.get_items`, the one-transaction
``get_synced_items`` and :meth:`~sat_storage.Storage.search_pubsub_items`) select
the columns of ``pubsub_items`` with Core (:data:`ITEM_READ_COLUMNS`) and wrap each row in
a :class:`ItemRow`: no ORM entity, no session identity map, no unit of work.

A :class:`ItemRow` has the attributes of a :class:`~sat_storage.models.PubsubItem`
that callers read (``id``, ``node_id``, ``name``, ``data``, ``created``, ``updated``,
``parsed``, ``node``), with the same values: the driver's values are kept as they
come, and a column whose SQL type converts them (the XML text into a
``domish.Element``, SQLite's date text into an aware UTC datetime, SQLite's JSON
text into Python values) is converted on its first read, by that column type's own
result processor (:func:`readers`), then kept. So a caller that reads only ``name``
and ``parsed`` never pays for parsing XML. Each item parses its own element: two
items (also :meth:`ItemRow.copy` of one) never share a mutable ``domish.Element``.

Nodes come as detached :class:`~sat_storage.models.PubsubNode` instances built from
their row (:func:`node_from_row`), as the ORM would load them, so a caller can hand
``item.node`` back to the storage. (The rows the writes build are
:mod:`.item_rows`'s.)
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import class_mapper, make_transient_to_detached

from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.xml_tools import to_xml

__all__ = [
    "ITEM_READ_COLUMNS",
    "NODE_COLUMNS",
    "ItemRow",
    "LAZY_START",
    "item_from_row",
    "items_from_rows",
    "node_from_row",
    "readers",
    "stored_rows",
]

_items = PubsubItem.__table__
_nodes = PubsubNode.__table__
#: the columns converted on first read (the others need no conversion on any engine)
LAZY = ("data", "created", "updated", "parsed")
_RAW = sa.types.NullType()  # selected as the driver gives them: no result processor
#: what an item read selects, in :class:`ItemRow` order (``fts_text`` is never read)
#: (``parsed`` as its JSON text on every engine: psycopg would decode jsonb at once)
ITEM_READ_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    _items.c.id,
    _items.c.node_id,
    _items.c.name,
    *(sa.type_coerce(_items.c[name], _RAW).label(name) for name in LAZY[:3]),
    sa.type_coerce(sa.cast(_items.c.parsed, sa.Text), _RAW).label("parsed"),
)
_NODE_MAPPER = class_mapper(PubsubNode)
_NODE_ATTRIBUTES = tuple(
    (attr.key, attr.columns[0]) for attr in _NODE_MAPPER.column_attrs if attr.columns
)
#: the node columns a search selects beside the item's, for :func:`node_from_row`
NODE_COLUMNS: tuple[sa.ColumnElement[Any], ...] = tuple(
    column.label(f"node_{key}") for key, column in _NODE_ATTRIBUTES
)
_readers: dict[str, tuple[Callable[[Any], Any] | None, ...]] = {}


def readers(dialect: Dialect) -> tuple[Callable[[Any], Any] | None, ...]:
    """The result processors of the :data:`LAZY` columns on ``dialect`` (None: the
    driver's value is the value), computed once per dialect. ``parsed`` comes as JSON
    text: where the driver would decode it (psycopg), it is decoded as it does."""
    found = _readers.get(dialect.name)
    if found is None:
        processors = [
            _items.c[name].type.dialect_impl(dialect).result_processor(dialect, None)
            for name in LAZY
        ]
        if processors[3] is None:
            processors[3] = json.loads
        found = _readers[dialect.name] = tuple(processors)
    return found


#: where the :data:`LAZY` columns are in a row of :data:`ITEM_READ_COLUMNS`
LAZY_START = 3


class _Lazy:
    """A :data:`LAZY` column of a :class:`ItemRow`: converted on first read, kept.

    Assigning a value replaces it (as on an ORM entity).
    """

    __slots__ = ("index", "column", "slot")

    def __init__(self, index: int) -> None:
        self.index = index  # in LAZY and in the readers
        self.column = LAZY_START + index  # in the row
        self.slot: Any = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = getattr(owner, f"_{name}")  # the slot keeping the converted value

    def __get__(self, item: ItemRow | None, owner: type | None = None) -> Any:
        if item is None:
            return self
        try:
            return self.slot.__get__(item, owner)
        except AttributeError:  # not read yet
            raw = item._row[self.column]
            reader = item._readers[self.index]
            value = raw if raw is None or reader is None else reader(raw)
            self.slot.__set__(item, value)
            return value

    def __set__(self, item: ItemRow, value: Any) -> None:
        self.slot.__set__(item, value)
        if self.index == 0:  # new XML: the stored text no longer says it
            item._xml_changed = True


def _column(index: int, doc: str) -> property:
    """A read-only attribute of :class:`ItemRow`: column ``index`` of its row as read."""
    return property(lambda item: item._row[index], doc=doc)


class ItemRow:
    """One cached item as the reads give it (see the module docstring).

    Attributes as on :class:`~sat_storage.models.PubsubItem`: ``id``, ``node_id``,
    ``name``, ``data`` (the ``<item/>`` ``domish.Element``), ``created`` and
    ``updated`` (aware UTC datetimes), ``parsed`` (the analyser's data or None), and
    ``node`` (the :class:`~sat_storage.models.PubsubNode`, when the read knows it);
    plus :attr:`xml`, the stored XML text. It is not an ORM entity: saving a change
    goes through the storage's write methods, as for a detached entity.

    It keeps the driver's row it was read from (:attr:`row`, never changed: the
    read cache keeps it as it is), so building one is three assignments; ``id``,
    ``node_id`` and ``name`` are read from it (not assignable).
    """

    __slots__ = (
        "_row", "_readers", "node", "_xml_changed", "_data", "_created", "_updated", "_parsed",
    )  # fmt: skip

    id: Any = _column(0, "The item's row id.")
    node_id: Any = _column(1, "Its node's id.")
    name: Any = _column(2, "The item's id in its node.")
    data: Any = _Lazy(0)
    created: Any = _Lazy(1)
    updated: Any = _Lazy(2)
    parsed: Any = _Lazy(3)

    def __init__(
        self,
        row: Sequence[Any],
        row_readers: Sequence[Callable[[Any], Any] | None],
        node: PubsubNode | None = None,
    ) -> None:
        self._row = row
        self._readers = row_readers
        self.node = node
        self._xml_changed = False

    @property
    def row(self) -> Sequence[Any]:
        """The driver's row the item was read from (:data:`ITEM_READ_COLUMNS` first)."""
        return self._row

    @property
    def xml(self) -> str:
        """The item's XML text: as stored (no parsing), or of ``data`` once assigned."""
        if self._xml_changed:
            return to_xml(self.data)
        return self._row[LAZY_START]

    def copy(self) -> ItemRow:
        """The same item, its values not read yet: its ``data`` is its own element."""
        return ItemRow(self._row, self._readers, self.node)

    def __repr__(self) -> str:
        return f"<ItemRow #{self.id} {self.name!r} of node #{self.node_id}>"


def item_from_row(
    row: Sequence[Any],
    row_readers: Sequence[Callable[[Any], Any] | None],
    node: PubsubNode | None = None,
) -> ItemRow:
    """The :class:`ItemRow` of a row of :data:`ITEM_READ_COLUMNS` (and possibly more)."""
    return ItemRow(row, row_readers, node)


def items_from_rows(
    rows: Iterable[Sequence[Any]], dialect: Dialect, node: PubsubNode | None = None
) -> list[ItemRow]:
    """The items of rows of :data:`ITEM_READ_COLUMNS`, all of ``node`` when given."""
    row_readers = readers(dialect)
    return [ItemRow(row, row_readers, node) for row in rows]


_ROW = operator.attrgetter("_row")


def stored_rows(
    items: Sequence[ItemRow],
) -> tuple[tuple[Sequence[Any], ...], Sequence[Callable[[Any], Any] | None]]:
    """What :class:`ItemRow` objects just read were built of: their driver rows (a
    value assigned since is not in them), and the readers of the first (the same for
    a whole read), ``()`` if none."""
    return tuple(map(_ROW, items)), (items[0]._readers if items else ())


def node_from_row(values: Sequence[Any]) -> PubsubNode:
    """A detached :class:`~sat_storage.models.PubsubNode` (as a closed session leaves
    the ones it loaded: identity set, relationships not loaded) of the values of
    :data:`NODE_COLUMNS`, in order, converted (selected with their types)."""
    node = _NODE_MAPPER.class_manager.new_instance()
    node.__dict__.update(zip((key for key, _ in _NODE_ATTRIBUTES), values, strict=True))
    make_transient_to_detached(node)
    return node
