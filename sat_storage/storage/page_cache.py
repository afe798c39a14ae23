"""The pages of the read cache (:mod:`.read_cache`, ``Storage.get_items``), in the
reactor thread.

:class:`PageCache` is an LRU of pages, bounded by the items of all its pages
together, that forgets a node's pages at once (Synapse's ``@cached`` descriptors keep
results in front of the database likewise). A page (:class:`Entry`) is cached with
the *stamp* of its node it was read under and the *token* of the database's
wal-index header (:mod:`sat_storage.wal_changes`) under which it was last found
current: while the token is the same, no transaction committed and the page is
answered with no query (:meth:`Entry.current`); otherwise the caller reads the
stamp. An entry keeps the driver's values of its items (immutable); callers get
:class:`CachedItem` objects built for each answer, whose ``data`` is a copy of an
element parsed once per entry (:func:`~sat_storage.xml_tools.copy_element`, faster
than parsing the XML again) and ``parsed`` its own decoding: nothing mutable is
shared. The functions :func:`drop_pages` and :func:`dropping_pages` are what this
process's writes call to forget the pages they may change (memory only: the token
and the stamp keep answers right).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from twisted.words.xish import domish

from sat_storage.models import PubsubNode
from sat_storage.storage.item_reads import ItemRow, node_from_row, stored_rows
from sat_storage.wal_changes import WalChanges
from sat_storage.xml_tools import copy_element

T = TypeVar("T")

__all__ = [
    "DEFAULT_READ_CACHE_ITEMS",
    "CachedItem",
    "HIT",
    "Entry",
    "PageCache",
    "current_entry",
    "drop_pages",
    "dropping_pages",
    "entry_of_page",
    "read_cache_items",
]

#: items kept in memory by default (``[storage] read_cache_items``), all pages together
DEFAULT_READ_CACHE_ITEMS = 2000
Stamp = tuple[Any, ...]  # what changes with the node's items (its version, ...)
#: a read's answer when the node's stamp is the cached page's (the page is current)
HIT = "hit"
Page = tuple[list[Any], dict[str, Any]]  # (items oldest first, RSM metadata)


def read_cache_items(value: object) -> int:
    """The read cache's bound (items, ``0`` = no cache) from an argument or config text
    (None: :data:`DEFAULT_READ_CACHE_ITEMS`); ``ValueError`` naming
    ``read_cache_items`` when it is not a non-negative integer."""
    if value is None:
        return DEFAULT_READ_CACHE_ITEMS
    number = -1
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            number = int(value)
        except ValueError:
            pass
    if number < 0:
        raise ValueError(f"read_cache_items must be a non-negative integer, got {value!r}")
    return number


def _copy_json(value: Any) -> Any:
    """A copy of a JSON document (dicts, lists, scalars) sharing nothing mutable."""
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


class CachedItem(ItemRow):
    """An item of an answer of the read cache: an
    :class:`~sat_storage.storage.item_reads.ItemRow` (the same attributes, values and
    behaviour as the database's reads give) built for this answer, whose ``data`` is
    a copy of the cache's element (parsed once per cached page) and ``parsed`` its own
    decoding: changing them changes no other answer."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<CachedItem {self.name!r} of node #{self.node_id}>"


def _element_copies(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A reader of XML text giving a new copy of the element each time, the text
    parsed by ``parse`` once (the parsed elements are never handed out)."""
    templates: dict[Any, domish.Element] = {}

    def copy_of(xml: Any) -> domish.Element:
        template = templates.get(xml)
        if template is None:
            template = templates[xml] = parse(xml)
        return copy_element(template)

    return copy_of


Row = Sequence[Any]  # an item's row as the driver read it (ITEM_READ_COLUMNS first)


class Entry:
    """A cached page: the stamp it was read under, its items' stored values and its
    metadata; for a synchronised read (:mod:`.read_cache`), the node's row too.

    ``token`` is the wal-index header (:mod:`sat_storage.wal_changes`) read before the
    read that last found the stamp current: while the header is the same, no
    transaction committed, and the page is answered with no query."""

    __slots__ = ("node_id", "stamp", "rows", "readers", "metadata", "node_values", "token")

    def __init__(
        self,
        node_id: int,
        stamp: Stamp,
        rows: tuple[Row, ...],
        readers: Sequence[Callable[[Any], Any] | None],
        metadata: dict[str, Any],
        node_values: Sequence[Any] | None = None,
        token: bytes | None = None,
    ) -> None:
        self.node_id = node_id
        self.stamp = stamp
        self.rows = rows
        data = readers[0] if readers else None
        self.readers = (_element_copies(data), *readers[1:]) if data is not None else readers
        self.metadata = metadata
        self.node_values = node_values
        self.token = token

    def current(self, token: bytes | None) -> bool:
        """True when no transaction committed since the page was last found the
        database's: ``token`` (read now) is its :attr:`token`, and neither is None."""
        return token is not None and token == self.token

    def answer(self, node: Any = None) -> Page:
        """The page for one caller: new items (of ``node``), new metadata dicts."""
        metadata = dict(self.metadata)
        metadata["rsm"] = dict(metadata["rsm"])
        readers = self.readers
        items = [CachedItem(row, readers, node) for row in self.rows]
        return items, metadata

    def node(self) -> PubsubNode:
        """A new node of the cached row (nothing mutable shared with another answer)."""
        assert self.node_values is not None
        return node_from_row([_copy_json(value) for value in self.node_values])


class PageCache:
    """LRU of pages, bounded by the items of all pages together (``max_items``, 0 =
    nothing cached), with the pages of each node (dropped together)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._pages: OrderedDict[Hashable, Entry] = OrderedDict()
        self._by_node: dict[int, set[Hashable]] = {}
        #: items held, all pages together (an empty page counts one)
        self.size = 0

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: Hashable) -> Entry | None:
        """The page cached under ``key`` (now the most recently used), or None."""
        entry = self._pages.get(key)
        if entry is not None:
            self._pages.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        """Cache ``entry`` under ``key``; the least recently used pages go beyond the
        bound (a page bigger than the bound is not kept)."""
        self._remove(key)
        weight = max(len(entry.rows), 1)
        if weight > self.max_items:
            return
        self._pages[key] = entry
        self._by_node.setdefault(entry.node_id, set()).add(key)
        self.size += weight
        while self.size > self.max_items:
            self._remove(next(iter(self._pages)))

    def drop_node(self, node_id: int) -> None:
        """Forget every page of node ``node_id``."""
        for key in list(self._by_node.get(node_id, ())):
            self._remove(key)

    def clear(self) -> None:
        """Forget every page."""
        self._pages.clear()
        self._by_node.clear()
        self.size = 0

    def _remove(self, key: Hashable) -> None:
        entry = self._pages.pop(key, None)
        if entry is None:
            return
        self.size -= max(len(entry.rows), 1)
        keys = self._by_node[entry.node_id]
        keys.discard(key)
        if not keys:
            del self._by_node[entry.node_id]


def entry_of_page(
    node_id: int,
    stamp: Stamp,
    page: Page,
    token: bytes | None = None,
    node_values: Sequence[Any] | None = None,
) -> Entry:
    """The cache entry of a page of :class:`~.item_reads.ItemRow` objects just read
    from the database (their stored values are immutable: the page may be handed out;
    its metadata is copied)."""
    items, metadata = page
    metadata = dict(metadata)
    metadata["rsm"] = dict(metadata["rsm"])
    rows, readers = stored_rows(items)
    return Entry(node_id, stamp, rows, readers, metadata, node_values, token)


def current_entry(
    cache: PageCache, key: Hashable, changes: WalChanges | None
) -> tuple[Entry | None, bytes | None]:
    """(the page cached under ``key`` or None, the token of ``changes`` now or None,
    read first): the page is the database's without a query when
    :meth:`Entry.current` says so; else the caller reads the node's stamp."""
    token = None if changes is None else changes.token()
    return cache.get(key), token


def drop_pages(storage: Any, node_ids: list[int] | None = None) -> None:
    """Forget the cached pages of ``node_ids`` (None: every page) of ``storage``."""
    cache: PageCache | None = getattr(storage, "read_cache", None)
    if cache is None:
        return
    if node_ids is None:
        cache.clear()
        return
    for node_id in node_ids:
        cache.drop_node(node_id)


def dropping_pages(storage: Any, node_ids: list[int] | None = None) -> Callable[[T], T]:
    """A pass-through callback of a write's Deferred that forgets the pages of
    ``node_ids`` (None: every page) once the write is over, done or failed."""

    def drop(result: T) -> T:
        drop_pages(storage, node_ids)
        return result

    return drop
