"""One synchronisation of a node: claim it, subscribe, page through its items, write
them, replay the events told meanwhile, and record the final state.

Attempts are run by :class:`~.sync.SyncManager` (one per node, deadline, retries);
the node is owned through :class:`~.lease.SyncLease` while an attempt runs.
"""

from __future__ import annotations

import logging
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.pubsub_cache import LOGGER, hints
from sat_storage.plugins.pubsub_cache.analysis import BYPASS_CACHE, NodeAnalysis
from sat_storage.plugins.pubsub_cache.existence import MissingNodes, NodeMissing, is_missing
from sat_storage.plugins.pubsub_cache.freshness import EXTRA_RSM, Freshness
from sat_storage.plugins.pubsub_cache.keys import NodeKey
from sat_storage.plugins.pubsub_cache.lease import SyncLease, SyncLeaseLost
from sat_storage.plugins.pubsub_cache.settings import CacheSettings
from sat_storage.plugins.pubsub_cache.sync import (
    Pager,
    RepeatedItemsError,
    SyncExpired,
    SyncManager,
    SyncTask,
)
from sat_storage.plugins.pubsub_cache.writes import ItemWriter
from twisted.internet import defer
from twisted.internet import error as internet_error
from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage.deferreds import KeyedLock, as_deferred
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubNode, SyncState

log = logging.getLogger(f"{LOGGER}.runner")

#: the client's connection ended: a synchronisation stops, to be done again later
CONNECTION_ENDED = (internet_error.ConnectionLost, internet_error.ConnectionDone)
#: failures of a synchronisation logged without traceback (the service's or network's)
EXPECTED_SYNC_ERRORS = (jabber_error.StanzaError, NotFound, SyncExpired, defer.TimeoutError)
#: sync states of a node that a request synchronises, or that is resumed after an
#: interruption (another process may have completed it since it was read: then it is
#: not synchronised again)
SYNC_WANTED = [None, SyncState.ERROR, SyncState.IN_PROGRESS]
#: the same for ``synchronise(resync=False)``: anything not COMPLETED
NOT_COMPLETED = [*SYNC_WANTED, SyncState.NO_SYNC]


class Interruptions:
    """Per profile, the (service, node) of the synchronisations to resume."""

    def __init__(self) -> None:
        self._by_profile: dict[str, set[tuple[str, str]]] = {}

    def add(self, key: NodeKey) -> None:
        """Remember an interrupted synchronisation, to resume at its profile's connection."""
        self._by_profile.setdefault(key.profile, set()).add(key.where)

    def pop(self, profile: str) -> list[tuple[str, str]]:
        """The interrupted synchronisations of ``profile`` (forgotten here), sorted."""
        return sorted(self._by_profile.pop(profile, ()))


