"""Writes of cached pubsub items: store, delete, purge, and the count of a purge.

Items are cached with one bulk upsert per call, of SQL compiled once
(:mod:`~sat_storage.storage.item_rows`: the rows and their statements), on the
driver alone (:meth:`.Gateway.write`: no Session; on PostgreSQL two round trips a
call, the write and the sort keys' read, then the commit).
The node's ``item_count``/``items_version`` follow in the same transaction (triggers,
:mod:`sat_storage.item_counts`); every write here locks its nodes first.
The purge and its count share one filter object (:class:`ItemFilters`): the count
is what the purge with the same arguments would delete; the purge's delete is
set-based on SQLite (:mod:`~sat_storage.storage.item_purge`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage import engines
from sat_storage.driver_write import DriverSQL, SessionSQL
from sat_storage.exceptions import NotFound
from sat_storage.item_counts import lock_nodes_txn
from sat_storage.models import PubsubItem, PubsubNode, utcnow
from sat_storage.storage import item_purge
from sat_storage.storage.base import StorageBase, as_deferred, check_type
from sat_storage.storage.checks import (
    batched,
    check_node,
    check_strings,
    check_text,
    unstorable,
)
from sat_storage.storage.item_purge_pg import purge_postgresql
from sat_storage.storage.item_rows import build_item_rows, write_items
from sat_storage.storage.items_query import MAX_ITEMS_BATCH
from sat_storage.storage.page_cache import dropping_pages
from sat_storage.storage.pubsub_filters import ItemFilters
from sat_storage.storage.sort_keys import SortValueWriter

__all__ = ["PubsubItemsStore", "build_item_rows"]

_CREATED = PubsubItem.__table__.c.created
_LOCK_NODE = (
    select(PubsubNode.id)
    .where(PubsubNode.id == bindparam("node_id", type_=Integer()))
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as lock_nodes_txn
)
_lock_node_texts: dict[str, str] = {}


def _lock_node_sql(dialect: Dialect) -> str:
    """PostgreSQL: :func:`~sat_storage.item_counts.lock_nodes_txn` of one node
    (``:node_id``), as driver SQL compiled once."""
    text = _lock_node_texts.get(dialect.name)
    if text is None:
        text = _lock_node_texts[dialect.name] = _LOCK_NODE.compile(dialect=dialect).string
    return text


class PubsubItemsStore(StorageBase):
    """Writes of cached items (store, delete, purge) and the count of a purge."""

    @functools.cached_property
    def sort_value_writer(self) -> SortValueWriter:
        """What keeps the declared sort keys' values in step (its key cache is this storage's)."""
        return SortValueWriter(self.dialect)

    def cache_pubsub_items_txn(
        self,
        session: Session,
        node_id: int,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None],
    ) -> None:
        """:meth:`write_pubsub_items` in ``session``'s transaction."""
        self.write_pubsub_items(SessionSQL(session), node_id, items, parsed_items)

    def write_pubsub_items(
        self,
        sql: DriverSQL,
        node_id: int,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None],
    ) -> None:
        """Write checked ``items`` into node ``node_id`` (:func:`.item_rows.write_items`)
        and their sort values, in the transaction of ``sql``: the node locked first
        (PostgreSQL), then the rows, the declared sort keys read (the one result
        waited for before the commit, on PostgreSQL) and their values.

        ``NotFound`` when the node does not exist (deleted meanwhile); the transaction
        is then to be rolled back (no savepoint is taken, so PostgreSQL aborts it).
        """
        dialect = sql.dialect
        if dialect.name == "postgresql":
            sql.execute(_lock_node_sql(dialect), {"node_id": node_id})
        now = engines.db_value(dialect, _CREATED, utcnow())
        values = self.sort_value_writer
        try:
            names = write_items(sql, node_id, items, parsed_items, now)
            keys = values.key_rows(sql)  # PostgreSQL: the errors of the write come here
        except IntegrityError as e:
            # the conflict on (node_id, name) is handled: only node_id's foreign key is left
            if not engines.is_foreign_key_violation(e):
                raise
            raise NotFound(f"pubsub node #{node_id} does not exist (any more)") from None
        values.write_values(sql, keys, node_id, names)

    @as_deferred
    def cache_pubsub_items(
        self,
        client: Any,
        node: PubsubNode,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None] | None = None,
    ) -> defer.Deferred[None]:
        """Store (or update) ``items`` of ``node``, with their parsed data.

        ``items`` are ``<item/>`` elements with a non-empty ``id`` (at most
        ``MAX_ITEMS_BATCH``); ``parsed_items`` is None or a list aligned with them,
        of JSON-serialisable dicts or None. A new item is created (its creation
        order is the order it was first cached); a known one gets the new XML,
        parsed data and modification time when its XML or parsed data changed, and is
        left untouched otherwise. An item without payload (no child element) never
        replaces a known item. When an id comes twice in one call, the last one
        wins. One bulk statement per call (two when some items have no payload).
        """
        checked = self.checked_items(client, node, items, parsed_items)
        if not items:
            return defer.succeed(None)
        d = self.db.write(self.write_pubsub_items, node.id, items, checked)
        return d.addBoth(dropping_pages(self, [node.id]))

    def checked_items(
        self,
        client: Any,
        node: PubsubNode,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None] | None,
    ) -> Sequence[dict[str, Any] | None]:
        """Check the arguments of :meth:`cache_pubsub_items`; the parsed data (aligned)."""
        profile_id = self.client_profile_id(client)
        node = check_node(node)
        if node.profile_id != profile_id:
            raise ValueError(
                f"node {node.name!r} belongs to another profile than {client.profile!r}"
            )
        check_type("items", items, list, tuple)
        if len(items) > MAX_ITEMS_BATCH:
            raise ValueError(f"too many items: {len(items)} (at most {MAX_ITEMS_BATCH} per call)")
        for index, item in enumerate(items):
            if not isinstance(item, domish.Element) or item.name != "item":
                raise ValueError(f"items[{index}] is not an <item/> element: {item!r}")
            item_id = item.attributes.get("id")
            if not isinstance(item_id, str) or not item_id:
                raise ValueError(f"items[{index}] has no id")
            if unstorable(item_id) is not None:  # the check of check_text, named only then
                check_text(f"items[{index}] id", item_id)
        if parsed_items is None:
            return [None] * len(items)
        check_type("parsed_items", parsed_items, list, tuple)
        if len(parsed_items) != len(items):
            raise ValueError(f"parsed_items has {len(parsed_items)} entries for {len(items)} items")
        for index, parsed in enumerate(parsed_items):
            if parsed is not None and not isinstance(parsed, dict):
                raise ValueError(
                    f"parsed_items[{index}] must be a dict or None, got {type(parsed).__name__}"
                )
        return parsed_items

    @staticmethod
    def delete_pubsub_items_txn(
        session: Session, node_id: int, items_names: list[str] | None
    ) -> int:
        lock_nodes_txn(session, PubsubNode.id == node_id)
        node_filter = PubsubItem.node_id == node_id
        if items_names is None:
            return session.execute(delete(PubsubItem).where(node_filter)).rowcount
        deleted = 0
        for chunk in batched(items_names):
            stmt = delete(PubsubItem).where(node_filter, PubsubItem.name.in_(chunk))
            deleted += session.execute(stmt).rowcount
        return deleted

    @as_deferred
    def delete_pubsub_items(
        self, node: PubsubNode, items_names: list[str] | None = None
    ) -> defer.Deferred[int]:
        """Delete the items of ``node`` named in ``items_names`` (None: every item).

        Returns how many were deleted; unknown names are ignored.
        """
        node = check_node(node)
        names = None
        if items_names is not None:
            names = list(dict.fromkeys(check_strings("items_names", items_names)))
            if not names:
                return defer.succeed(0)
        d = self.db.run(self.delete_pubsub_items_txn, node.id, names)
        return d.addBoth(dropping_pages(self, [node.id]))

    def catch_up_pubsub_items_txn(
        self,
        session: Session,
        node_id: int,
        changed: tuple[Sequence[domish.Element], Sequence[dict[str, Any] | None]],
        removed: list[str],
        appended: tuple[Sequence[domish.Element], Sequence[dict[str, Any] | None]],
    ) -> None:
        if changed[0]:
            self.cache_pubsub_items_txn(session, node_id, *changed)
        if removed:
            self.delete_pubsub_items_txn(session, node_id, removed)
        if appended[0]:
            self.cache_pubsub_items_txn(session, node_id, *appended)

    @as_deferred
    def catch_up_pubsub_items(
        self,
        client: Any,
        node: PubsubNode,
        changed: Sequence[domish.Element],
        changed_parsed: Sequence[dict[str, Any] | None] | None,
        removed: list[str],
        appended: Sequence[domish.Element],
        appended_parsed: Sequence[dict[str, Any] | None] | None,
    ) -> defer.Deferred[None]:
        """Bring the items of ``node`` in step with its service, in one transaction:
        ``changed`` items are rewritten in place, ``removed`` ones deleted, then the
        ``appended`` ones written after every other item, in their order (an
        appended id also in ``removed`` is written anew, at the end)."""
        changed_parsed = self.checked_items(client, node, changed, changed_parsed)
        appended_parsed = self.checked_items(client, node, appended, appended_parsed)
        names = list(dict.fromkeys(check_strings("removed", removed)))
        return self.db.run(
            self.catch_up_pubsub_items_txn,
            node.id,
            (changed, changed_parsed),
            names,
            (appended, appended_parsed),
        ).addBoth(dropping_pages(self, [node.id]))

    @staticmethod
    def purge_pubsub_items_txn(session: Session, filters: ItemFilters) -> int:
        """:meth:`purge_pubsub_items` (checked ``filters``) in ``session``'s transaction."""
        if session.get_bind().dialect.name == "sqlite":
            return item_purge.purge_sqlite_txn(session, filters)
        return purge_postgresql(SessionSQL(session), filters)

    @as_deferred
    def purge_pubsub_items(
        self,
        services: list[jid.JID] | None = None,
        names: list[str] | None = None,
        types: list[str | None] | None = None,
        subtypes: list[str | None] | None = None,
        profiles: list[str] | None = None,
        created_before: datetime | None = None,
        updated_before: datetime | None = None,
    ) -> defer.Deferred[int]:
        """Delete cached items matching every filter (nodes are kept); their number.

        List filters select nodes (None: no filter; a None in ``types`` or
        ``subtypes`` matches nodes without one). ``created_before`` and
        ``updated_before`` select items strictly older than a point in time: an aware
        datetime in any zone (a naive one is taken as UTC).
        """
        filters = ItemFilters.check(
            self.get_profile_id,
            services,
            names,
            types,
            subtypes,
            profiles,
            created_before,
            updated_before,
        )
        if filters.matches_nothing:
            return defer.succeed(0)
        if self.dialect == "sqlite":  # on the driver alone (item_purge)
            d = self.db.write(item_purge.purge_sqlite, filters)
        else:  # PostgreSQL, on the driver alone too (item_purge_pg)
            d = self.db.write(purge_postgresql, filters)
        return d.addBoth(dropping_pages(self))

    @staticmethod
    def count_pubsub_items_txn(session: Session, filters: ItemFilters) -> int:
        count = 0
        for clauses in filters.clauses():
            count += session.execute(select(func.count(PubsubItem.id)).where(*clauses)).scalar_one()
        return count

    @as_deferred
    def count_pubsub_items(
        self,
        services: list[jid.JID] | None = None,
        names: list[str] | None = None,
        types: list[str | None] | None = None,
        subtypes: list[str | None] | None = None,
        profiles: list[str] | None = None,
        created_before: datetime | None = None,
        updated_before: datetime | None = None,
    ) -> defer.Deferred[int]:
        """How many cached items match every filter (read only).

        The filters are those of :meth:`purge_pubsub_items`: the count is what a
        purge with the same arguments would delete.
        """
        filters = ItemFilters.check(
            self.get_profile_id,
            services,
            names,
            types,
            subtypes,
            profiles,
            created_before,
            updated_before,
        )
        if filters.matches_nothing:
            return defer.succeed(0)
        return self.db.run(self.count_pubsub_items_txn, filters)
