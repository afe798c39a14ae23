"""What the transparency tests share: a host whose reader caches, and an independent
client (slixmpp, :mod:`twisted_tests.slix`) that publishes and reads the service
directly, so that every answer of the cache can be compared with the service's."""

from __future__ import annotations

import json
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from twisted.internet import defer, reactor
from twisted.words.protocols.jabber.jid import JID

from twisted_tests.pubsub_cache.e2e import TIMEOUT, ServerTestCase
from twisted_tests.slix import SlixClient, canonical, slix_client

NS_ATOM = "http://www.w3.org/2005/Atom"
NODE_CONFIG = {
    "pubsub#max_items": "1000",
    "pubsub#access_model": "open",
    "pubsub#notify_retract": True,
    "pubsub#notify_delete": True,
}

Answer = tuple[list[str], list[str], dict[str, Any] | None]  # ids, payloads, RSM


def atom(item_id: str, title: str) -> tuple[str, str]:
    """An (id, Atom entry XML) pair."""
    text = title.replace("&", "&amp;").replace("<", "&lt;")
    return item_id, f"<entry xmlns='{NS_ATOM}'><title>{text}</title></entry>"


def _rsm_comparable(rsm: dict[str, Any] | None) -> dict[str, Any] | None:
    # cursors are opaque (ejabberd's are time stamps, the cache's item ids): compared
    # through the items they designate (first and last of the page)
    return None if rsm is None else {"count": rsm.get("count"), "index": rsm.get("index")}


class TransparencyCase(ServerTestCase):
    """A reader profile caching through the host, and ``peer``: slixmpp as the admin."""

    async def setUp(self) -> None:
        await super().setUp()
        self.peer: SlixClient = await slix_client(
            self, self.server, await self.server.admin_account()
        )

    def item_event(self, item_id: str, node: str | None = None) -> defer.Deferred[Any]:
        """Fires once an items event of the reader naming ``item_id`` was handled by
        the cache (other events, e.g. a last item re-sent, are let by)."""
        node = node or self.node
        d: defer.Deferred[Any] = defer.Deferred()

        def callback(client: Any, event: Any) -> None:
            named = {item.getAttribute("id") for item in event.items}
            if client is self.reader and event.nodeIdentifier == node and item_id in named:
                if not d.called:
                    d.callback(event)

        self.xep_0060.add_managed_node(node, priority=-1000, items_cb=callback)
        self.addCleanup(self.xep_0060.remove_managed_node, node, callback)
        return d.addTimeout(TIMEOUT, reactor)

    async def create(self, node: str | None = None, **config: Any) -> str:
        node = node or self.node
        await self.peer.create(node, dict(NODE_CONFIG, **config))
        return node

    async def service_answer(self, node: str | None = None, **request: Any) -> Answer:
        """The service's answer to ``request`` (keywords of XEP-0060 ``get_items``;
        ``rsm`` as a dict), as slixmpp reads it."""
        answer = await self.peer.items(node or self.node, **request)
        payloads = [canonical(item) for item in answer["items"]]
        return [_id_of(p) for p in payloads], payloads, _rsm_comparable(answer["rsm"])

    async def cache_answer(self, node: str | None = None, **request: Any) -> Answer:
        """The reader's answer through the host (from the cache when it can)."""
        rsm = request.pop("rsm", None)
        if rsm is not None:
            request["rsm_request"] = RSMRequest(
                rsm.get("max"), rsm.get("after"), rsm.get("before"), rsm.get("index")
            )
        items, metadata = await self.get(node=node, **request)
        payloads = [canonical(item) for item in items]
        return [_id_of(p) for p in payloads], payloads, _rsm_comparable(metadata.get("rsm"))

    async def assert_same(self, node: str | None = None, **request: Any) -> None:
        """The cache answers ``request`` as the service does: ids, order, payloads, and
        RSM count and index when the service gives them."""
        service = await self.service_answer(node, **dict(request))
        cached = await self.cache_answer(node, **dict(request))
        self.assertEqual(cached[0], service[0], f"ids of {request}")
        self.assertEqual(cached[1], service[1], f"payloads of {request}")
        if service[2] is not None:
            self.assertEqual(cached[2], service[2], f"RSM of {request}")

    def assert_same_page(
        self, service: dict[str, Any], cached: list[Any], metadata: dict[str, Any]
    ) -> None:
        """A page of the service (slixmpp's answer, each side asked with its own
        cursor) and the cache's: same items, and the same RSM count and index when
        the service gives them."""
        self.assertEqual(
            [canonical(item) for item in cached], [canonical(i) for i in service["items"]]
        )
        if service["rsm"] is not None:
            self.assertEqual(
                (metadata["rsm"]["count"], metadata["rsm"]["index"]),
                (service["rsm"]["count"], service["rsm"]["index"]),
            )

    async def synced(self, node: str | None = None) -> None:
        """Request the node once (network) and wait until it is COMPLETED."""
        await self.get(node=node, max_items=1)
        state = await self.synchronised(node)
        self.assertEqual(str(state), "SyncState.COMPLETED")

    async def from_cache(self, node: str | None = None, **request: Any) -> Answer:
        """``cache_answer``, checking that it sent no IQ."""
        sent = self.count_iqs(self.reader)
        answer = await self.cache_answer(node, **request)
        self.assertEqual(sent, [], f"{request} should be answered from the cache")
        return answer

    async def revalidated(self, profile: str | None = None) -> dict[Any, str]:
        """Wait for the revalidation started at the reader's last connection."""
        running = self.cache.revalidating[profile or self.reader.profile]
        return await running.addTimeout(TIMEOUT, reactor)

    def service_jid(self) -> JID:
        return self.server.pubsub_service


def _id_of(canonical_item: str) -> str:
    attributes = dict(json.loads(canonical_item)[1])
    return attributes["id"]
