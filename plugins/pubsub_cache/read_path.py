"""The read path: the ``XEP-0060_getItems`` trigger, and answers from the cache.

A node known and COMPLETED is answered from the database, in the shape of the
network's answer; an unknown node is analysed, recorded and, when its analyser says
``to_sync``, synchronised in the background while the request goes to the network.
"""

from __future__ import annotations

import logging
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.pubsub_cache import LOGGER, hints, service_order
from sat_storage.plugins.pubsub_cache.analysis import KEY_USE_CACHE, NodeAnalysis
from sat_storage.plugins.pubsub_cache.freshness import KEY_CACHE
from sat_storage.plugins.pubsub_cache.keys import NodeKey
from sat_storage.plugins.pubsub_cache.lease import SyncOwnedElsewhere
from sat_storage.plugins.pubsub_cache.runner import SYNC_WANTED, SyncRunner
from sat_storage.plugins.pubsub_cache.settings import CacheSettings
from sat_storage.plugins.pubsub_cache.sync import SyncsClosed
from sat_storage.plugins.pubsub_items import ItemsRequest, request_of
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid

from sat_storage.deferreds import SingleFlight
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubItem, PubsubNode, SyncState

log = logging.getLogger(f"{LOGGER}.read_path")

#: nodes whose service's order the read path remembers (then forgotten at once)
MAX_KNOWN_ORDERS = 10_000


