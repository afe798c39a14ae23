"""PUBSUB_CACHE: a local cache of pubsub nodes, answering XEP-0060 items requests.

How it works (DESIGN.md §7):

- plugins register *analysers* (:meth:`PubsubCache.register_analyser`) telling which
  nodes hold what, whether to synchronise them and how to parse their items;
- on the ``XEP-0060_getItems`` trigger, a node whose cache is COMPLETED is answered
  from the database, in the same ``(items, metadata)`` shape as the network; an unknown
  node is analysed, recorded and, when its analyser says ``to_sync``, synchronised in
  the background while the request goes to the network;
- a synchronisation subscribes first (no event is missed), then fetches the items page
  by page (XEP-0059 RSM; one request when the service has no RSM) and stores them with
  their parsed data; states go IN_PROGRESS -> COMPLETED, ERROR (items removed) or
  NO_SYNC (the node cannot be kept in sync); one synchronisation per (profile,
  service, node) at a time, cancelled and retried past a deadline (the node stays
  claimed between the attempts); a synchronisation stopped by the loss of the
  client's connection (or a crash) is resumed when the profile connects again;
- that holds across processes sharing the database (the backend, an administrator's
  command, other hosts on PostgreSQL): a synchronisation is owned through a lease in
  the database (:mod:`.pubsub_cache.lease`), claimed atomically, renewed while it
  runs (a heartbeat, and with each page written) and released at its end. A process
  that cannot claim a node does not synchronise it (its requests go to the network);
  at start, only nodes whose lease has expired, or whose owner is a process of this
  host that no longer runs, are reset;
- pubsub events keep the cache in step (new items, retractions, purge, deletion);
- answers are the service's (DESIGN §7a): its order, payloads completed for
  notifications without, nothing recorded for a missing node, XEP-0460 hints
  (:mod:`.pubsub_cache.transparency`); a node is answered only while known in step,
  caught up after each (re)connection (:mod:`.pubsub_cache.freshness`).

Configuration: the ``[pubsub_cache]`` section (:mod:`.pubsub_cache.settings`).

This module wires the parts of :mod:`.pubsub_cache` together; :class:`PubsubCache`
keeps the public names (DESIGN §5) and delegates each to its part.
"""

from __future__ import annotations

import logging
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.pubsub_cache.admin import CacheAdmin, check_purge_filters
from sat_storage.plugins.pubsub_cache.analysers import AnalyserRegistry
from sat_storage.plugins.pubsub_cache.analysis import NodeAnalysis
from sat_storage.plugins.pubsub_cache.existence import MissingNodes
from sat_storage.plugins.pubsub_cache.freshness import Freshness
from sat_storage.plugins.pubsub_cache.lease import SyncLease, SyncOwnedElsewhere
from sat_storage.plugins.pubsub_cache.own_writes import OwnWrites
from sat_storage.plugins.pubsub_cache.read_path import CacheReader
from sat_storage.plugins.pubsub_cache.recovery import Recovery
from sat_storage.plugins.pubsub_cache.runner import Interruptions, SyncRunner
from sat_storage.plugins.pubsub_cache.settings import NO_CACHE, CacheSettings
from sat_storage.plugins.pubsub_cache.sync import SyncManager
from sat_storage.plugins.pubsub_cache.transparency import Transparency
from sat_storage.plugins.pubsub_cache.writes import ItemWriter, as_pubsub_item
from sat_storage.plugins.pubsub_writes import WRITING, WRITTEN
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from zope.interface import implementer

from sat_storage.deferreds import KeyedLock
from sat_storage.interfaces import IPubsubCache
from sat_storage.models import PubsubItem, PubsubNode, SyncState

log = logging.getLogger(__name__)

PLUGIN_INFO = {
    "name": "PubSub Cache",
    "import_name": "PUBSUB_CACHE",
    "type": "PUBSUB",
    "modes": ["client", "component"],
    "dependencies": ["XEP-0059", "XEP-0060"],
    "recommendations": [],
    "main": "PubsubCache",
    "handler": "no",
    "description": "Local cache of pubsub nodes: reads answered from the database",
}


