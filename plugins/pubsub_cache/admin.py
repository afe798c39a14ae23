"""Administration of the cache: purge, reset and search."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sat_storage.plugins.pubsub_cache import LOGGER
from sat_storage.plugins.pubsub_cache.keys import key_of, profile_names
from sat_storage.plugins.pubsub_cache.runner import SyncRunner
from sat_storage.plugins.pubsub_cache.sync import SyncManager
from twisted.internet import defer
from twisted.words.protocols.jabber import jid

from sat_storage.deferreds import KeyedLock

log = logging.getLogger(f"{LOGGER}.admin")

PURGE_FILTERS = (
    "services",
    "nodes",
    "types",
    "subtypes",
    "profiles",
    "created_before",
    "updated_before",
)


def check_purge_filters(purge_filters: Any) -> None:
    """``TypeError``/``ValueError`` naming a bad purge filter."""
    if not isinstance(purge_filters, dict):
        raise TypeError(f"purge filters must be a dict, got {purge_filters!r}")
    unknown = [k for k in purge_filters if k not in PURGE_FILTERS]
    if unknown:
        raise ValueError(f"unknown purge filter {unknown[0]!r} (known: {PURGE_FILTERS})")
    for name in ("created_before", "updated_before"):
        value = purge_filters.get(name)
        if value is not None and not isinstance(value, datetime):
            raise TypeError(f"{name} must be a datetime, got {value!r}")


class CacheAdmin:
    """Purges, resets and searches the cache (see the ``PubsubCache`` methods)."""

    def __init__(
        self, storage: Any, syncs: SyncManager, locks: KeyedLock, runner: SyncRunner
    ) -> None:
        self.storage = storage
        self.syncs = syncs
        self.locks = locks
        self.runner = runner

    async def purge(self, purge_filters: dict[str, Any]) -> int:
        """Remove cached items matching every filter (checked); returns how many."""
        storage = self.storage
        nodes = await storage.get_pubsub_nodes(
            profiles=purge_filters.get("profiles"),
            services=purge_filters.get("services"),
            names=purge_filters.get("nodes"),
            types=purge_filters.get("types"),
            subtypes=purge_filters.get("subtypes"),
        )
        names = profile_names(storage)
        total = 0
        for node in nodes:
            key = key_of(node, names)
            stopping = self.syncs.stop(key, dropped=True)
            if stopping is not None:
                await stopping
            deleted = await self.locks.run(
                key,
                storage.purge_pubsub_items,
                [jid.JID(node.service)],
                [node.name],
                None,
                None,
                [key.profile],
                purge_filters.get("created_before"),
                purge_filters.get("updated_before"),
            )
            if deleted or stopping is not None:
                await storage.update_pubsub_node_sync_state(node, None)
            total += deleted
        log.info("pubsub cache purge: %d items removed from %d nodes", total, len(nodes))
        return total

    async def reset(self) -> None:
        """Remove every cached node and item; the cache fills again as if new."""
        await self.syncs.stop_all(dropped=True)
        self.runner.failed.clear()
        await self.storage.delete_pubsub_node(None, None, None)
        log.info("pubsub cache reset")

    def search(self, query: dict[str, Any], all_profiles: bool = False) -> defer.Deferred[Any]:
        """Cached items matching ``query`` (the storage's ``search_pubsub_items``)."""
        return self.storage.search_pubsub_items(query, all_profiles=all_profiles)

    async def serialisable_search(
        self, query: dict[str, Any], all_profiles: bool = False
    ) -> list[dict[str, Any]]:
        """:meth:`search` as JSON-serialisable dicts (see ``PubsubCache``)."""
        if not isinstance(query, dict):
            raise ValueError(f"the search query must be a dict, got {type(query).__name__}")
        query = dict(query)
        with_payload = bool(query.pop("with_payload", False))
        items = await self.search(query, all_profiles=all_profiles)
        names = profile_names(self.storage)
        results = []
        for item in items:
            data = dict(item.parsed or {})
            data.update(
                pubsub_service=str(item.node.service),
                pubsub_node=item.node.name,
                pubsub_item=item.name,
                node_profile=names.get(item.node.profile_id),
            )
            if with_payload:
                data["item_payload"] = item.data.toXml()
            results.append(data)
        return results


__all__ = ["PURGE_FILTERS", "CacheAdmin", "check_purge_filters"]