class CacheReader:
    """Answers items requests from the cache, or prepares the node for it."""

    def __init__(
        self,
        storage: Any,
        settings: CacheSettings,
        runner: SyncRunner,
        analysis: NodeAnalysis,
        initialised: defer.Deferred[None],
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.runner = runner
        self.analysis = analysis
        #: fires once the cache is ready (interrupted synchronisations reset)
        self.initialised = initialised
        self._preparing = SingleFlight()
        #: set by the plugin: nodes known in step, nodes found missing, the service's
        #: behaviours (:mod:`.freshness`, :mod:`.existence`, :mod:`.transparency`)
        self.freshness: Any = None
        self.missing: Any = None
        self.transparency: Any = None
        self.own_writes: Any = None  # this host's own changes (:mod:`.own_writes`)
        #: the service's order of each node as last read (first reads in it: one hop)
        self._orders: dict[NodeKey, list[str]] = {}

    async def get_items_from_cache(
        self,
        client: Any,
        node: PubsubNode,
        max_items: int | None = None,
        item_ids: list[str] | None = None,
        sub_id: str | None = None,
        rsm_request: RSMRequest | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[list[PubsubItem], dict[str, Any]]:
        """Cached items of ``node`` (see ``PubsubCache.get_items_from_cache``)."""
        request = ItemsRequest(
            None, node.name, max_items, item_ids, sub_id, rsm_request, extra or {}
        )
        if request.network_only:
            raise ValueError(f"extra[{request.network_only!r}] can't be answered from cache")
        if self.transparency is None:
            return await self.storage.get_items(node, request.query)
        args = self.transparency.storage_args(node, max_items, item_ids, rsm_request, extra)
        items, metadata = await self.storage.get_items(node, **args)
        return self.transparency.reorder(node, items, metadata, item_ids, extra), metadata

    async def get_items_trigger(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        max_items: int | None,
        item_ids: list[str] | None,
        sub_id: str | None,
        rsm_request: RSMRequest | None,
        extra: dict[str, Any],
    ) -> tuple[bool, Any]:
        """Answer from the cache when the node is synchronised; else prepare it.

        The request checked by ``XEP_0060.get_items`` comes with ``extra``
        (:func:`~sat_storage.plugins.pubsub_items.request_of`); a caller firing the
        trigger point itself gets its arguments read here.
        """
        request = request_of(extra)
        if request is None:
            request = ItemsRequest(
                service, node, max_items, item_ids, sub_id, rsm_request, extra or {}
            )
        if not self.settings.use_cache or request.extra.get(KEY_USE_CACHE) is False:
            return True, None
        if request.network_only:
            log.debug("%r requests are not cached: network", request.network_only)
            return True, None
        request.check()  # bad input: raise
        if self.transparency is not None and (why := self.transparency.unanswerable(request)):
            log.debug("%s: the service's answer can't be told: network", why)
            return True, None
        if service is None:
            service = client.jid.userhostJID()
        key = NodeKey.of(client.profile, service, node)
        try:
            await self.initialised
            if self.missing is not None and key in self.missing:
                return True, None  # found missing a moment ago: the network says more
            if self.own_writes is not None and key.where in self.own_writes:
                # this host's own change is not in the cache yet. Asked before the
                # read: a hold released while the read runs (the notification
                # written meanwhile) would not say whether the page read has it
                return True, None
            try:
                # one transaction: the node, and its page when it is synchronised
                read = request
                if self.transparency is not None:  # the service's order, as last known
                    read = self.transparency.first_read(request, self._orders.get(key))
                pubsub_node, page = await self._synced_items(client, service, read)
            except NotFound as e:  # e.g. a cursor given by the service before the sync
                log.debug("%s: not answerable from cache (%s): network", key.label, e)
                return True, None
            if page is not None and self._stale(client, key, pubsub_node):
                return True, None
            if page is not None and self.transparency is not None:
                self._remember_order(key, pubsub_node)
                return False, await self._transparent_answer(
                    client, service, pubsub_node, request, read, page
                )
            if page is not None:
                items, page_metadata = page
                # as from a service answering with <set/> (cursors are item ids)
                metadata = request.metadata(
                    service, page_metadata["rsm"], page_metadata["complete"]
                )
                return False, ([item.data for item in items], metadata)
            if pubsub_node is None or self.runner.wants_sync(key, pubsub_node):
                await self._preparing.run(key, self._prepare, client, service, node)
        except Exception:
            log.exception("pubsub cache failed on %s: the request goes to the network", key.label)
        return True, None

    def _remember_order(self, key: NodeKey, node: PubsubNode) -> None:
        """Keep the service's order of ``node`` for its next first read."""
        if len(self._orders) >= MAX_KNOWN_ORDERS and key not in self._orders:
            self._orders.clear()  # a bound: the orders are learnt again, a read each
        self._orders[key] = service_order.default_order(node)

    async def _transparent_answer(
        self,
        client: Any,
        service: jid.JID,
        node: PubsubNode,
        request: ItemsRequest,
        read: ItemsRequest,
        page: Any,
    ) -> tuple[list[Any], dict[str, Any]]:
        """The answer as the service gives it (its order, its RSM support, its order of
        item_ids answers, learnt once from it), with when the node was last in step.

        ``page``: the page read with the node for ``read`` (the service's order as
        last known when none was asked); read again only when the node's service
        answers otherwise."""
        args = (request.max_items, request.item_ids, request.sub_id, request.rsm_request)
        items, page_metadata = page
        if not self.transparency.first_read_fits(node, request, read):
            items, page_metadata = await self.get_items_from_cache(
                client, node, *args, extra=request.extra
            )
        names = [item.name for item in items]
        answer = await self.transparency.item_ids_from_service(
            client, service, node, names, args, request.extra
        )
        if answer is not None:
            return answer
        metadata = request.metadata(service, page_metadata["rsm"], page_metadata["complete"])
        key = NodeKey.of(client.profile, service, node.name)
        metadata[KEY_CACHE] = self.freshness.answer_metadata(key, node)
        return [item.data for item in items], metadata

    def _stale(self, client: Any, key: NodeKey, node: PubsubNode | None) -> bool:
        """True for a COMPLETED node not known in step since its profile's session
        began: its catch-up starts (in the background) and the request goes on to
        the network."""
        if node is None or node.sync_state is not SyncState.COMPLETED or self.freshness is None:
            return False
        if self.freshness.trusted(key, node):
            return False
        log.debug("%s: not revalidated yet: network", key.label)
        self.freshness.revalidate(client, node).addErrback(
            lambda f: log.warning("%s: catch-up failed: %s", key.label, f.value)
        )
        return True

    async def _synced_items(
        self, client: Any, service: jid.JID, request: ItemsRequest
    ) -> tuple[PubsubNode | None, Any]:
        """(the cached node, its page when COMPLETED) in one transaction.

        A query the storage refuses (e.g. too many item ids) costs a node look-up,
        and raises only for a node that the cache would answer.
        """
        try:
            query = request.query
        except (TypeError, ValueError):
            pubsub_node = await self.storage.get_pubsub_node(client, service, request.node)
            if pubsub_node is not None and pubsub_node.sync_state is SyncState.COMPLETED:
                raise
            return pubsub_node, None
        return await self.storage.get_synced_items(client, service, request.node, query)

    async def _prepare(self, client: Any, service: jid.JID, node: str) -> PubsubNode | None:
        """Analyse and record an unknown node; start its synchronisation when wanted."""
        key = NodeKey.of(client.profile, service, node)
        storage = self.storage
        pubsub_node = await storage.get_pubsub_node(client, service, node)
        if pubsub_node is None:
            analyse = await self.analysis.analyse_node(client, service, node)
            if analyse.get("missing") and self.missing is not None:
                log.debug("%s does not exist (yet): nothing recorded", key.label)
                self.missing.add(key)
                return None
            pubsub_node = await storage.get_pubsub_node(
                client,
                service,
                node,
                create=True,
                create_kwargs={
                    "analyser": analyse.get("name"),
                    "type_": analyse.get("type"),
                    "subtype": analyse.get("subtype"),
                },
            )
            node_hints = hints.read(analyse.get("meta"), analyse.get("conf"))
            if node_hints.max_items is not None:
                await storage.update_pubsub_node_extra(
                    pubsub_node, {hints.EXTRA_MAX_ITEMS: node_hints.max_items}
                )
            if analyse.get("to_sync") and not node_hints.cacheable:
                log.info("%s is not cached: %s", key.label, node_hints.why_not())
                analyse["to_sync"] = False
            if not analyse.get("to_sync"):
                log.debug("%s is not to be synchronised", key.label)
                await storage.update_pubsub_node_sync_state(pubsub_node, SyncState.NO_SYNC)
                return pubsub_node
        elif not self.runner.wants_sync(key, pubsub_node):
            return pubsub_node
        self.runner.start(client, pubsub_node, SYNC_WANTED).addErrback(self._owned_elsewhere)
        return pubsub_node

    @staticmethod
    def _owned_elsewhere(failure: Failure) -> None:
        """Errback: another process synchronises the node, or the cache is stopping
        (its requests go on as usual)."""
        failure.trap(SyncOwnedElsewhere, SyncsClosed)
        log.debug("%s", failure.value)


__all__ = ["CacheReader"]
