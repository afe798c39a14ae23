"""End to end: the cache against Prosody (no RSM) and ejabberd (RSM), 250 microblog items.

Every test runs on both servers (``ProsodyCacheTests``, ``EjabberdCacheTests``) and on
the suite's database engine (``SAT_STORAGE_TEST_DB``).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from twisted.internet import defer

from sat_storage.models import SyncState
from twisted_tests.db import database_url
from twisted_tests.pubsub_cache.e2e import ServerTestCase, ids, xml
from twisted_tests.pubsub_cache.harness import make_host
from twisted_tests.pubsub_cache.helpers import parse, record_calls
from twisted_tests.xmpp_servers import ejabberd, prosody, unique_name

COUNT = 250  # items of the main scenario
SMALL = 30  # items of the event/admin tests (Prosody stores 250 items in ~10 s)
ALL_IDS = [f"item-{i:03d}" for i in range(COUNT)]
SMALL_IDS = ALL_IDS[:SMALL]


def comparable(metadata: dict[str, Any], keys: Any) -> dict[str, Any]:
    """``keys`` of metadata, RSM cursors left out (opaque: ejabberd's are time stamps,
    the cache's item ids)."""
    metadata = {key: metadata[key] for key in keys}
    if "rsm" in metadata:
        metadata["rsm"] = dict(metadata["rsm"], first=None, last=None)
    return metadata


class CacheE2EMixin:
    """The tests; mixed with ServerTestCase and a server below."""

    #: requests compared between the network and the cache
    requests: list[dict[str, Any]]

    async def synced(self, count: int = COUNT) -> None:
        """The node with ``count`` items, requested once and synchronised."""
        await self.create_node(count=count)
        await self.get(max_items=1)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)

    async def test_network_then_cache(self) -> None:
        """First request: network, sync starts; once COMPLETED: cache, no IQ, same answer."""
        await self.create_node(count=COUNT)
        references = [await self.get(extra={"use_cache": False}, **r) for r in self.requests]
        sent = self.count_iqs(self.reader)
        first = await self.get(**self.requests[0])
        self.assertTrue(sent, "the first request should go to the network")
        self.assertEqual(xml(first[0]), xml(references[0][0]))
        self.assertIsNotNone(self.cache.sync_progress(self.reader, self.service, self.node))
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual(len((await self.cached_node()).items), COUNT)
        del sent[:]
        for request, (items, metadata) in zip(self.requests, references, strict=True):
            answer = await self.get(**copy.deepcopy(request))
            self.assertEqual(xml(answer[0]), xml(items), request)
            # what the service said is said alike; the cache always adds rsm/complete
            self.assertEqual(comparable(answer[1], metadata), comparable(metadata, metadata))
            self.assertLessEqual({"rsm", "complete"}, set(answer[1]))
        self.assertEqual(sent, [], "answers from the cache send no IQ")

    async def test_parsed_data(self) -> None:
        """Synchronised items carry the microblog parser's data."""
        await self.synced(3)
        node = await self.cached_node()
        self.assertEqual(
            [(i.name, i.parsed["title"]) for i in node.items],
            [(f"item-{i:03d}", f"title item-{i:03d}") for i in range(3)],
        )
        self.assertEqual((node.type_, node.analyser, node.subscribed), ("blog", "xep-0277", True))

    async def test_publish_event(self) -> None:
        """A live publication (new item, updated item) updates the cache."""
        await self.synced(SMALL)
        event = self.next_event("items", count=2)  # one notification per published item
        await self.publish(self.node, ["new", "item-010"], title="live")
        await event
        sent = self.count_iqs(self.reader)
        items, _ = await self.get(max_items=SMALL + 1)
        self.assertEqual(sent, [])
        self.assertEqual(len(items), SMALL + 1)
        node = await self.cached_node()
        titles = {i.name: i.parsed["title"] for i in node.items}
        self.assertEqual((titles["new"], titles["item-010"]), ("live new", "live item-010"))

    async def test_retract_event(self) -> None:
        """A live retraction removes the item from the cache."""
        await self.synced(SMALL)
        event = self.next_event("items")
        await self.xep_0060.retract_items(self.writer, self.service, self.node, ["item-005"])
        await event
        items, _ = await self.get()
        self.assertEqual(ids(items), [i for i in SMALL_IDS if i != "item-005"])

    async def test_purge_event(self) -> None:
        """A live purge empties the cache, which answers (empty) like the service."""
        await self.synced(SMALL)
        event = self.next_event("purge")
        await self.xep_0060.purge_node(self.writer, self.service, self.node)
        await event
        sent = self.count_iqs(self.reader)
        items, metadata = await self.get()
        self.assertEqual((items, sent), ([], []))
        _, reference = await self.get(extra={"use_cache": False})
        self.assertEqual(comparable(metadata, reference), comparable(reference, reference))
        self.assertEqual((await self.cached_node()).sync_state, SyncState.COMPLETED)

    async def test_delete_event(self) -> None:
        """A live node deletion drops the node from the cache."""
        await self.synced(SMALL)
        event = self.next_event("delete")
        await self.xep_0060.delete_node(self.writer, self.service, self.node)
        await event
        self.assertIsNone(await self.cached_node())

    async def test_resync(self) -> None:
        """A resync fetches the node again: changes no event told are caught up."""
        await self.synced(SMALL)
        await self.xep_0060.retract_items(
            self.writer, self.service, self.node, ["item-001"], notify=False
        )
        sent = self.count_iqs(self.reader)
        state = await self.cache.synchronise(self.reader, self.service, self.node)
        self.assertEqual(state, SyncState.COMPLETED)
        self.assertTrue(sent)
        items, _ = await self.get()
        self.assertEqual(ids(items), [i for i in SMALL_IDS if i != "item-001"])

    async def test_purge_filters(self) -> None:
        """Purging the node's items: it is fetched from the network and synced again."""
        await self.synced(SMALL)
        other = unique_name("urn:xmpp:microblog:0")
        await self.create_node(other, 2)
        await self.get(node=other)
        await self.synchronised(other)
        removed = await self.cache.purge({"nodes": [self.node], "types": ["blog"]})
        self.assertEqual(removed, SMALL)
        self.assertEqual(len((await self.cached_node(other)).items), 2)
        sent = self.count_iqs(self.reader)
        items, _ = await self.get()
        self.assertTrue(sent)
        self.assertEqual(ids(items), SMALL_IDS)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual(len((await self.cached_node()).items), SMALL)

    async def test_reset(self) -> None:
        """After a reset nothing is cached and requests go to the network again."""
        await self.synced(SMALL)
        await self.cache.reset()
        self.assertEqual(await self.host.memory.storage.get_pubsub_nodes(), [])
        sent = self.count_iqs(self.reader)
        items, _ = await self.get()
        self.assertTrue(sent)
        self.assertEqual(len(items), SMALL)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)

    async def test_concurrent_requests(self) -> None:
        """50 concurrent requests on an unsynced node: one sync, no duplicate, all answered."""
        await self.create_node(count=COUNT)
        attempts = []
        original = self.cache.runner.attempt

        def counting(*args: Any) -> Any:
            attempts.append(args)
            return original(*args)

        self.patch(self.cache.runner, "attempt", counting)
        answers = await defer.gatherResults(
            [defer.ensureDeferred(self.get(max_items=5)) for _ in range(50)]
        )
        self.assertEqual([ids(items) for items, _ in answers], [ALL_IDS[-5:]] * 50)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual(len(attempts), 1)
        nodes = await self.host.memory.storage.get_pubsub_nodes(names=[self.node])
        self.assertEqual(len(nodes), 1)
        self.assertEqual(sorted(i.name for i in (await self.cached_node()).items), ALL_IDS)

    async def test_cache_node(self) -> None:
        """cache_node() synchronises a recorded node in the background; a second call
        joins it (one attempt), both fire with COMPLETED, every item is cached."""
        await self.create_node(count=SMALL)
        node = await self.host.memory.storage.set_pubsub_node(
            self.reader, self.service, self.node, analyser="xep-0277", type_="blog"
        )
        attempts = record_calls(self, self.cache.runner, "attempt")
        first = self.cache.cache_node(self.reader, node)
        second = self.cache.cache_node(self.reader, node)
        self.assertEqual(await defer.gatherResults([first, second]), [SyncState.COMPLETED] * 2)
        self.assertEqual(len(attempts), 1)
        self.assertEqual(sorted(i.name for i in (await self.cached_node()).items), SMALL_IDS)

    async def test_crash_resync(self) -> None:
        """A node left IN_PROGRESS by a crash is reset at start and synced again."""
        await self.synced()
        storage = self.host.memory.storage
        node = await self.cached_node()
        await storage.delete_pubsub_items(node, ALL_IDS[100:])
        await storage.update_pubsub_node_sync_state(node, SyncState.IN_PROGRESS)
        profile = self.reader.profile
        await self.host.stop()  # the "crash": the sync never finished

        self.host = await self.start_host(self.db_url)
        self.cache = self.host.plugins["PUBSUB_CACHE"]
        self.xep_0060 = self.host.plugins["XEP-0060"]
        node = await self.host.memory.storage.get_pubsub_node(
            self.reader, self.service, self.node, with_items=True
        )
        self.assertEqual((node.sync_state, node.items), (None, []))
        self.reader = await self.host.connect(profile)  # its hook resynchronises
        state = await self.cache.synchronise(self.reader, self.service, self.node, resync=False)
        self.assertEqual(state, SyncState.COMPLETED)
        self.assertEqual(len((await self.cached_node()).items), COUNT)

    async def test_cache_limit(self) -> None:
        """Over the cache limit, the newest items are kept, in order."""
        self.patch(self.cache.runner, "settings", replace(self.cache.settings, cache_limit=100))
        await self.synced()
        node = await self.cached_node()
        self.assertEqual([i.name for i in node.items], ALL_IDS[-100:])
        items, _ = await self.get(max_items=3)
        self.assertEqual(ids(items), ALL_IDS[-3:])

    async def test_namespace_match(self) -> None:
        """A node with another name but Atom items matches XEP-0277 by namespace."""
        node = unique_name("feed")
        await self.create_node(node, 3)
        await self.get(node=node)
        self.assertEqual(await self.synchronised(node), SyncState.COMPLETED)
        cached = await self.cached_node(node)
        self.assertEqual((cached.analyser, len(cached.items)), ("xep-0277", 3))

    async def test_no_match_not_synced(self) -> None:
        """A node of unknown items is recorded NO_SYNC and always read from the network."""
        node = unique_name("other")
        await self.xep_0060.create_node(self.writer, self.service, node)
        item = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='x'><data xmlns='urn:x'/></item>"
        )
        await self.xep_0060.publish(self.writer, self.service, node, [item])
        await self.get(node=node)
        sent = self.count_iqs(self.reader)
        await self.get(node=node)
        self.assertEqual(len(sent), 1)
        self.assertEqual((await self.cached_node(node)).sync_state, SyncState.NO_SYNC)

    async def test_events_during_sync(self) -> None:
        """Items published and retracted while the node is being synced are not lost."""
        await self.create_node(count=COUNT)
        original = self.cache.runner.fetch
        done = []

        async def fetch_then_change(*args: Any) -> Any:
            page = await original(*args)  # this page predates the changes below
            if not done:
                done.append(True)
                published = self.next_event("items")
                await self.publish(self.node, ["during"], title="live")
                await published
                retracted = self.next_event("items")
                await self.xep_0060.retract_items(
                    self.writer, self.service, self.node, ["item-000"]
                )
                await retracted
            return page

        self.patch(self.cache.runner, "fetch", fetch_then_change)
        await self.get(max_items=1)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        names = [i.name for i in (await self.cached_node()).items]
        self.assertEqual(sorted(names), sorted(ALL_IDS[1:] + ["during"]))

    async def test_pep_node(self) -> None:
        """The reader's own PEP microblog (service None) is cached like the others."""
        items = [
            parse(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='pep-1'>"
                "<entry xmlns='http://www.w3.org/2005/Atom'><title>pep</title></entry></item>"
            )
        ]
        await self.xep_0060.publish(self.reader, None, NS_MICROBLOG, items)
        await self.xep_0060.get_items(self.reader, None, NS_MICROBLOG)
        own = self.reader.jid.userhostJID()
        state = await self.cache.synchronise(self.reader, own, NS_MICROBLOG, resync=False)
        self.assertEqual(state, SyncState.COMPLETED)
        sent = self.count_iqs(self.reader)
        answer, metadata = await self.xep_0060.get_items(self.reader, None, NS_MICROBLOG)
        self.assertEqual((ids(answer), sent), (["pep-1"], []))
        self.assertEqual(metadata["service"], own)


class ProsodyCacheTests(CacheE2EMixin, ServerTestCase):
    server_factory = staticmethod(prosody)
    requests = [{}, {"max_items": 10}, {"max_items": 1}]

    async def setUp(self) -> None:
        self.db_url = database_url(self)
        await super().setUp()

    async def start_host(self, db_url: str | None = None) -> Any:
        return await make_host(self, self.config, db_url or self.db_url)


class EjabberdCacheTests(CacheE2EMixin, ServerTestCase):
    server_factory = staticmethod(ejabberd)
    requests = [
        {"max_items": 10},
        {"rsm_request": RSMRequest(10)},
        {"rsm_request": RSMRequest(10, before="")},
        {"rsm_request": RSMRequest(25, index=100)},
        {},
    ]

    async def setUp(self) -> None:
        self.db_url = database_url(self)
        await super().setUp()

    async def start_host(self, db_url: str | None = None) -> Any:
        return await make_host(self, self.config, db_url or self.db_url)
