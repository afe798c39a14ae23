"""Reads of cached pubsub items: pages with XEP-0059 (RSM) metadata, keyset paging.

Pages are read with keyset paging on the ``pubsub_items(node_id, id)`` and
``(node_id, updated, id)`` indexes: a range scan of the order's index, then one
COUNT on it (see :meth:`PubsubPagingStore.get_items`). A request is an
:class:`~sat_storage.storage.items_query.ItemsQuery`, checked once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case, func, select, tuple_
from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.storage.base import as_deferred
from sat_storage.storage.checks import batched, check_node
from sat_storage.storage.items_query import ItemsQuery
from sat_storage.storage.pubsub_nodes import PubsubNodesStore

__all__ = ["Page", "PubsubPagingStore"]

Page = tuple[list[PubsubItem], dict[str, Any]]  # (items oldest first, RSM metadata)


def _key_of(item: PubsubItem, keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(item, k) for k in keys)


def _metadata(
    items: list[PubsubItem], index: int | None, count: int, complete: bool
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
        return ItemsQuery(max_items, item_ids, before, after, from_index, order_by, desc, force_rsm)  # type: ignore[arg-type]
    others = (item_ids, before, after, from_index, order_by)
    if any(value is not None for value in others) or desc is not True or force_rsm is not False:
        raise ValueError("get_items(node, query): an ItemsQuery takes no other argument")
    return max_items


class PubsubPagingStore(PubsubNodesStore):
    """Pages of cached items (the one-transaction read of a synchronised node is
    :class:`~sat_storage.storage.read_cache.SyncedReadsStore`)."""

    @classmethod
    def get_items_txn(cls, session: Session, node_id: int, query: ItemsQuery) -> Page:
        """The page of node ``node_id`` that ``query`` asks for, with its metadata."""
        if query.item_ids is not None:
            return cls.get_items_by_ids_txn(session, node_id, query)
        return cls.get_items_page_txn(session, node_id, query)

    @classmethod
    def get_items_page_txn(cls, session: Session, node_id: int, query: ItemsQuery) -> Page:
        """Keyset paging: a range scan of the order's index, then one COUNT on it."""
        keys, max_items, before = query.keys, query.max_items, query.before
        key = tuple_(*(getattr(PubsubItem, k) for k in keys))
        node_filter = PubsubItem.node_id == node_id
        cursor = before or query.after
        cursor_key = None
        if cursor:
            cursor_key = cls._cursor_key(session, node_filter, key, cursor, node_id)
        items: list[PubsubItem] = []
        if max_items != 0:
            items = cls._page(session, node_filter, key, query, cursor_key)
        if items:
            first = _key_of(items[0], keys)
            count, index = session.execute(
                select(func.count(), func.count(case((key < first, 1)))).where(node_filter)
            ).one()
            complete = index + len(items) == count
        else:
            count = session.execute(select(func.count()).where(node_filter)).scalar_one()
            index = None
            # an empty page ends the node, except before the first item or when max is 0
            complete = count == 0 or (max_items != 0 and not before)
        return items, _metadata(items, index, count, complete)

    @staticmethod
    def _page(
        session: Session,
        node_filter: ColumnElement[bool],
        key: Any,
        query: ItemsQuery,
        cursor_key: tuple[Any, ...] | None,
    ) -> list[PubsubItem]:
        """Items of one page, oldest first, read from the order's index."""
        ascending = [c.asc() for c in key.clauses]
        descending = [c.desc() for c in key.clauses]
        stmt = select(PubsubItem).where(node_filter)
        backwards = False
        if query.after is not None:
            stmt = stmt.where(key > cursor_key).order_by(*ascending)
        elif query.before:
            stmt = stmt.where(key < cursor_key).order_by(*descending)
            backwards = True
        elif query.from_index is not None:
            # the key at that position, from the index alone; then a range scan
            start = session.execute(
                select(*key.clauses)
                .where(node_filter)
                .order_by(*ascending)
                .offset(query.from_index)
                .limit(1)
            ).one_or_none()
            if start is None:
                return []
            stmt = stmt.where(key >= tuple(start)).order_by(*ascending)
        elif query.before == "" or query.desc:
            stmt = stmt.order_by(*descending)
            backwards = True
        else:
            stmt = stmt.order_by(*ascending)
        if query.max_items is not None:
            stmt = stmt.limit(query.max_items)
        items = list(session.scalars(stmt))
        if backwards:
            items.reverse()
        return items

    @staticmethod
    def _cursor_key(
        session: Session, node_filter: ColumnElement[bool], keys: Any, cursor: str, node_id: int
    ) -> tuple[Any, ...]:
        """The keyset of the cached item ``cursor`` (``NotFound`` when not cached)."""
        row = session.execute(
            select(*keys.clauses).where(node_filter, PubsubItem.name == cursor)
        ).one_or_none()
        if row is None:
            raise NotFound(f"item {cursor!r} is not in the cache of node #{node_id}")
        return tuple(row)

    @classmethod
    def get_items_by_ids_txn(cls, session: Session, node_id: int, query: ItemsQuery) -> Page:
        """The items named ``query.item_ids`` (at most ``MAX_ITEMS_BATCH``), paged in memory.

        The page is taken within the named items, as a page of the node would be:
        ``after``/``before`` (an item cached in the node, named or not), ``from_index``
        (a position among the named items found), else the newest or oldest ones.
        """
        assert query.item_ids is not None
        node_filter = PubsubItem.node_id == node_id
        found: list[PubsubItem] = []
        for chunk in batched(query.item_ids):
            found.extend(
                session.scalars(select(PubsubItem).where(node_filter, PubsubItem.name.in_(chunk)))
            )
        found.sort(key=lambda item: _key_of(item, query.keys))
        count, most = len(found), query.max_items
        cursor = query.before or query.after
        if cursor:
            key = tuple_(*(getattr(PubsubItem, k) for k in query.keys))
            cursor_key = cls._cursor_key(session, node_filter, key, cursor, node_id)
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
        """
        node = check_node(node)
        query = _query(max_items, item_ids, before, after, from_index, order_by, desc, force_rsm)
        return self.db.run(self.get_items_txn, node.id, query)