class SyncRunner:
    """Runs the synchronisations of one cache instance."""

    def __init__(
        self,
        storage: Any,
        clock: IReactorTime,
        settings: CacheSettings,
        xep_0060: Any,
        syncs: SyncManager,
        lease: SyncLease,
        locks: KeyedLock,
        writer: ItemWriter,
        analysis: NodeAnalysis,
        interruptions: Interruptions,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.settings = settings
        self.xep_0060 = xep_0060
        self.syncs = syncs
        self.lease = lease
        self.locks = locks
        self.writer = writer
        self.analysis = analysis
        self.interruptions = interruptions
        #: clock time of the last failed synchronisation of a node
        self.failed: dict[NodeKey, float] = {}
        #: set by the plugin: nodes known in step (:mod:`.freshness`), nodes found
        #: missing (:mod:`.existence`)
        self.freshness: Freshness | None = None
        self.missing: MissingNodes | None = None

    def start(
        self, client: Any, node: PubsubNode, states: list[SyncState | None] | None = None
    ) -> defer.Deferred[SyncState | None]:
        """Start (or join) the synchronisation of ``node``; fires with its final state.

        ``states``: synchronise only if the node is (still) in one of them.
        """
        key = NodeKey.of(client.profile, node.service, node.name)
        return self.syncs.start(key, lambda task: self.attempt(client, node, task, states))

    def wants_sync(self, key: NodeKey, node: PubsubNode) -> bool:
        """True when a synchronisation of this known node should start now."""
        state = node.sync_state
        if state is None:
            return True
        if self.syncs.running(key) or state in (SyncState.COMPLETED, SyncState.NO_SYNC):
            return False
        if state is SyncState.IN_PROGRESS:  # not here: interrupted, unless held elsewhere
            return self.lease.holder(node) is None
        failed = self.failed.get(key)
        return failed is None or self.clock.seconds() - failed >= self.settings.error_retry_delay

    async def synchronise(
        self, client: Any, service: jid.JID, node: str, resync: bool = True
    ) -> SyncState | None:
        """Synchronise a node now (see ``PubsubCache.synchronise``)."""
        key = NodeKey.of(client.profile, service, node)
        running = self.syncs.join(key)
        if running is not None:
            return await running
        pubsub_node = await self.storage.get_pubsub_node(client, service, node)
        if pubsub_node is not None:
            if not resync and pubsub_node.sync_state is SyncState.COMPLETED:
                return SyncState.COMPLETED
            holder = self.lease.holder(pubsub_node)
            if holder is not None:
                raise self.lease.owned_error(pubsub_node, holder)
        analyse = await self.analysis.analyse_node(client, service, node)
        pubsub_node = await self.storage.set_pubsub_node(
            client,
            service,
            node,
            analyser=analyse.get("name"),
            type_=analyse.get("type"),
            subtype=analyse.get("subtype"),
            subscribed=pubsub_node.subscribed if pubsub_node is not None else False,
        )
        log.info("%s: (re)synchronisation requested", key.label)
        return await self.start(client, pubsub_node, None if resync else NOT_COMPLETED)

    async def attempt(
        self,
        client: Any,
        node: PubsubNode,
        task: SyncTask,
        states: list[SyncState | None] | None = None,
    ) -> SyncState | None:
        """One attempt at synchronising ``node``; returns the final state (None: dropped).

        ``SyncOwnedElsewhere`` when another process holds the node's synchronisation;
        the node's state when it is no longer in ``states`` (done elsewhere meanwhile);
        IN_PROGRESS when it expired and another attempt follows (the node kept).
        """
        key = NodeKey.of(client.profile, node.service, node.name)
        log.info("%s: synchronisation starts (attempt %d)", key.label, task.attempt)
        try:
            done = await self.lease.claim(key, node, states)
        except NotFound:
            return None
        if done is not None:
            log.info("%s: %s meanwhile, nothing to do", key.label, done.sync_state)
            return done.sync_state
        async with self.lease.renewing(key, node, lambda: self._lease_lost(key, task)):
            return await self.run_claimed(client, node, task)

    def _lease_lost(self, key: NodeKey, task: SyncTask) -> None:
        """A renewal found the node no longer ours: stop its synchronisation."""
        if self.syncs.task(key) is task and not task.stopped:
            log.warning(
                "%s: synchronisation lease lost (taken over, or changed by another "
                "process): stopping",
                key.label,
            )
            stopping = self.syncs.stop(key)
            if stopping is not None:
                stopping.addErrback(lambda _: None)

    async def run_claimed(self, client: Any, node: PubsubNode, task: SyncTask) -> SyncState | None:
        """The attempt, once the node is claimed: subscribe, page, complete."""
        key = NodeKey.of(client.profile, node.service, node.name)
        label = key.label
        try:
            if not await self.subscribe(client, node, label):
                return await self.failed_with(key, node, SyncState.NO_SYNC)
            pager = Pager(
                task,
                lambda request: self.fetch(client, node, request),
                lambda items: self.write_page(client, node, task, items),
                hints.limit(node, self.settings.cache_limit),
                self.settings.page_size,
                label,
            )
            await pager.run()
            task.check()
            if task.dropped:
                return None
            await self.locks.run(key, self.complete, key, node, task)
        except RepeatedItemsError as e:
            log.warning("%s can't be cached: %s (please report it to the service)", label, e)
            return await self.failed_with(key, node, SyncState.NO_SYNC)
        except NodeMissing as e:  # not a refusal: nothing recorded, cached once it exists
            log.info("%s: nothing recorded", e)
            if self.missing is not None:
                self.missing.add(key)
            await self.failed_with(key, node, None)
            await self.storage.delete_pubsub_node([key.profile], [key.service_jid], [key.node])
            return None
        except SyncLeaseLost as e:
            log.warning("%s: stopped: %s", label, e)
            return None
        except Exception as e:
            if task.dropped:
                return None
            if task.stopped or isinstance(e, CONNECTION_ENDED):
                # profile disconnected, host stopping: synchronised again later
                log.info("%s: synchronisation stopped (%s)", label, e)
                if isinstance(e, CONNECTION_ENDED):  # maybe before profile_disconnected
                    self.interruptions.add(key)
                return await self.failed_with(key, node, None)
            if task.will_retry:
                # past the deadline: the node is not released, so no other process takes
                # it before the next attempt, whose claim (ours) renews the lease and
                # removes the items written so far
                log.info(
                    "%s: attempt %d cut at its deadline (%s); the node stays claimed for "
                    "the next one",
                    label,
                    task.attempt,
                    e,
                )
                return SyncState.IN_PROGRESS
            expected = isinstance(e, EXPECTED_SYNC_ERRORS)
            log.error("%s: synchronisation failed: %s", label, e, exc_info=not expected)
            return await self.failed_with(key, node, SyncState.ERROR)
        self.failed.pop(key, None)
        log.info("%s: synchronised (%d items cached)", label, task.cached)
        return SyncState.COMPLETED

    async def failed_with(
        self, key: NodeKey, node: PubsubNode, state: SyncState | None
    ) -> SyncState | None:
        """Remove the partial items, record ``state`` and release the node.

        None when the node is no longer this instance's (gone, or taken over).
        """
        if state is SyncState.ERROR:
            self.failed[key] = self.clock.seconds()
        try:
            if not await self.locks.run(key, self.lease.release, node, state, True):
                log.info("%s: no longer ours, left as it is", key.label)
                return None
        except Exception:
            log.exception("%s: can't record the failed synchronisation", key.label)
        return state

    async def complete(self, key: NodeKey, node: PubsubNode, task: SyncTask) -> None:
        """End of paging (under the node's lock): replay the events, mark COMPLETED.

        ``SyncLeaseLost`` if the node is no longer this instance's to complete.
        """
        for change in task.pending:
            await as_deferred(change)
        task.pending.clear()
        if not await self.lease.release(node, SyncState.COMPLETED):
            raise SyncLeaseLost(f"{key.label} is no longer ours to complete")
        task.finished = True
        if self.freshness is not None:  # in step now, and followed by events
            await self.freshness.mark_live(key, node, **{EXTRA_RSM: task.rsm is not False})

    async def subscribe(self, client: Any, node: PubsubNode, label: str) -> bool:
        """Subscribe to the node (once); False when the service refuses."""
        if node.subscribed:
            return True
        try:
            subscription = await self.xep_0060.subscribe(client, jid.JID(node.service), node.name)
        except jabber_error.StanzaError as e:
            if is_missing(e):
                raise NodeMissing(f"{label} does not exist") from e
            log.warning("%s: subscription refused (%s): it can't be kept in sync", label, e)
            return False
        if getattr(subscription, "state", "subscribed") != "subscribed":
            log.warning(
                "%s: subscription is %r, not 'subscribed': it can't be kept in sync",
                label,
                subscription.state,
            )
            return False
        node.subscribed = True
        await self.storage.set_pubsub_node(
            client,
            jid.JID(node.service),
            node.name,
            analyser=node.analyser,
            type_=node.type_,
            subtype=node.subtype,
            subscribed=True,
        )
        return True

    async def fetch(
        self, client: Any, node: PubsubNode, request: dict[str, Any] | None
    ) -> tuple[list[domish.Element], dict[str, Any] | None]:
        """One items request to the service (never the cache)."""
        rsm_request = None
        if request is not None:
            rsm_request = RSMRequest(
                request.get("max"), request.get("after"), request.get("before")
            )
        items, metadata = await self.xep_0060.get_items(
            client,
            jid.JID(node.service),
            node.name,
            rsm_request=rsm_request,
            extra=dict(BYPASS_CACHE),
        )
        return items, metadata.get("rsm")

    async def write_page(
        self, client: Any, node: PubsubNode, task: SyncTask, items: list[domish.Element]
    ) -> None:
        """Store one page of the synchronisation (unless the node was purged meanwhile);
        the write renews the node's lease."""
        parsed = await self.writer.parse(client, node, items)
        key = NodeKey.of(client.profile, node.service, node.name)
        if not (task.purged or task.dropped):
            write = self.storage.cache_pubsub_sync_page
            lease = self.lease
            args = (client, node, items, parsed, lease.owner, lease.duration, self.clock.seconds())
            if not await self.locks.run(key, write, *args):
                raise SyncLeaseLost(f"{key.label}: lease lost before a page was written")

    def progress(self, client: Any, service: jid.JID, node: str) -> dict[str, Any] | None:
        """Progress of the running synchronisation of a node, or None if none runs."""
        task = self.syncs.task(NodeKey.of(client.profile, service, node))
        return None if task is None else task.progress()

    async def holder_of(self, client: Any, service: jid.JID, node: str) -> dict[str, Any] | None:
        """Who else is synchronising a node (a live lease), or None."""
        pubsub_node = await self.storage.get_pubsub_node(client, service, node)
        holder = None if pubsub_node is None else self.lease.holder(pubsub_node)
        if holder is None:
            return None
        description = str(self.lease.owned_error(pubsub_node, holder))
        return dict(holder.as_dict(), description=description)


__all__ = ["NOT_COMPLETED", "SYNC_WANTED", "Interruptions", "SyncRunner"]
