"""The read cache: a cached read in one thread hop, never older than the database.

A cached read (:meth:`SyncedReadsStore.get_synced_items`, the pubsub cache's hit) is
one read of the driver alone (:meth:`~sat_storage.gateway.Gateway.read`, no Session)
in one database thread hop, whatever the query. In the reactor thread, the page
asked for is looked up in the storage's :class:`~.page_cache.PageCache`. The read
then reads the node's row (the look-up the read needs anyway, a Core row) and with it
the node's *stamp*: its id, its items version (bumped by every write of its items in
the writer's transaction, whichever process writes) and ``sync_state_updated`` (a
node deleted and created again has a new one). When the stamp equals the cached
page's, the page is answered from memory; otherwise the page is read in the same
read (one snapshot on SQLite; on PostgreSQL after the node's row) and cached under
the stamp read *before* it: an entry is never younger than its stamp, so an answer
is never older than the database.

Every write of this process also forgets at once the pages it may change
(:func:`~.page_cache.dropping_pages`): that frees memory; the stamp is what keeps
answers right, also after another process's writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.words.protocols.jabber import jid

from sat_storage.driver_sql import DriverStatement, Reader
from sat_storage.exceptions import ArgumentTypeError
from sat_storage.item_counts import VERSION_COLUMN
from sat_storage.models import PubsubNode, SyncState
from sat_storage.storage.base import as_deferred
from sat_storage.storage.item_reads import NODE_COLUMNS, node_from_row
from sat_storage.storage.items_query import ItemsQuery
from sat_storage.storage.page_cache import HIT, Entry, Stamp, current_entry, entry_of_page
from sat_storage.storage.pubsub_paging import Page, PubsubPagingStore

__all__ = ["SyncedReadsStore"]

Key = tuple[int, str, str, ItemsQuery]  # (profile id, service, node name, query)


def _select_node_row() -> Select[Any]:
    """The row of one node (``profile_id``, ``service``, ``name`` bound), its columns
    those :func:`~.item_reads.node_from_row` takes."""
    table = PubsubNode.__table__
    return select(*NODE_COLUMNS).where(
        table.c.profile_id == bindparam("profile_id"),
        table.c.service == bindparam("service"),
        table.c.name == bindparam("name"),
    )


_NODE_ROW = _select_node_row()
_NODE_KEYS = [column.key for column in NODE_COLUMNS]  # "node_id", "node_name"...
_VERSION_INDEX = _NODE_KEYS.index(f"node_{VERSION_COLUMN}")
_ID_INDEX = _NODE_KEYS.index("node_id")
_UPDATED_INDEX = _NODE_KEYS.index("node_sync_state_updated")


def _stamp(row: Sequence[Any]) -> Stamp:
    """The stamp of a node row: what changes with any change of its items."""
    return (row[_ID_INDEX], row[_VERSION_INDEX], row[_UPDATED_INDEX])


#: options of the read's connection per dialect. PostgreSQL: autocommit, which saves
#: the BEGIN and COMMIT round trips; each statement of a READ COMMITTED transaction
#: sees its own snapshot anyway, and the node's row (its stamp) is read before the
#: page, so a page is never older than the stamp it is cached under. SQLite keeps its
#: transaction (one local BEGIN IMMEDIATE: a consistent snapshot, no round trip).
_READ_OPTIONS: dict[str, dict[str, Any]] = {"postgresql": {"isolation_level": "AUTOCOMMIT"}}
_DRIVER_NODE_ROW = DriverStatement(_NODE_ROW)
#: (the node's row values, the node, its page or HIT or None, its stamp)
Synced = tuple[Sequence[Any] | None, PubsubNode | None, Page | str | None, Stamp | None]


def _driver_node_row(
    reader: Reader, profile_id: int, service: str, name: str
) -> Sequence[Any] | None:
    """The row of the node (None: no such node), read by the driver alone."""
    params = {"profile_id": profile_id, "service": service, "name": name}
    rows = reader.rows(_DRIVER_NODE_ROW, params)
    return rows[0] if rows else None


def _synced(
    row: Sequence[Any] | None, cached: Stamp | None, read_page: Callable[[PubsubNode], Page]
) -> Synced:
    """The answer of a synchronised read of the node's ``row`` (None: no node): its
    page read by ``read_page(node)`` unless the node's stamp is ``cached`` (HIT)."""
    if row is None:
        return None, None, None, None
    node = node_from_row(row)
    if node.sync_state is not SyncState.COMPLETED:
        return row, node, None, None
    stamp = _stamp(row)
    if stamp == cached:
        return row, node, HIT, stamp
    return row, node, read_page(node), stamp


