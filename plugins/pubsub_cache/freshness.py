"""Whether a COMPLETED node may be answered from the cache, and its revalidation.

A node's cache is trusted only while its client has been connected (and subscribed)
since the node was last known in step: after a synchronisation or a catch-up
(:mod:`.catchup`) in this session, events keep it in step. The node is then *live*.
A node is live when it was last known in step (``extra["synced_at"]``, epoch seconds
of the cache's clock) after its profile's current session began. When the session ends
(the connection dropped, the host stopped), its live nodes are recorded as in step
until then and are no longer live (the next session begins later). At the next
connection each COMPLETED node of the profile is caught up in the background; until
it is, requests for it go to the network — unless ``max_staleness`` is set and the
node was in step less than that many seconds ago.

Answers from the cache carry ``metadata["cache"] = {"synced_at", "live"}``: when the
node was last known to equal the service (now, for a live node).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.pubsub_cache import catchup, service_order
from sat_storage.plugins.pubsub_cache.existence import is_missing
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.protocols.jabber import jid

from sat_storage.deferreds import KeyedLock, SingleFlight
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubNode, SyncState

log = logging.getLogger(__name__)

#: ``extra`` key of a node: when it was last known to be in step with its service
EXTRA_SYNCED_AT = "synced_at"
#: ``extra`` key of a node: whether its service pages with RSM (learnt by the sync)
EXTRA_RSM = "rsm"
#: ``metadata`` key of an answer from the cache
KEY_CACHE = "cache"
NO_NETWORK = {"use_cache": False}

Key = tuple[str, str, str]
Parse = Callable[[Any, PubsubNode, list[Any]], Awaitable[list[dict[str, Any] | None]]]


def synced_at(node: PubsubNode) -> float | None:
    value = (node.extra or {}).get(EXTRA_SYNCED_AT)
    return float(value) if isinstance(value, int | float) else None


class Freshness:
    """Live nodes of the connected profiles, and the catch-ups that make them live."""

    def __init__(
        self,
        storage: Any,
        xep_0060: Any,
        parse: Parse,
        locks: KeyedLock,
        clock: IReactorTime,
        page_size: int,
        cache_limit: int,
        max_staleness: float | None,
    ) -> None:
        self.storage = storage
        self.xep_0060 = xep_0060
        self.parse = parse
        self.locks = locks
        self.clock = clock
        self.page_size = page_size
        self.cache_limit = cache_limit
        self.max_staleness = max_staleness
        #: profile -> start of its current session (this process follows its events)
        self.sessions: dict[str, float] = {}
        self._running = SingleFlight()
        #: requests sent by the catch-ups (for measures): key -> count
        self.requests: dict[Key, int] = {}

    # --- trust ---

    def is_live(self, key: Key, node: PubsubNode) -> bool:
        """True when ``node`` was in step after its profile's session began (it has
        been followed by events since)."""
        start = self.sessions.get(key[0])
        last = synced_at(node)
        return start is not None and last is not None and last >= start

    def trusted(self, key: Key, node: PubsubNode) -> bool:
        """True when ``node`` (COMPLETED) may be answered from the cache now."""
        if self.is_live(key, node):
            return True
        last = synced_at(node)
        if self.max_staleness is None or last is None:
            return False
        return self.clock.seconds() - last <= self.max_staleness

    def answer_metadata(self, key: Key, node: PubsubNode) -> dict[str, Any]:
        live = self.is_live(key, node)
        return {"synced_at": self.clock.seconds() if live else synced_at(node), "live": live}

    def session_started(self, profile: str) -> None:
        """A session of ``profile`` began: its nodes are no longer known in step."""
        self.sessions[profile] = self.clock.seconds()

    async def mark_live(self, key: Key, node: PubsubNode, **extra: Any) -> None:
        """The node is in step now (synchronised or caught up), and followed."""
        now = self.clock.seconds()
        self.sessions.setdefault(key[0], now)
        try:
            await self.storage.update_pubsub_node_extra(node, {EXTRA_SYNCED_AT: now, **extra})
        except NotFound:
            pass

    async def session_ended(self, profile: str) -> None:
        """The profile's session ended: its live nodes were in step until now."""
        if profile not in self.sessions:
            return
        nodes = await self.storage.get_pubsub_nodes(
            profiles=[profile], sync_states=[SyncState.COMPLETED]
        )
        live = [node for node in nodes if self.is_live((profile, node.service, node.name), node)]
        del self.sessions[profile]
        now = self.clock.seconds()
        for node in live:
            try:
                await self.storage.update_pubsub_node_extra(node, {EXTRA_SYNCED_AT: now})
            except NotFound:
                pass

    # --- revalidation ---

    async def revalidate_profile(self, client: Any) -> dict[Key, str]:
        """Catch up every COMPLETED node of the client's profile that is not trusted
        (one after the other); returns each node's outcome."""
        nodes = await self.storage.get_pubsub_nodes(
            profiles=[client.profile], sync_states=[SyncState.COMPLETED]
        )
        outcomes: dict[Key, str] = {}
        for node in nodes:
            key = (client.profile, node.service, node.name)
            if self.trusted(key, node):
                continue
            try:
                outcomes[key] = await self.revalidate(client, node)
            except Exception as e:
                log.warning("%s: catch-up failed (%s): its requests go to the network", key, e)
                outcomes[key] = "failed"
        return outcomes

    def revalidate(self, client: Any, node: PubsubNode) -> defer.Deferred[str]:
        """Catch up ``node`` (joined if running); fires with ``in_step``, ``changed``,
        ``deleted``, or ``resync`` (the node must be synchronised again)."""
        key = (client.profile, node.service, node.name)
        return self._running.run(key, self._revalidate, client, key, node)

    async def _revalidate(self, client: Any, key: Key, node: PubsubNode) -> str:
        service = jid.JID(node.service)
        self.requests[key] = 0

        async def fetch(max_items: int | None, rsm: dict[str, Any] | None) -> Any:
            self.requests[key] += 1
            request = None
            if rsm is not None:
                request = RSMRequest(rsm.get("max"), rsm.get("after"), rsm.get("before"))
            items, metadata = await self.xep_0060.get_items(
                client, service, node.name, max_items, rsm_request=request, extra=dict(NO_NETWORK)
            )
            return items, metadata.get("rsm")

        async def item_ids() -> list[str]:
            self.requests[key] += 1
            found = await client.disco_client.requestItems(service, node.name)
            return [item.name for item in found if item.name]

        async def subscribe() -> bool:
            self.requests[key] += 1
            return await self._subscribe(client, service, node.name)

        return await self.locks.run(
            key, self._catch_up, client, key, node, fetch, item_ids, subscribe
        )

    async def _subscribe(self, client: Any, service: jid.JID, name: str) -> bool:
        """Subscribe again (a service keeps one subscription per subscriber: an
        existing one is confirmed); False when it is refused or not active.
        ``NotFound`` when the node is gone."""
        try:
            subscription = await self.xep_0060.subscribe(client, service, name)
        except jabber_error.StanzaError as e:
            if is_missing(e):
                raise NotFound(f"node {name!r} is gone from {service.full()}") from e
            log.warning("node %r: subscription refused at catch-up (%s)", name, e)
            return False
        return getattr(subscription, "state", "subscribed") == "subscribed"

    async def _catch_up(
        self, client: Any, key: Key, node: PubsubNode, fetch: Any, item_ids: Any, subscribe: Any
    ) -> str:
        current = await self.storage.get_pubsub_node(client, jid.JID(node.service), node.name)
        if current is None or current.sync_state is not SyncState.COMPLETED:
            return "resync"  # changed meanwhile (deleted, resynchronised): nothing to do
        node = current
        try:
            # first, as a synchronisation does: no event after the reading is missed,
            # and a node deleted and created again meanwhile (its subscriptions gone)
            # is followed again
            subscribed = await subscribe()
        except NotFound:
            return await self._dropped(key)
        if not subscribed:  # can't be kept in step: synchronised again when next asked
            await self.storage.update_pubsub_node_sync_state(node, None)
            return "resync"
        cached_items, _ = await self.storage.get_items(
            node, order_by=service_order.default_order(node)
        )
        cached = [(item.name, item.xml) for item in cached_items]  # as stored: not parsed
        policy = service_order.policy_of(node)
        rsm = (node.extra or {}).get(EXTRA_RSM, True)
        try:
            service_items = await catchup.read_service(
                fetch, item_ids, cached, policy, rsm, self.page_size, self.cache_limit
            )
        except NotFound:
            return await self._dropped(key)
        changes = catchup.plan(cached, service_items, policy)
        if not changes.empty:
            changed_parsed = await self.parse(client, node, changes.changed)
            appended_parsed = await self.parse(client, node, changes.appended)
            await self.storage.catch_up_pubsub_items(
                client,
                node,
                changes.changed,
                changed_parsed,
                changes.removed,
                changes.appended,
                appended_parsed,
            )
        extra = {} if changes.policy is None else {service_order.EXTRA_REPUBLISH: changes.policy}
        await self.mark_live(key, node, **extra)
        log.info(
            "%s: caught up with %d requests (%d changed, %d removed, %d written at the end)",
            key,
            self.requests.get(key, 0),
            len(changes.changed),
            len(changes.removed),
            len(changes.appended),
        )
        return "in_step" if changes.empty else "changed"

    async def _dropped(self, key: Key) -> str:
        log.info("%s: deleted from its service meanwhile: dropped", key)
        await self.storage.delete_pubsub_node([key[0]], [jid.JID(key[1])], [key[2]])
        return "deleted"


__all__ = ["EXTRA_RSM", "EXTRA_SYNCED_AT", "KEY_CACHE", "Freshness", "synced_at"]
