"""Pubsub nodes, subscriptions and cached items (Libervia 0.9's storage API).

One flat module per concern, each a mixin of :class:`sat_storage.Storage`:
:mod:`~sat_storage.storage.pubsub_nodes` (nodes and subscriptions),
:mod:`~sat_storage.storage.pubsub_leases` (sync state and synchronisation leases),
:mod:`~sat_storage.storage.pubsub_items` (item writes, purge and its count),
:mod:`~sat_storage.storage.pubsub_paging` (pages of items, keyset paging),
:mod:`~sat_storage.storage.pubsub_stats` (figures) and
:mod:`~sat_storage.storage.pubsub_filters` (the SQL filter expressions); a page
request is an :class:`~sat_storage.storage.items_query.ItemsQuery`. This module
keeps the names it always gave, and :class:`PubsubStore`, all of them at once.
"""

from __future__ import annotations

from sat_storage.storage.items_query import (
    MAX_ITEMS_BATCH,
    ORDER_CREATION,
    ORDER_MODIFICATION,
    ItemsQuery,
    order_keys,
)
from sat_storage.storage.pubsub_filters import ItemFilters
from sat_storage.storage.pubsub_items import PubsubItemsStore, build_item_rows
from sat_storage.storage.pubsub_leases import PubsubLeasesStore
from sat_storage.storage.pubsub_nodes import PubsubNodesStore
from sat_storage.storage.pubsub_paging import PubsubPagingStore
from sat_storage.storage.pubsub_stats import PubsubStatsStore

__all__ = [
    "MAX_ITEMS_BATCH",
    "ORDER_CREATION",
    "ORDER_MODIFICATION",
    "ItemFilters",
    "ItemsQuery",
    "PubsubStore",
    "build_item_rows",
    "order_keys",
]


class PubsubStore(
    PubsubPagingStore, PubsubNodesStore, PubsubLeasesStore, PubsubItemsStore, PubsubStatsStore
):
    """Every pubsub table family at once: nodes, leases, item writes, pages, figures."""