class SyncedReadsStore(PubsubPagingStore):
    """The one-hop cached read of a synchronised node, and its in-memory pages."""

    def get_synced_items_txn(
        self,
        session: Session,
        profile_id: int,
        service: str,
        name: str,
        query: ItemsQuery,
        cached: Stamp | None = None,
    ) -> Synced:
        """(the node's row, node, page, the node's stamp); the page is
        :data:`~.page_cache.HIT` when the stamp is ``cached`` (the cached page is the
        database's), None when the node is not synchronised."""
        params = {"profile_id": profile_id, "service": service, "name": name}
        options = _READ_OPTIONS.get(self.dialect, {})
        connection = session.connection(execution_options=options)
        row = connection.execute(_NODE_ROW, params).one_or_none()
        return _synced(row, cached, lambda node: self.get_items_txn(session, node.id, query, node))

    @classmethod
    def read_synced_items(
        cls,
        reader: Reader,
        profile_id: int,
        service: str,
        name: str,
        query: ItemsQuery,
        cached: Stamp | None = None,
    ) -> Synced:
        """:meth:`get_synced_items_txn` by the driver alone."""
        row = _driver_node_row(reader, profile_id, service, name)
        return _synced(row, cached, lambda node: cls.read_items(reader, node.id, query, node))

    @as_deferred
    def get_synced_items(
        self, client: Any, service: jid.JID, name: str, query: ItemsQuery
    ) -> defer.Deferred[tuple[PubsubNode | None, Page | None]]:
        """A cache read in ONE driver read at most: the node, and its page if it is
        synchronised.

        Looks up the cached node ``name`` of ``service`` for ``client``'s profile
        (as :meth:`get_pubsub_node`) and, only when its ``sync_state`` is
        ``COMPLETED``, gives the page ``query`` asks for (as :meth:`get_items`): from
        the read cache when the node's items did not change since it was cached (no
        transaction committed since, or the node's stamp, read in this read, says
        so), else read in the same read. Returns ``(node, page)``:
        ``(None, None)`` for an unknown node, ``(node, None)`` for a node not
        synchronised, else ``(node, (items, metadata))`` as ``get_items`` gives them,
        the items being :class:`~.page_cache.CachedItem` or
        :class:`~.item_reads.ItemRow` objects of the caller's own. ``query`` is an
        already checked :class:`~sat_storage.ItemsQuery`; an unknown RSM cursor
        raises ``NotFound``.
        """
        profile_id, service_text = self.node_identity(client, service, name)
        if not isinstance(query, ItemsQuery):
            raise ArgumentTypeError(
                f"query must be an ItemsQuery, got {type(query).__name__}: {query!r}"
            )
        key = (profile_id, service_text, name, query)
        entry, token = None, None
        if self.read_cache.max_items:
            entry, token = current_entry(self.read_cache, key, self.db.changes)
            if entry is not None and entry.current(token):  # no commit since: no query
                node = entry.node()
                return defer.succeed((node, entry.answer(node)))
        cached = None if entry is None else entry.stamp
        return self.db.read(
            self.read_synced_items,
            *(profile_id, service_text, name, query, cached),
            then=self._synced_answer,
            then_args=(key, entry, token),
        )

    def _synced_answer(
        self, result: Synced, key: Key, entry: Entry | None, token: bytes | None
    ) -> tuple[PubsubNode | None, Page | None]:
        row, node, page, stamp = result
        if page is HIT:
            assert entry is not None and row is not None
            entry.node_values, entry.token = tuple(row), token  # current when read
            return node, entry.answer(node)
        if page is None or stamp is None or not self.read_cache.max_items:
            return node, page  # type: ignore[return-value]
        assert node is not None and row is not None and not isinstance(page, str)
        self.read_cache.put(key, entry_of_page(node.id, stamp, page, token, tuple(row)))
        return node, page
