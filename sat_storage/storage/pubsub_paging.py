"""Reads of cached pubsub items: pages with XEP-0059 (RSM) metadata, keyset paging.

Pages are read with keyset paging on the ``pubsub_items(node_id, id)`` and
``(node_id, updated, id)`` indexes: a range scan of the order's index. RSM ``count``
is the node's ``item_count`` (kept by the item writes, :mod:`sat_storage.item_counts`);
``index`` is known from the request, or read from the same index for pages after or
before a cursor (:mod:`.rsm_positions`, see :meth:`PubsubPagingStore.get_items`). A request is an
:class:`~sat_storage.storage.items_query.ItemsQuery`, checked once. Every page is read
by the driver alone (statements compiled once per shape, a
:class:`~sat_storage.driver_sql.Reader`): in a read of the gateway, or on the
connection of a Session's transaction (the ``*_txn`` twins); a cursor's key is bound
back as the driver read it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage.driver_sql import Reader
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubNode
from sat_storage.storage import page_statements as sql
from sat_storage.storage import rsm_positions
from sat_storage.storage.base import as_deferred
from sat_storage.storage.checks import batched, check_node
from sat_storage.storage.item_reads import ItemRow, items_from_rows
from sat_storage.storage.items_query import ItemsQuery
from sat_storage.storage.page_cache import (
    HIT,
    Entry,
    PageCache,
    Stamp,
    current_entry,
    entry_of_page,
)
from sat_storage.storage.pubsub_nodes import PubsubNodesStore

__all__ = ["Page", "PubsubPagingStore", "plain_query"]

Page = tuple[list[ItemRow], dict[str, Any]]  # (items oldest first, RSM metadata)


def _key_of(item: ItemRow, keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(item, k) for k in keys)


def _metadata(
    items: list[ItemRow], index: int | None, count: int, complete: bool
) -> dict[str, Any]:
    return {
        "rsm": {
            "first": items[0].name if items else None,
            "last": items[-1].name if items else None,
            "index": index if items else None,
            "count": count,
        },
        "complete": complete,
    }


@functools.lru_cache(maxsize=256)
def _plain_query(max_items: int | None, desc: bool, force_rsm: bool) -> ItemsQuery:
    """The query of the newest or oldest ``max_items`` (immutable: built, checked once;
    a refused value raises each time, nothing is kept for it)."""
    return ItemsQuery(max_items, desc=desc, force_rsm=force_rsm)


def _query(
    max_items: int | ItemsQuery | None,
    item_ids: list[str] | None,
    before: str | None,
    after: str | None,
    from_index: int | None,
    order_by: list[str] | None,
    desc: bool,
    force_rsm: bool,
) -> ItemsQuery:
    """The query of ``get_items`` arguments: a ready one as is, else built (checked)."""
    if not isinstance(max_items, ItemsQuery):
        if (
            item_ids is None and before is None and after is None and from_index is None
            and order_by is None and (max_items is None or type(max_items) is int)
            and type(desc) is bool and type(force_rsm) is bool
        ):  # fmt: skip
            return _plain_query(max_items, desc, force_rsm)
        return ItemsQuery(max_items, item_ids, before, after, from_index, order_by, desc, force_rsm)  # type: ignore[arg-type]
    if (
        item_ids is not None or before is not None or after is not None
        or from_index is not None or order_by is not None
        or desc is not True or force_rsm is not False
    ):  # fmt: skip
        raise ValueError("get_items(node, query): an ItemsQuery takes no other argument")
    return max_items


def plain_query(query: ItemsQuery) -> bool:
    """True for the newest or oldest page of the node (no ids, no cursor): the
    query :meth:`PubsubPagingStore.read_items_page` answers."""
    return (
        query.item_ids is None
        and query.after is None
        and not query.before
        and query.from_index is None
    )


class PubsubPagingStore(PubsubNodesStore):
    """Pages of cached items (the one-transaction read of a synchronised node is
    :class:`~sat_storage.storage.read_cache.SyncedReadsStore`). Every page is read by
    the driver alone (:meth:`read_items`), in a read of the gateway or in a Session's
    transaction (the ``*_txn`` methods)."""

    #: pages kept in memory (set by ``Storage.__init__``)
    read_cache: PageCache

    @classmethod
    def get_items_txn(
        cls, session: Session, node_id: int, query: ItemsQuery, node: PubsubNode | None = None
    ) -> Page:
        """The page of node ``node_id`` that ``query`` asks for, with its metadata, in
        ``session``'s transaction (:meth:`read_items`).

        Items are :class:`~sat_storage.storage.item_reads.ItemRow` objects (``node``
        given: as their ``.node``).
        """
        with sql.session_reader(session) as reader:
            return cls.read_items(reader, node_id, query, node)

    @classmethod
    def read_items(
        cls, reader: Reader, node_id: int, query: ItemsQuery, node: PubsubNode | None = None
    ) -> Page:
        """The page of node ``node_id`` that ``query`` asks for, by the driver alone."""
        if query.item_ids is not None:
            return cls.read_items_by_ids(reader, node_id, query, node)
        if plain_query(query):
            return cls.read_items_page(reader, node_id, query, node)
        return cls.read_cursor_page(reader, node_id, query, node)[0]

    @classmethod
    def read_items_unless(
        cls,
        reader: Reader,
        node_id: int,
        query: ItemsQuery,
        node: PubsubNode | None,
        known: Stamp | None,
    ) -> tuple[Page | str, Stamp | None]:
        """(the page, the node's counters read before it), the page :data:`HIT` when
        the counters are ``known`` (the cached page's); no counters: no node."""
        cursor = query.item_ids is None and (query.before or query.after)
        if cursor and known is None:  # the counters read with the cursor's key
            return cls.read_cursor_page(reader, node_id, query, node)
        counters = reader.rows(sql.COUNTERS, {"node_id": node_id})
        stamp = tuple(counters[0]) if counters else None
        if stamp is not None and stamp == known:
            return HIT, stamp
        if query.item_ids is not None:
            return cls.read_items_by_ids(reader, node_id, query, node), stamp
        if plain_query(query):
            return cls.read_items_page(reader, node_id, query, node, counters), stamp
        return cls.read_cursor_page(reader, node_id, query, node, counters)[0], stamp

    @staticmethod
    def read_items_page(
        reader: Reader,
        node_id: int,
        query: ItemsQuery,
        node: PubsubNode | None = None,
        counters: Sequence[Any] | None = None,
    ) -> Page:
        """The newest or oldest page (a query :func:`plain_query` accepts): the same
        page and metadata as :meth:`read_cursor_page` gives, one statement fewer
        (``counters``: the node's counters' rows, already read)."""
        if counters is None:
            counters = reader.rows(sql.COUNTERS, {"node_id": node_id})
        count = counters[0][0] if counters else 0
        max_items = query.max_items
        backwards = query.before == "" or query.desc
        items: list[ItemRow] = []
        if max_items != 0:
            mode = "desc" if backwards else "asc"
            stmt = sql.page_statement(query.keys, mode, max_items is not None)
            rows = reader.rows(stmt, {"node_id": node_id, "limit": max_items})
            items = items_from_rows(rows, reader.dialect, node)
        if items:
            if backwards:
                items.reverse()
            index: int | None = count - len(items) if backwards else 0
            complete = index + len(items) == count
        else:
            index, complete = None, count == 0 or max_items != 0
        return items, _metadata(items, index, count, complete)

    @classmethod
    def get_items_page_txn(
        cls, session: Session, node_id: int, query: ItemsQuery, node: PubsubNode | None = None
    ) -> Page:
        """:meth:`read_cursor_page`'s page in ``session``'s transaction."""
        with sql.session_reader(session) as reader:
            return cls.read_cursor_page(reader, node_id, query, node)[0]

    @classmethod
    def read_cursor_page(
        cls,
        reader: Reader,
        node_id: int,
        query: ItemsQuery,
        node: PubsubNode | None = None,
        counters: Sequence[Any] | None = None,
    ) -> tuple[Page, Stamp | None]:
        """Keyset paging (any query without ``item_ids``): a range scan of the order's
        index; the count is the node's stored ``item_count``, the index known from the
        request or read cheaply. With the node's counters read first (``counters``:
        their rows, already read, unless a cursor's key is read with them)."""
        keys, max_items, before = query.keys, query.max_items, query.before
        cursor = before or query.after
        cursor_key = None
        if cursor:  # its keyset, read with the node's counters (one statement)
            rows = reader.rows(sql.counters_statement(keys), {"node_id": node_id, "name": cursor})
            if not rows or rows[0][2] is None:
                raise NotFound(f"item {cursor!r} is not in the cache of node #{node_id}")
            count, version, cursor_key = rows[0][0], rows[0][1], tuple(rows[0][2:])
            stamp: Stamp | None = (count, version)
        else:
            if counters is None:
                counters = reader.rows(sql.COUNTERS, {"node_id": node_id})
            stamp = tuple(counters[0]) if counters else None
            count, version = stamp or (0, 0)
            if query.from_index is not None and max_items != 0:
                # the key at that position (from the index alone); the page starts there
                cursor_key = rsm_positions.key_at(
                    reader, node_id, keys, query.from_index, count, version
                )
        items: list[ItemRow] = []
        if max_items != 0:
            items = sql.page_items(reader, node_id, query, cursor_key, node)
        if items:
            index = cls._index(reader, node_id, query, items, count, version)
            complete = index + len(items) == count
        else:
            index = None
            # an empty page ends the node, except before the first item or when max is 0
            complete = count == 0 or (max_items != 0 and not before)
        return (items, _metadata(items, index, count, complete)), stamp

    @staticmethod
    def _index(
        reader: Reader,
        node_id: int,
        query: ItemsQuery,
        items: list[ItemRow],
        count: int,
        version: int,
    ) -> int:
        """Position of the page's first item in the node (how many items come before it).

        Known without reading for the oldest and newest pages and ``from_index``; after
        or before a cursor, read from the order's index (:mod:`.rsm_positions`).
        """
        if query.after is None and not query.before:
            if query.from_index is not None:
                return query.from_index
            if query.before == "" or query.desc:
                return count - len(items)
            return 0
        first = sql.raw_key(items[0], query.keys)
        return rsm_positions.position(reader, node_id, query.keys, first, count, version)

    @classmethod
    def get_items_by_ids_txn(
        cls, session: Session, node_id: int, query: ItemsQuery, node: PubsubNode | None = None
    ) -> Page:
        """:meth:`read_items_by_ids` in ``session``'s transaction."""
        with sql.session_reader(session) as reader:
            return cls.read_items_by_ids(reader, node_id, query, node)

    @staticmethod
    def read_items_by_ids(
        reader: Reader, node_id: int, query: ItemsQuery, node: PubsubNode | None = None
    ) -> Page:
        """The items named ``query.item_ids`` (at most ``MAX_ITEMS_BATCH``), paged in memory.

        The page is taken within the named items, as a page of the node would be:
        ``after``/``before`` (an item cached in the node, named or not), ``from_index``
        (a position among the named items found), else the newest or oldest ones.
        """
        assert query.item_ids is not None
        found: list[ItemRow] = []
        for chunk in batched(query.item_ids):
            size, params = sql.named_params(node_id, chunk)
            rows = reader.rows(sql.named_items(size), params)
            found.extend(items_from_rows(rows, reader.dialect, node))
        found.sort(key=lambda item: _key_of(item, query.keys))
        count, most = len(found), query.max_items
        cursor = query.before or query.after
        if cursor:
            rows = reader.rows(sql.key_statement(query.keys), {"node_id": node_id, "name": cursor})
            if not rows:
                raise NotFound(f"item {cursor!r} is not in the cache of node #{node_id}")
            cursor_key = tuple(rows[0])
            keyed = [(_key_of(item, query.keys), item) for item in found]
            if query.after is not None:
                pool = [item for k, item in keyed if k > cursor_key]
                items, index = pool[:most], count - len(pool)
            else:
                pool = [item for k, item in keyed if k < cursor_key]
                items = pool[max(len(pool) - most, 0) :] if most is not None else pool
                index = len(pool) - len(items)
        elif query.from_index is not None:
            index = query.from_index
            items = found[index : None if most is None else index + most]
        elif most is not None and (query.before == "" or query.desc):
            index = max(count - most, 0)
            items = found[index:]
        else:
            index, items = 0, found[:most]
        if items:
            complete = index + len(items) == count
        else:  # as a page of the node: the end, except before the first or when max is 0
            complete = count == 0 or (most != 0 and not query.before)
        return items, _metadata(items, index, count, complete)

    @as_deferred
    def get_items(
        self,
        node: PubsubNode,
        max_items: int | None = None,
        item_ids: list[str] | None = None,
        before: str | None = None,
        after: str | None = None,
        from_index: int | None = None,
        order_by: list[str] | None = None,
        desc: bool = True,
        force_rsm: bool = False,
    ) -> defer.Deferred[Page]:
        """A page of cached items of ``node``, with XEP-0059 (RSM) metadata.

        Items are ordered by ``order_by`` (a list of ``"creation"`` = order first
        cached, ``"modification"`` = last update; default modification), index 0
        being the oldest; a page is always returned oldest first.

        - ``after=ID``: the first ``max_items`` items after ``ID``;
        - ``before=ID``: the ``max_items`` items just before ``ID``;
          ``before=""``: the last page;
        - ``from_index=I``: ``max_items`` items from position ``I``;
        - none of them: the newest ``max_items`` items (``desc=False``: the oldest);
        - ``item_ids``: only those items (unknown ones are skipped), paged as above
          within them: ``max_items`` and a cursor (Libervia-style callers pass the
          RSM cursor of a request with its ids) give a page of the named items,
          ``index`` and ``count`` counted among them.

        ``max_items`` None means no limit, 0 only counts. An unknown ``after`` or
        ``before`` id raises ``NotFound``. Metadata: ``{"rsm": {"first", "last",
        "index", "count"}, "complete"}``; ``complete`` is True when no item comes
        after the page. RSM metadata is always given, so ``force_rsm`` (Libervia's)
        changes nothing.

        A request already checked, an :class:`~sat_storage.ItemsQuery`, is given as
        the only argument after ``node`` (``get_items(node, query)``): it is not
        checked again.

        Pages (except a read of all the items) are kept by the read cache
        (:mod:`.page_cache`): a page asked again is answered from memory, on SQLite
        with no query while no transaction committed since, else after one read of
        the node's counters; never older than the database. Items are then
        :class:`~sat_storage.storage.page_cache.CachedItem` objects (``ItemRow``
        subclasses), of the caller's own.
        """
        node = check_node(node)
        query = _query(max_items, item_ids, before, after, from_index, order_by, desc, force_rsm)
        if not self.read_cache.max_items or (query.max_items is None and query.item_ids is None):
            # (a read of all the node's items, e.g. a catch-up's, is not kept: it would
            # push the hot pages out)
            return self.db.read(self.read_items, node.id, query, node)
        node_id = node.id
        key = (node_id, query)
        entry, token = current_entry(self.read_cache, key, self.db.changes)
        if entry is not None and entry.current(token):  # no commit since: no query
            return defer.succeed(entry.answer(node))
        known = None if entry is None else entry.stamp
        return self.db.read(
            self.read_items_unless,
            *(node_id, query, node, known),
            then=self._cached_page,
            then_args=(key, entry, token, node),
        )

    def _cached_page(
        self,
        result: tuple[Page | str, Stamp | None],
        key: tuple[int, ItemsQuery],
        entry: Entry | None,
        token: bytes | None,
        node: PubsubNode,
    ) -> Page:
        page, stamp = result
        if page is HIT:
            assert entry is not None
            entry.token = token  # current when ``token`` was read
            return entry.answer(node)
        assert not isinstance(page, str)
        if stamp is not None:  # else no node: nothing kept
            self.read_cache.put(key, entry_of_page(node.id, stamp, page, token))
        return page
