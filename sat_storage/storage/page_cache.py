"""The pages of the read cache (:mod:`.read_cache`), in the reactor thread.

:class:`PageCache` is an LRU of pages of synchronised nodes, bounded by the items of
all its pages together, that forgets a node's pages at once (Synapse's ``@cached``
descriptors keep results in front of the database likewise). A page is cached with
the *stamp* of its node it was read under; callers get :class:`CachedItem` objects
built for each answer, whose ``data`` is a copy of the cached element
(:func:`~sat_storage.xml_tools.copy_element`, faster than parsing the XML again) and
``parsed`` a copy of the cached dict, made when first read: nothing mutable is shared.
The functions :func:`drop_pages` and :func:`dropping_pages` are what this process's
writes call to forget the pages they may change.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from twisted.words.xish import domish

from sat_storage.xml_tools import copy_element

T = TypeVar("T")

__all__ = [
    "DEFAULT_READ_CACHE_ITEMS",
    "CachedItem",
    "Entry",
    "PageCache",
    "drop_pages",
    "dropping_pages",
    "entry_of_page",
    "read_cache_items",
]

#: items kept in memory by default (``[storage] read_cache_items``), all pages together
DEFAULT_READ_CACHE_ITEMS = 2000
Stamp = tuple[Any, ...]  # (node id, items version, sync_state_updated)
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


@dataclass(frozen=True, slots=True)
class _Template:
    """One cached item: never handed out, only copied."""

    id: int
    node_id: int
    name: str
    created: datetime
    updated: datetime
    data: domish.Element
    parsed: dict[str, Any] | None


class CachedItem:
    """An item of an answer of the read cache, read as a ``PubsubItem``: ``id``,
    ``node_id``, ``name``, ``created``, ``updated``, ``data`` (the ``<item/>``
    element), ``parsed`` and ``node``. ``data`` and ``parsed`` belong to this object
    (copies of the cache's, made when first read): changing them changes no other
    answer."""

    __slots__ = ("_data", "_parsed", "_template", "node")

    def __init__(self, template: _Template, node: Any = None) -> None:
        self._template = template
        #: the item's :class:`~sat_storage.models.PubsubNode`, as read with the answer
        self.node = node
        self._data: domish.Element | None = None
        self._parsed: Any = _UNSET

    @property
    def id(self) -> int:
        return self._template.id

    @property
    def node_id(self) -> int:
        return self._template.node_id

    @property
    def name(self) -> str:
        return self._template.name

    @property
    def created(self) -> datetime:
        return self._template.created

    @property
    def updated(self) -> datetime:
        return self._template.updated

    @property
    def data(self) -> domish.Element:
        """The ``<item/>`` element (this item's own copy)."""
        if self._data is None:
            self._data = copy_element(self._template.data)
        return self._data

    @property
    def parsed(self) -> dict[str, Any] | None:
        """The parsed data (this item's own copy)."""
        if self._parsed is _UNSET:
            self._parsed = _copy_json(self._template.parsed)
        return self._parsed  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<CachedItem {self.name!r} of node #{self.node_id}>"


_UNSET = object()


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached page: the stamp it was read under, its items and metadata."""

    node_id: int
    stamp: Stamp
    items: tuple[_Template, ...]
    metadata: dict[str, Any]

    def answer(self, node: Any = None) -> Page:
        """The page for one caller: new items (of ``node``), new metadata dicts."""
        metadata = dict(self.metadata)
        metadata["rsm"] = dict(metadata["rsm"])
        return [CachedItem(template, node) for template in self.items], metadata


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
        weight = max(len(entry.items), 1)
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
        self.size -= max(len(entry.items), 1)
        keys = self._by_node[entry.node_id]
        keys.discard(key)
        if not keys:
            del self._by_node[entry.node_id]


def entry_of_page(node_id: int, stamp: Stamp, page: Page) -> Entry:
    """The cache entry of a page read from the database: its items' elements and
    parsed data become the cache's own (the page must not be handed out)."""
    items, metadata = page
    templates = tuple(
        _Template(
            item.id,
            node_id,
            item.name,
            item.created,
            item.updated,
            item.data,
            item.parsed,
        )
        for item in items
    )
    return Entry(node_id, stamp, templates, metadata)


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
