"""Items parsed and written to the cache, and the pubsub events that change it.

Every change of a node's cache runs under the node's lock; while a synchronisation
pages the node, the changes told by events are kept and replayed after its last page
(:meth:`ItemWriter.change`), so that pages keep the service's order and events win
over older pages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sat_storage.plugins.plugin_xep_0060 import NS_PUBSUB
from sat_storage.plugins.pubsub_cache import LOGGER
from sat_storage.plugins.pubsub_cache.analysers import AnalyserRegistry, parser_of
from sat_storage.plugins.pubsub_cache.keys import NodeKey, ProfileClient, key_of, profile_names
from sat_storage.plugins.pubsub_cache.sync import SyncManager
from twisted.internet import defer
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage.deferreds import KeyedLock
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubNode, SyncState

log = logging.getLogger(f"{LOGGER}.writes")

#: states in which a node's cache follows the events
CACHING_STATES = (SyncState.COMPLETED, SyncState.IN_PROGRESS)


def as_pubsub_item(element: domish.Element) -> domish.Element:
    """``element`` as a ``<item/>`` of the pubsub namespace (event items are copied)."""
    if element.uri == NS_PUBSUB:
        return element
    item = domish.Element((NS_PUBSUB, "item"), defaultUri=NS_PUBSUB)
    item.attributes = dict(element.attributes)
    item.children = list(element.children)
    return item


def valid_items(items: Any, where: str) -> list[domish.Element]:
    """The ``<item/>`` elements with an id (others logged and left out)."""
    if not isinstance(items, list | tuple):
        raise TypeError(f"items must be a list of <item/> elements, got {items!r}")
    valid = []
    for item in items:
        if not isinstance(item, domish.Element) or item.name != "item":
            log.warning("%s: ignoring %r (not an <item/> element)", where, item)
        elif not item.getAttribute("id"):
            log.warning("%s: ignoring an item without id: %s", where, item.toXml()[:300])
        else:
            valid.append(as_pubsub_item(item))
    return valid


class ItemWriter:
    """Parses and writes items; applies the items, purge and delete events."""

    def __init__(
        self,
        storage: Any,
        analysers: AnalyserRegistry,
        syncs: SyncManager,
        locks: KeyedLock,
    ) -> None:
        self.storage = storage
        self.analysers = analysers
        self.syncs = syncs
        self.locks = locks
        #: set by the plugin: the service's behaviours (:mod:`.transparency`)
        self.transparency: Any = None

    async def parse(
        self, client: Any, node: PubsubNode, items: list[domish.Element]
    ) -> list[dict[str, Any] | None]:
        """Parsed data of ``items`` (None for each item the parser fails on, logged)."""
        parser = parser_of(self.analysers, node.analyser)
        if parser is None:
            return [None] * len(items)
        service = jid.JID(node.service)
        parsed: list[dict[str, Any] | None] = []
        for item in items:
            try:
                data = parser(client, item, service, node.name)
                if isinstance(data, defer.Deferred) or hasattr(data, "__await__"):
                    data = await data
                if not isinstance(data, dict):
                    raise TypeError(f"the parser returned {type(data).__name__}, not a dict")
                json.dumps(data, allow_nan=False)
            except Exception as e:
                log.warning(
                    "parser of analyser %r failed on item %r of node %r (item kept raw): %s",
                    node.analyser,
                    item.getAttribute("id"),
                    node.name,
                    e,
                    exc_info=not isinstance(e, TypeError | ValueError),
                )
                data = None
            parsed.append(data)
        return parsed

    async def cache_items(
        self, client: Any, pubsub_node: PubsubNode, items: list[domish.Element]
    ) -> None:
        """Parse ``items`` with the node's analyser and store them (upsert)."""
        key = NodeKey.of(client.profile, pubsub_node.service, pubsub_node.name)
        items = valid_items(items, key.label)
        if not items:
            return
        parsed = await self.parse(client, pubsub_node, items)
        await self.change(key, self.storage.cache_pubsub_items, client, pubsub_node, items, parsed)

    def change(self, key: NodeKey, write: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """Apply an event's change to a node's cache, in order with everything else.

        Under the node's lock: while a synchronisation pages the node, the change is
        kept and replayed after the last page (see ``SyncRunner.complete``); otherwise
        it is written now.
        """

        def apply() -> Any:
            task = self.syncs.task(key)
            if task is not None and not task.finished:
                task.pending.append(lambda: write(*args))
                return None
            return write(*args)

        return self.locks.run(key, apply)

    async def nodes_everywhere(
        self, service: jid.JID, name: str
    ) -> list[tuple[NodeKey, PubsubNode]]:
        """Every profile's cached copy of a node that follows events."""
        nodes = await self.storage.get_pubsub_nodes(services=[service], names=[name])
        names = profile_names(self.storage)
        return [(key_of(n, names), n) for n in nodes if n.sync_state in CACHING_STATES]

    async def on_items_event(self, client: Any, event: Any) -> None:
        """New items stored (parsed too), retracted ones deleted, for every profile."""
        service, name = event.sender, event.nodeIdentifier
        nodes = await self.nodes_everywhere(service, name)
        if not nodes:
            log.debug("items event for node %r at %s: not cached", name, service.full())
            return
        label = f"items event of node {name!r} at {service.full()}"
        items = valid_items([e for e in event.items if e.name == "item"], label)
        retracted = [e.getAttribute("id") for e in event.items if e.name == "retract"]
        retracted = [item_id for item_id in retracted if item_id]
        storage = self.storage
        if self.transparency is not None:  # payload-less items: "changed", asked
            completed = await self.transparency.complete_items(client, service, name, items, nodes)
            if completed is None:
                return
            items, gone = completed
            retracted += gone
        parsed: dict[str | None, list[dict[str, Any] | None]] = {}
        for key, pubsub_node in nodes:
            if items and self.transparency is not None:
                await self.transparency.learn_order(client, key, pubsub_node, items)
            if items:
                if pubsub_node.analyser not in parsed:
                    parsed[pubsub_node.analyser] = await self.parse(client, pubsub_node, items)
                owner = client if key.profile == client.profile else ProfileClient(key.profile)
                write: Callable[..., Any] = storage.cache_pubsub_items
                args: tuple[Any, ...] = (owner, pubsub_node, items, parsed[pubsub_node.analyser])
                moved = []
                if self.transparency is not None:  # moved by the service though unchanged
                    moved = await self.transparency.moved_items(pubsub_node, items)
                if moved:
                    write = storage.catch_up_pubsub_items
                    args = (owner, pubsub_node, [], [], moved, items, args[3])
                try:
                    await self.change(key, write, *args)
                    if self.transparency is not None:
                        await self.transparency.evict(key, pubsub_node, self.change)
                except NotFound:  # deleted meanwhile (e.g. another profile's event)
                    log.debug("%s: the node is gone", key.label)
            if retracted:
                await self.change(key, storage.delete_pubsub_items, pubsub_node, retracted)

    async def followed(self, service: jid.JID, name: str) -> bool:
        """Whether some profile's cache of the node follows its events."""
        return bool(await self.nodes_everywhere(service, name))

    async def retracted(self, service: jid.JID, name: str, ids: list[str]) -> None:
        """Items retracted by this host without notification: removed everywhere."""
        for key, pubsub_node in await self.nodes_everywhere(service, name):
            await self.change(key, self.storage.delete_pubsub_items, pubsub_node, ids)

    async def on_purge_event(self, client: Any, event: Any) -> None:
        """The node was emptied: its cached items are removed, for every profile."""
        for key, pubsub_node in await self.nodes_everywhere(event.sender, event.nodeIdentifier):
            log.info("%s purged by its service", key.label)
            task = self.syncs.task(key)
            if task is not None:
                task.purged = True  # pages fetched before are stale: stop paging
            await self.change(key, self.storage.delete_pubsub_items, pubsub_node)

    async def on_delete_event(self, client: Any, event: Any) -> None:
        """The node was deleted: it is dropped from the cache, for every profile."""
        service, name = event.sender, event.nodeIdentifier
        for key in [k for k in self.syncs.keys() if NodeKey(*k).where == (service.full(), name)]:
            stopping = self.syncs.stop(key, dropped=True)
            if stopping is not None:
                await stopping
        deleted = await self.storage.delete_pubsub_node(None, [service], [name])
        if deleted:
            log.info("node %r at %s deleted by its service: dropped", name, service.full())


__all__ = ["CACHING_STATES", "ItemWriter", "as_pubsub_item", "valid_items"]