@implementer(IPubsubCache)
class PubsubCache:
    """Plugin object (``host.plugins["PUBSUB_CACHE"]``).

    Its parts, each built here with what it needs: :attr:`settings`,
    :attr:`analysers`, :attr:`syncs` (one synchronisation per node),
    :attr:`sync_lease` (claims across processes), :attr:`writer` (items and events),
    :attr:`runner` (a synchronisation), :attr:`recovery` (interrupted ones),
    :attr:`reader` (the ``XEP-0060_getItems`` trigger), :attr:`admin`.
    """

    def __init__(self, host: Any, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.host = host
        self.settings = CacheSettings.from_config(host.memory.config_get)
        settings = self.settings
        storage = host.memory.storage
        self.xep_0060 = host.plugins["XEP-0060"]
        self.sort_keys_declared: list[defer.Deferred[Any]] = []  # declare_sort_key calls
        self.analysers = AnalyserRegistry()
        self.syncs = SyncManager(
            clock,  # type: ignore[arg-type]
            settings.sync_deadline,
            settings.sync_attempts,
            quiet=(SyncOwnedElsewhere,),
        )
        self.locks = KeyedLock()
        self.sync_lease = SyncLease(
            storage,
            clock,  # type: ignore[arg-type]
            self.locks,
            settings.sync_lease,
            settings.sync_lease_renewal,
        )
        self.analysis = NodeAnalysis(self.analysers, self.xep_0060)
        self.writer = ItemWriter(storage, self.analysers, self.syncs, self.locks)
        interruptions = Interruptions()
        self.runner = SyncRunner(
            storage,
            clock,  # type: ignore[arg-type]
            settings,
            self.xep_0060,
            self.syncs,
            self.sync_lease,
            self.locks,
            self.writer,
            self.analysis,
            interruptions,
        )
        self.recovery = Recovery(storage, self.sync_lease, self.syncs, self.runner, interruptions)
        # transparency and freshness (DESIGN §7a)
        self.missing = MissingNodes(clock, settings.missing_node_delay)  # type: ignore[arg-type]
        self.freshness = Freshness(
            storage,
            self.xep_0060,
            self.writer.parse,
            self.locks,
            clock,  # type: ignore[arg-type]
            settings.page_size,
            settings.cache_limit,
            settings.max_staleness,
        )
        self.transparency = Transparency(storage, self.xep_0060, self.locks, settings.cache_limit)
        self.writer.transparency = self.transparency
        self.runner.freshness, self.runner.missing = self.freshness, self.missing
        #: profile -> its revalidation, started at each connection (fires when done)
        self.revalidating: dict[str, defer.Deferred[Any]] = {}
        self.admin = CacheAdmin(storage, self.syncs, self.locks, self.runner)
        if not settings.use_cache:
            log.info("pubsub cache disabled by the configuration (strategy = %s)", NO_CACHE)
        #: fires once synchronisations interrupted by a previous run have been reset
        self.initialised: defer.Deferred[None] = defer.ensureDeferred(
            self.recovery.reset_interrupted()
        )
        self.initialised.addErrback(self._init_failed)
        self.reader = CacheReader(storage, settings, self.runner, self.analysis, self.initialised)
        self.reader.freshness, self.reader.missing = self.freshness, self.missing
        self.reader.transparency = self.transparency
        #: this host's own changes, read back (:mod:`.pubsub_cache.own_writes`)
        self.own_writes = OwnWrites(
            clock,  # type: ignore[arg-type]
            self.writer.retracted,
            self.writer.followed,
        )
        self.reader.own_writes = self.own_writes
        host.trigger.add("XEP-0060_getItems", self.reader.get_items_trigger)
        host.trigger.add(WRITING, self.own_writes.on_writing)
        host.trigger.add(WRITTEN, self.own_writes.on_written)
        self.xep_0060.add_managed_node(
            "",
            items_cb=self.on_items_event,
            delete_cb=self.on_delete_event,
            purge_cb=self.on_purge_event,
        )

    @property
    def clock(self) -> IReactorTime:
        """The cache's time (the reactor by default); set it to move every part to
        another clock (``task.Clock`` in tests)."""
        return self.runner.clock

    @clock.setter
    def clock(self, clock: IReactorTime) -> None:
        self.runner.clock = self.syncs.clock = self.sync_lease.clock = clock
        self.freshness.clock = self.missing.clock = self.own_writes.clock = clock

    # --- start and stop ---

    @staticmethod
    def _init_failed(failure: Any) -> None:
        log.error("pubsub cache: resetting interrupted synchronisations failed: %s", failure)

    async def profile_connected(self, client: Any) -> None:
        """Resume this profile's synchronisations that were interrupted, by the loss of
        its connection or by a previous run that ended (crash).

        Only those still wanted: a node deleted, COMPLETED or NO_SYNC meanwhile is left
        as it is, one another process has taken is left to it (an ERROR node, maybe
        failed for want of a connection, is resumed). Returns once they have started.
        """
        await self.initialised
        self.freshness.session_started(client.profile)
        revalidation = defer.ensureDeferred(self.freshness.revalidate_profile(client))
        revalidation.addErrback(lambda f: log.error("revalidation of %s: %s", client.profile, f))
        self.revalidating[client.profile] = revalidation
        await self.recovery.resume(client)

    def profile_disconnected(self, client: Any) -> defer.Deferred[Any]:
        """Stop the synchronisations of a profile that lost its connection; they are
        resumed at its next connection (:meth:`profile_connected`). Its nodes are
        recorded as in step until now, and no longer answered until revalidated."""
        ended = defer.ensureDeferred(self.freshness.session_ended(client.profile))
        stopping = self.recovery.interrupt_profile(client)
        return defer.gatherResults([ended, stopping], consumeErrors=True)

    async def stop(self) -> None:
        """Stop every synchronisation (host shutdown)."""
        self.host.trigger.remove("XEP-0060_getItems", self.reader.get_items_trigger)
        self.host.trigger.remove(WRITING, self.own_writes.on_writing)
        self.host.trigger.remove(WRITTEN, self.own_writes.on_written)
        self.xep_0060.remove_managed_node(
            "", self.on_items_event, self.on_delete_event, self.on_purge_event
        )
        await self.syncs.close()
        for profile in sorted(self.freshness.sessions):
            await self.freshness.session_ended(profile)
        self.sync_lease.stop()

    # --- analysers ---

    def register_analyser(self, analyser: dict[str, Any]) -> None:
        """Register a node analyser (keys in :mod:`.pubsub_cache.analysers`).

        ``ValueError`` names a missing or invalid key; ``ConflictError`` if an analyser
        with the same (normalised) name exists. Analysers are tried in registration
        order. The caller's dict is not modified.
        """
        checked = self.analysers.register(analyser)
        log.info("pubsub cache: analyser %r registered (type %r)", checked["name"], checked["type"])
        for key in checked.get("sort_keys", ()):  # indexed by the storage (background)
            storage = self.host.memory.storage
            d = storage.declare_sort_key(key["path"], key["direction"], key["type"])
            d.addErrback(lambda f, k=key: log.error("sort key %r not declared: %s", k, f.value))
            self.sort_keys_declared.append(d)

    async def analyse_node(
        self,
        client: Any,
        service: jid.JID,
        node: str,
        pubsub_node: PubsubNode | None = None,
    ) -> dict[str, Any]:
        """What ``node`` holds, from the registered analysers.

        Returns the *analyse*: ``service``, ``node``, and when found ``namespace`` (of
        the node's last item), ``conf`` (the node configuration form), then the keys of
        the matching analyser (``name``, ``type``, ``subtype``, ``to_sync``,
        ``parser``), possibly edited by its ``match_cb``. When ``pubsub_node`` (the
        cached node) is given, nothing is asked to the network. Failed look-ups are
        logged and leave their key out.
        """
        return await self.analysis.analyse_node(client, service, node, pubsub_node)

    # --- items ---

    async def cache_items(
        self, client: Any, pubsub_node: PubsubNode, items: list[domish.Element]
    ) -> None:
        """Parse ``items`` with the node's analyser and store them (upsert).

        Items without id, or that are not ``<item/>`` elements, are logged and left
        out; a parser failure stores the item with no parsed data. During a
        synchronisation of the node, the write is kept and done after the last page.
        """
        await self.writer.cache_items(client, pubsub_node, items)

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
        """Cached items of ``node``, with the arguments of a XEP-0060 items request.

        ``max_items`` alone: the newest items (all when None), oldest first; RSM
        ``after``/``before``/``before=""``/``index`` pages; ``item_ids``;
        ``extra["order_by"]`` (``creation`` or ``modification``). Metadata:
        ``{"rsm": {"first", "last", "index", "count"}, "complete"}``. ``NotFound``
        for an RSM cursor that is not a cached item id.
        """
        return await self.reader.get_items_from_cache(
            client, node, max_items, item_ids, sub_id, rsm_request, extra
        )

    # --- events ---

    async def on_items_event(self, client: Any, event: Any) -> None:
        """New items are stored (parsed too), retracted ones deleted, for every profile
        caching the node (a profile whose own notification is late, or lost while it
        was offline, is kept up to date too)."""
        await self.initialised
        await self.writer.on_items_event(client, event)
        self.own_writes.seen_event("items", event)

    async def on_purge_event(self, client: Any, event: Any) -> None:
        """The node was emptied: its cached items are removed, for every profile."""
        await self.initialised
        await self.writer.on_purge_event(client, event)
        self.own_writes.seen_event("purge", event)

    async def on_delete_event(self, client: Any, event: Any) -> None:
        """The node was deleted: it is dropped from the cache, for every profile."""
        await self.initialised
        await self.writer.on_delete_event(client, event)
        self.own_writes.seen_event("delete", event)

    # --- synchronisation ---

    async def synchronise(
        self, client: Any, service: jid.JID, node: str, resync: bool = True
    ) -> SyncState | None:
        """Synchronise a node now, whatever its analyser says; returns the final state.

        ``resync``: a node already synchronised is fetched again (its items replaced);
        otherwise a COMPLETED node is left as is. A running synchronisation of the node
        is joined (not doubled). The node is subscribed. ``SyncOwnedElsewhere`` (with
        the ``holder``) when another process or cache instance is synchronising it.
        """
        await self.initialised
        return await self.runner.synchronise(client, service, node, resync)

    def cache_node(self, client: Any, pubsub_node: PubsubNode) -> defer.Deferred[Any]:
        """Synchronise ``pubsub_node`` in the background (Libervia's name).

        Returns a Deferred firing with the final state; a running synchronisation of
        the node is joined, never doubled. It fails with ``SyncOwnedElsewhere`` when
        another process (or cache instance) synchronises the node.
        """
        return self.runner.start(client, pubsub_node)

    def sync_progress(self, client: Any, service: jid.JID, node: str) -> dict[str, Any] | None:
        """Progress of the running synchronisation of a node, or None if none runs.

        Keys: ``cached`` (items stored so far), ``total`` (items to cache, None until
        known), ``attempt``, ``started`` (clock time), ``rsm`` (service pages with RSM).
        """
        return self.runner.progress(client, service, node)

    async def sync_holder(self, client: Any, service: jid.JID, node: str) -> dict[str, Any] | None:
        """Who else is synchronising a node (a live lease), or None.

        Keys: ``owner`` (token), ``host``, ``pid``, ``lease_expires`` (epoch seconds),
        ``description`` (for people). None also when this instance synchronises it
        (see :meth:`sync_progress`) or nobody does.
        """
        return await self.runner.holder_of(client, service, node)

    # --- administration ---

    async def purge(self, purge_filters: dict[str, Any]) -> int:
        """Remove cached items matching every filter; returns how many.

        Filters (all optional): ``services`` (JIDs), ``nodes``, ``types``, ``subtypes``,
        ``profiles`` (lists; None = no filter), ``created_before``, ``updated_before``
        (datetimes). A node that loses items is no longer answered from the cache: its
        sync state is cleared, and it is synchronised again when next requested.
        """
        check_purge_filters(purge_filters)
        await self.initialised
        return await self.admin.purge(purge_filters)

    async def reset(self) -> None:
        """Remove every cached node and item; the cache fills again as if new."""
        await self.initialised
        await self.admin.reset()

    def search(self, query: dict[str, Any], all_profiles: bool = False) -> defer.Deferred[Any]:
        """Cached items matching ``query`` (the storage's ``search_pubsub_items``).

        ``query["profiles"]`` scopes the search; ``all_profiles=True`` is the explicit
        admin call. Bad queries raise ``ValueError`` naming the culprit.
        """
        return self.admin.search(query, all_profiles=all_profiles)

    async def serialisable_search(
        self, query: dict[str, Any], all_profiles: bool = False
    ) -> list[dict[str, Any]]:
        """:meth:`search` as JSON-serialisable dicts: the parsed data of each item plus
        ``pubsub_service``, ``pubsub_node``, ``pubsub_item`` (item id), ``node_profile``,
        and ``item_payload`` (the item XML) when ``query["with_payload"]`` is true.
        The caller's query is not modified.
        """
        return await self.admin.serialisable_search(query, all_profiles)


__all__ = ["PLUGIN_INFO", "PubsubCache", "as_pubsub_item"]
