"""The cache plugin on a real host and database, without XMPP server.

The clients here have no connection: whatever would go to the network fails with
"not connected", which is how these tests see that a request was *not* answered
from the cache. Synchronisation with real servers is in test_e2e.py.
"""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (before wokkel)

# isort: split
from datetime import UTC, datetime, timedelta
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from sat_storage.plugins.pubsub_items import get_node_uri
from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID
from wokkel.pubsub import DeleteEvent, ItemsEvent, PurgeEvent

from sat_storage.exceptions import ConflictError
from sat_storage.models import SyncState
from twisted_tests.pubsub_cache.harness import completed_node, make_host, offline_client
from twisted_tests.pubsub_cache.helpers import atom_item, parse
from twisted_tests.pubsub_cache.read_cost import count_read_cost, counting

SERVICE = JID("pubsub.example.org")
NOT_CONNECTED = "not connected"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"


def ids(items: list[Any]) -> list[str]:
    return [item["id"] if hasattr(item, "attributes") else item.name for item in items]


def event_item(item_id: str, title: str) -> Any:
    """An ``<item/>`` as found in a pubsub event notification."""
    item = atom_item(item_id, title)
    item.uri = item.defaultUri = NS_EVENT
    return item


def retract(item_id: str) -> Any:
    return parse(f"<retract xmlns='{NS_EVENT}' id='{item_id}'/>")


class CacheTestCase(TestCase):
    config = ""

    async def setUp(self) -> None:
        self.host = await make_host(self, self.config)
        self.cache = self.host.plugins["PUBSUB_CACHE"]
        self.xep_0060 = self.host.plugins["XEP-0060"]
        self.storage = self.host.memory.storage
        self.alice = await offline_client(self.host, "alice")

    async def stored(self, client: Any, node: str = NS_MICROBLOG, service: JID = SERVICE) -> Any:
        pubsub_node = await self.storage.get_pubsub_node(client, service, node, with_items=True)
        return pubsub_node

    async def blog(self, count: int, client: Any = None, name: str = NS_MICROBLOG) -> Any:
        items = [atom_item(f"item-{i:02d}", f"title {i}") for i in range(count)]
        return await completed_node(
            self.host, client or self.alice, SERVICE, name, items, "xep-0277"
        )

    async def assert_network(self, d: Any) -> None:
        """The request went to the network (the offline client can't send it)."""
        with self.assertRaisesRegex(RuntimeError, NOT_CONNECTED):
            await d


class CacheItemsTests(CacheTestCase):
    async def test_parsed_with_analyser(self) -> None:
        """Items are stored with the data parsed by the node's analyser."""
        await self.blog(2)
        node = await self.stored(self.alice)
        self.assertEqual([i.parsed["title"] for i in node.items], ["title 0", "title 1"])

    async def test_parser_raises(self) -> None:
        """A parser that raises: the item is kept raw with no parsed data, and logged."""

        def broken(client: Any, item: Any, service: Any, node: str) -> dict:
            raise RuntimeError("parser bug")

        self.cache.register_analyser({"name": "broken", "type": "x", "node": "b", "parser": broken})
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "b", analyser="broken")
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING") as logs:
            await self.cache.cache_items(self.alice, node, [atom_item("one")])
        self.assertIn("parser bug", logs.output[0])
        stored = await self.stored(self.alice, "b")
        self.assertEqual([(i.name, i.parsed) for i in stored.items], [("one", None)])
        self.assertEqual(stored.items[0].data.toXml(), atom_item("one").toXml())

    async def test_parser_bad_result(self) -> None:
        """A parser result that is not JSON-serialisable is dropped, the item kept."""
        self.cache.register_analyser(
            {"name": "odd", "type": "x", "node": "o", "parser": lambda *a: {"x": {1, 2}}}
        )
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "o", analyser="odd")
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING"):
            await self.cache.cache_items(self.alice, node, [atom_item("one")])
        self.assertIsNone((await self.stored(self.alice, "o")).items[0].parsed)

    async def test_async_parser(self) -> None:
        """Coroutine and Deferred parsers are awaited."""

        async def coroutine(client: Any, item: Any, service: Any, node: str) -> dict:
            return {"by": "coroutine"}

        self.cache.register_analyser({"name": "c", "type": "x", "node": "c", "parser": coroutine})
        self.cache.register_analyser(
            {"name": "d", "type": "x", "node": "d", "parser": lambda *a: defer.succeed({"by": 1})}
        )
        for name in ("c", "d"):
            node = await self.storage.set_pubsub_node(self.alice, SERVICE, name, analyser=name)
            await self.cache.cache_items(self.alice, node, [atom_item("one")])
        self.assertEqual((await self.stored(self.alice, "c")).items[0].parsed, {"by": "coroutine"})
        self.assertEqual((await self.stored(self.alice, "d")).items[0].parsed, {"by": 1})

    async def test_item_without_id(self) -> None:
        """An item without id (or not an <item/>) is logged and left out; others stored."""
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, NS_MICROBLOG)
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING") as logs:
            await self.cache.cache_items(
                self.alice, node, [atom_item(None), parse("<entry/>"), atom_item("ok")]
            )
        self.assertEqual(len(logs.output), 2)
        self.assertEqual([i.name for i in (await self.stored(self.alice)).items], ["ok"])

    async def test_malformed_payload(self) -> None:
        """A malformed Atom payload is stored raw, parsed as far as it goes."""
        item = parse(
            "<item xmlns='http://jabber.org/protocol/pubsub' id='bad'>"
            "<entry xmlns='http://www.w3.org/2005/Atom'><published>someday</published>"
            "<title><b xmlns='urn:x'>x</b></title><link/><category term=''/></entry></item>"
        )
        await self.blog(0)
        await self.cache.cache_items(self.alice, await self.stored(self.alice), [item])
        stored = (await self.stored(self.alice)).items[0]
        self.assertEqual(stored.parsed, {"id": "bad", "title": "x", "tags": [], "links": []})
        self.assertEqual(stored.data.toXml(), item.toXml())

    async def test_event_items_stored_as_pubsub_items(self) -> None:
        """Items of an event notification are stored as ordinary pubsub items."""
        await self.blog(0)
        await self.cache.cache_items(
            self.alice, await self.stored(self.alice), [event_item("ev", "t")]
        )
        stored = (await self.stored(self.alice)).items[0]
        self.assertEqual(stored.data.toXml(), atom_item("ev", "t").toXml())


class CacheReadTests(CacheTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.node = await self.blog(30)

    async def get(self, **kwargs: Any) -> tuple[list[str], dict]:
        items, metadata = await self.xep_0060.get_items(self.alice, SERVICE, NS_MICROBLOG, **kwargs)
        return ids(items), metadata

    async def test_max_items_newest(self) -> None:
        """``max_items`` only: the newest items, oldest first; metadata as from RSM services."""
        names, metadata = await self.get(max_items=3)
        self.assertEqual(names, ["item-27", "item-28", "item-29"])
        # and when the node was last known in step: now, for a node followed by events
        freshness = metadata.pop("cache")
        self.assertEqual(freshness["live"], True)
        self.assertGreaterEqual(freshness["synced_at"], self.node.extra["synced_at"])
        self.assertEqual(
            metadata,
            {
                "service": SERVICE,
                "node": NS_MICROBLOG,
                "uri": "xmpp:pubsub.example.org?;node=urn%3Axmpp%3Amicroblog%3A0",
                "rsm": {"first": "item-27", "last": "item-29", "index": 27, "count": 30},
                "complete": True,
            },
        )

    async def test_everything(self) -> None:
        """No limit: every item, oldest first (as a server answers)."""
        names, _ = await self.get()
        self.assertEqual(names, [f"item-{i:02d}" for i in range(30)])

    async def test_rsm_first_page(self) -> None:
        """RSM ``max`` only: the first page, with RSM metadata."""
        names, metadata = await self.get(rsm_request=RSMRequest(10))
        self.assertEqual(names, [f"item-{i:02d}" for i in range(10)])
        self.assertEqual(
            metadata["rsm"], {"first": "item-00", "last": "item-09", "index": 0, "count": 30}
        )
        self.assertIs(metadata["complete"], False)

    async def test_rsm_after(self) -> None:
        """RSM ``after``: the next page."""
        names, metadata = await self.get(rsm_request=RSMRequest(10, after="item-09"))
        self.assertEqual(names, [f"item-{i:02d}" for i in range(10, 20)])
        self.assertEqual(metadata["rsm"]["index"], 10)

    async def test_rsm_last_page(self) -> None:
        """RSM ``before=""``: the last page, complete."""
        names, metadata = await self.get(rsm_request=RSMRequest(10, before=""))
        self.assertEqual(names, [f"item-{i:02d}" for i in range(20, 30)])
        self.assertIs(metadata["complete"], True)

    async def test_rsm_before(self) -> None:
        """RSM ``before=ID``: the page before that item."""
        names, _ = await self.get(rsm_request=RSMRequest(5, before="item-10"))
        self.assertEqual(names, [f"item-{i:02d}" for i in range(5, 10)])

    async def test_rsm_index(self) -> None:
        """RSM ``index``: the page from that position."""
        names, metadata = await self.get(rsm_request=RSMRequest(10, index=25))
        self.assertEqual(names, [f"item-{i:02d}" for i in range(25, 30)])
        self.assertEqual(metadata["rsm"]["index"], 25)

    async def test_item_ids(self) -> None:
        """Items asked by id."""
        names, _ = await self.get(item_ids=["item-07", "item-03"])
        self.assertEqual(sorted(names), ["item-03", "item-07"])

    async def test_order(self) -> None:
        """Order by modification puts an updated item last; creation keeps its place."""
        await self.cache.cache_items(
            self.alice, await self.stored(self.alice), [atom_item("item-03", "new title")]
        )
        by_modification, _ = await self.get(max_items=1, extra={"order_by": ["modification"]})
        by_creation, _ = await self.get(max_items=1, extra={"order_by": ["creation"]})
        self.assertEqual((by_modification, by_creation), (["item-03"], ["item-29"]))

    async def test_unknown_cursor_goes_to_network(self) -> None:
        """A cursor that is no cached id (e.g. given by the service) goes to the network."""
        await self.assert_network(self.get(rsm_request=RSMRequest(10, after="2024-01-01T00:00Z")))

    async def test_use_cache_false(self) -> None:
        """``extra["use_cache"] is False`` sends the request to the network."""
        await self.assert_network(self.get(max_items=3, extra={"use_cache": False}))

    async def test_bad_order(self) -> None:
        """An unknown order is refused with an error naming it."""
        with self.assertRaisesRegex(ValueError, "'rank'"):
            await self.get(extra={"order_by": "rank"})

    async def test_get_items_from_cache(self) -> None:
        """get_items_from_cache gives the stored items and the storage's metadata."""
        node = await self.stored(self.alice)
        items, metadata = await self.cache.get_items_from_cache(self.alice, node, max_items=2)
        self.assertEqual([i.name for i in items], ["item-28", "item-29"])
        self.assertEqual(
            metadata,
            {
                "rsm": {"first": "item-28", "last": "item-29", "index": 28, "count": 30},
                "complete": True,
            },
        )


class StrategyTests(TestCase):
    async def cached_request(self, config: str) -> Any:
        host = await make_host(self, config)
        alice = await offline_client(host)
        await completed_node(host, alice, SERVICE, NS_MICROBLOG, [atom_item("a")], None)
        return await host.plugins["XEP-0060"].get_items(alice, SERVICE, NS_MICROBLOG)

    async def test_no_cache_section(self) -> None:
        """``[pubsub_cache] strategy = no_cache``: requests go to the network."""
        with self.assertRaisesRegex(RuntimeError, NOT_CONNECTED):
            await self.cached_request("[pubsub_cache]\nstrategy = no_cache\n")

    async def test_no_cache_libervia(self) -> None:
        """Libervia's ``pubsub_cache_strategy = no_cache`` in [DEFAULT] works too."""
        with self.assertRaisesRegex(RuntimeError, NOT_CONNECTED):
            await self.cached_request("[DEFAULT]\npubsub_cache_strategy = no_cache\n")

    async def test_cache_strategy(self) -> None:
        """``strategy = cache`` (the default) answers from the cache."""
        items, _ = await self.cached_request("[pubsub_cache]\nstrategy = cache\n")
        self.assertEqual(ids(items), ["a"])

    async def test_bad_strategy(self) -> None:
        """An unknown strategy stops the plugin with an error naming the option."""
        with self.assertLogs("sat_storage.plugin_loader", "ERROR"):
            host = await make_host(self, "[pubsub_cache]\nstrategy = sometimes\n")
        self.assertNotIn("PUBSUB_CACHE", host.plugins)
        self.assertIn("strategy", str(host.plugin_errors["PUBSUB_CACHE"]))
        self.assertIn("XEP-0277", host.plugins)  # it only recommends the cache

    async def test_bad_limit(self) -> None:
        """A cache limit that is not a positive integer is refused, naming it."""
        with self.assertLogs("sat_storage.plugin_loader", "ERROR"):
            host = await make_host(self, "[pubsub_cache]\ncache_limit = lots\n")
        self.assertIn("cache_limit", str(host.plugin_errors["PUBSUB_CACHE"]))

    async def test_settings(self) -> None:
        """Limit, page size, deadline and attempts come from the config."""
        host = await make_host(
            self,
            "[pubsub_cache]\ncache_limit = 100\npage_size = 7\nsync_deadline = 30\n"
            "sync_attempts = 5\n",
        )
        cache = host.plugins["PUBSUB_CACHE"]
        self.assertEqual((cache.settings.cache_limit, cache.settings.page_size), (100, 7))
        self.assertEqual((cache.syncs.deadline, cache.syncs.max_attempts), (30.0, 5))


class OfflineTriggerTests(CacheTestCase):
    async def test_not_synchronised_node(self) -> None:
        """A NO_SYNC node is never answered from the cache."""
        node = await self.blog(3)
        await self.storage.update_pubsub_node_sync_state(node, SyncState.NO_SYNC)
        await self.assert_network(self.xep_0060.get_items(self.alice, SERVICE, NS_MICROBLOG))

    async def test_unknown_node_failures_not_fatal(self) -> None:
        """Look-ups and sync failing (no connection): logged, node recorded in ERROR."""
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING"):
            await self.assert_network(self.xep_0060.get_items(self.alice, SERVICE, NS_MICROBLOG))
            await self.cache.synchronise(self.alice, SERVICE, NS_MICROBLOG, resync=False)
        node = await self.stored(self.alice)
        self.assertEqual((node.analyser, node.type_), ("xep-0277", "blog"))
        self.assertEqual((node.sync_state, node.items), (SyncState.ERROR, []))

    async def test_unmatched_node_recorded(self) -> None:
        """A node no analyser matches is recorded as NO_SYNC, not synchronised."""
        await self.assert_network(self.xep_0060.get_items(self.alice, SERVICE, "other"))
        node = await self.stored(self.alice, "other")
        self.assertEqual((node.analyser, node.sync_state), (None, SyncState.NO_SYNC))
        self.assertFalse(self.cache.syncs.keys())


class AnalyseTests(CacheTestCase):
    async def test_first_registered_wins(self) -> None:
        """Two analysers matching the same node: the first registered one wins."""
        self.cache.register_analyser({"name": "mine", "type": "mine", "node": "urn:xmpp:micro"})
        node = await self.blog(0)
        analyse = await self.cache.analyse_node(self.alice, SERVICE, NS_MICROBLOG, node)
        self.assertEqual((analyse["name"], analyse["type"]), ("xep-0277", "blog"))

    async def test_match_cb_edits_analyse(self) -> None:
        """match_cb may edit the analyse in place (here: a subtype)."""

        def match_cb(client: Any, analyse: dict) -> None:
            analyse["subtype"] = "photos"

        self.cache.register_analyser(
            {"name": "album", "type": "blog", "node": "album:", "match_cb": match_cb}
        )
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "album:1")
        analyse = await self.cache.analyse_node(self.alice, SERVICE, "album:1", node)
        self.assertEqual((analyse["name"], analyse["subtype"]), ("album", "photos"))

    async def test_no_match(self) -> None:
        """No analyser matches: the analyse only names the node."""
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "other")
        analyse = await self.cache.analyse_node(self.alice, SERVICE, "other", node)
        self.assertEqual(analyse, {"service": SERVICE, "node": "other"})

    async def test_network_failures_logged(self) -> None:
        """Failed look-ups (last item, configuration) are logged, not raised."""
        self.cache.register_analyser({"name": "atom", "type": "t", "namespace": "urn:atom"})
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING") as logs:
            analyse = await self.cache.analyse_node(self.alice, SERVICE, "other")
        self.assertEqual(len(logs.output), 2)
        self.assertEqual(analyse, {"service": SERVICE, "node": "other"})

    def test_duplicate_name(self) -> None:
        """An analyser name already registered (XEP-0277's) is a conflict."""
        with self.assertRaises(ConflictError):
            self.cache.register_analyser({"name": "XEP-0277", "type": "blog", "node": "x"})


class SortKeyTests(CacheTestCase):
    async def test_microblog_sort_keys_declared(self) -> None:
        """XEP-0277's analyser declares published and updated (newest first) sort keys."""
        await defer.gatherResults(self.cache.sort_keys_declared)
        declared = set(self.storage.sort_key_index.keys)
        self.assertEqual(declared, {(("published",), "desc"), (("updated",), "desc")})
        stored = await self.storage.db.run(self.storage.sort_keys_txn)
        self.assertEqual({(k.path, k.direction) for k in stored}, declared)


class EventTests(CacheTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.bob = await offline_client(self.host, "bob")
        await self.blog(3)
        await self.blog(3, self.bob)

    def items_event(self, *elements: Any, node: str = NS_MICROBLOG) -> ItemsEvent:
        return ItemsEvent(SERVICE, self.alice.jid, node, list(elements), {})

    async def names(self, client: Any) -> list[str]:
        node = await self.stored(client)
        return [] if node is None else [i.name for i in node.items]

    async def test_items_upserted(self) -> None:
        """New and updated items of an event are stored, parsed, for every profile."""
        await self.cache.on_items_event(
            self.alice, self.items_event(event_item("new", "N"), event_item("item-01", "U"))
        )
        expected = {"item-00": "title 0", "item-01": "U", "item-02": "title 2", "new": "N"}
        for client in (self.alice, self.bob):
            node = await self.stored(client)
            self.assertEqual({i.name: i.parsed["title"] for i in node.items}, expected)

    async def test_retract_everywhere(self) -> None:
        """A retraction deletes the item for every profile caching the node."""
        await self.cache.on_items_event(self.alice, self.items_event(retract("item-01")))
        self.assertEqual(await self.names(self.alice), ["item-00", "item-02"])
        self.assertEqual(await self.names(self.bob), ["item-00", "item-02"])

    async def test_purge_everywhere(self) -> None:
        """A purge empties the node for every profile; nodes stay synchronised."""
        await self.cache.on_purge_event(
            self.alice, PurgeEvent(SERVICE, self.alice.jid, NS_MICROBLOG, {})
        )
        self.assertEqual((await self.names(self.alice), await self.names(self.bob)), ([], []))
        self.assertEqual((await self.stored(self.bob)).sync_state, SyncState.COMPLETED)

    async def test_delete_everywhere(self) -> None:
        """A node deletion drops the node for every profile."""
        await self.cache.on_delete_event(
            self.bob, DeleteEvent(SERVICE, self.bob.jid, NS_MICROBLOG, {})
        )
        self.assertIsNone(await self.stored(self.alice))
        self.assertIsNone(await self.stored(self.bob))

    async def test_unknown_node(self) -> None:
        """Events for a node nobody caches change nothing and raise nothing."""
        await self.cache.on_items_event(
            self.alice, self.items_event(event_item("x", "x"), retract("y"), node="unknown")
        )
        await self.cache.on_purge_event(self.alice, PurgeEvent(SERVICE, None, "unknown", {}))
        await self.cache.on_delete_event(self.alice, DeleteEvent(SERVICE, None, "unknown", {}))
        self.assertIsNone(await self.stored(self.alice, "unknown"))
        self.assertEqual(len(await self.storage.get_pubsub_nodes()), 2)

    async def test_node_deleted_meanwhile(self) -> None:
        """Items of a node deleted while the event waited are dropped, nothing raised."""
        gate: defer.Deferred[None] = defer.Deferred()
        key = ("alice", SERVICE.full(), NS_MICROBLOG)
        self.cache.locks.run(key, lambda: gate)  # a write in progress on the node
        event = defer.ensureDeferred(
            self.cache.on_items_event(self.alice, self.items_event(event_item("late", "L")))
        )
        await self.storage.delete_pubsub_node(["alice"], None, None)
        gate.callback(None)
        await event
        self.assertIsNone(await self.stored(self.alice))

    async def test_not_synchronised_node(self) -> None:
        """Items of a NO_SYNC node are not cached."""
        node = await self.storage.set_pubsub_node(self.alice, SERVICE, "other")
        await self.storage.update_pubsub_node_sync_state(node, SyncState.NO_SYNC)
        await self.cache.on_items_event(
            self.alice, self.items_event(event_item("x", "x"), node="other")
        )
        self.assertEqual((await self.stored(self.alice, "other")).items, [])


class CrashTests(TestCase):
    async def test_interrupted_sync_reset(self) -> None:
        """A node left IN_PROGRESS is reset at start (items removed) and never served."""
        from twisted_tests.db import database_url

        url = database_url(self)
        host = await make_host(self, db_url=url, stop=False)
        alice = await offline_client(host)
        node = await completed_node(
            host, alice, SERVICE, NS_MICROBLOG, [atom_item("half")], "xep-0277"
        )
        await host.memory.storage.update_pubsub_node_sync_state(node, SyncState.IN_PROGRESS)
        await host.stop()  # as if the process had died during the synchronisation

        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING") as logs:
            host = await make_host(self, db_url=url)
        self.assertIn("half-synchronised", logs.output[0])
        node = await host.memory.storage.get_pubsub_node(
            alice, SERVICE, NS_MICROBLOG, with_items=True
        )
        self.assertEqual((node.sync_state, node.items), (None, []))
        with self.assertRaisesRegex(RuntimeError, NOT_CONNECTED):
            await host.plugins["XEP-0060"].get_items(alice, SERVICE, NS_MICROBLOG)


class AdminTests(CacheTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        await self.blog(3)
        other = await self.storage.set_pubsub_node(self.alice, SERVICE, "other", type_="list")
        await self.cache.cache_items(self.alice, other, [atom_item("o")])
        await self.storage.update_pubsub_node_sync_state(other, SyncState.COMPLETED)

    async def test_purge_by_type(self) -> None:
        """Purge by node type removes those items; the node is no longer served."""
        self.assertEqual(await self.cache.purge({"types": ["blog"]}), 3)
        blog = await self.stored(self.alice)
        self.assertEqual((blog.items, blog.sync_state), ([], None))
        other = await self.stored(self.alice, "other")
        self.assertEqual((len(other.items), other.sync_state), (1, SyncState.COMPLETED))

    async def test_purge_by_date(self) -> None:
        """Items created before a date are removed; newer nodes keep theirs."""
        future = datetime.now(UTC) + timedelta(days=1)
        self.assertEqual(await self.cache.purge({"nodes": ["other"], "created_before": future}), 1)
        past = datetime.now(UTC) - timedelta(days=1)
        self.assertEqual(await self.cache.purge({"created_before": past}), 0)
        self.assertEqual((await self.stored(self.alice)).sync_state, SyncState.COMPLETED)

    async def test_purge_by_profile(self) -> None:
        """Purge by profile leaves other profiles' caches alone."""
        bob = await offline_client(self.host, "bob")
        await self.blog(2, bob)
        self.assertEqual(await self.cache.purge({"profiles": ["bob"]}), 2)
        self.assertEqual(len((await self.stored(self.alice)).items), 3)

    async def test_purge_unknown_filter(self) -> None:
        """An unknown purge filter is a ValueError naming it."""
        with self.assertRaisesRegex(ValueError, "'names'"):
            await self.cache.purge({"names": ["x"]})

    async def test_reset(self) -> None:
        """reset() removes every cached node and item."""
        await self.cache.reset()
        self.assertEqual(await self.storage.get_pubsub_nodes(), [])


class SearchTests(CacheTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        await self.blog(3)
        self.bob = await offline_client(self.host, "bob")
        await self.blog(1, self.bob)

    async def test_search(self) -> None:
        """search() passes the query to the storage (scoped by profiles)."""
        items = await self.cache.search(
            {"profiles": ["alice"], "parsed": [{"path": ["title"], "op": "==", "value": "title 1"}]}
        )
        self.assertEqual([i.name for i in items], ["item-01"])

    async def test_unscoped_search_refused(self) -> None:
        """A search naming no profiles needs the explicit admin flag."""
        with self.assertRaisesRegex(ValueError, "profiles"):
            await self.cache.search({})
        self.assertEqual(len(await self.cache.search({}, all_profiles=True)), 4)

    async def test_serialisable_search(self) -> None:
        """Results are dicts: parsed data plus service, node, item, profile, payload."""
        query = {"profiles": ["bob"], "with_payload": True}
        results = await self.cache.serialisable_search(query)
        self.assertEqual(query, {"profiles": ["bob"], "with_payload": True})
        self.assertEqual(len(results), 1)
        result = results[0]
        self.assertEqual(
            {
                k: result[k]
                for k in ("pubsub_service", "pubsub_node", "pubsub_item", "node_profile", "title")
            },
            {
                "pubsub_service": "pubsub.example.org",
                "pubsub_node": NS_MICROBLOG,
                "pubsub_item": "item-00",
                "node_profile": "bob",
                "title": "title 0",
            },
        )
        self.assertEqual(result["item_payload"], atom_item("item-00", "title 0").toXml())

    async def test_bad_query(self) -> None:
        """A bad query is a ValueError naming the culprit."""
        with self.assertRaisesRegex(ValueError, "bogus"):
            await self.cache.serialisable_search({"profiles": ["alice"], "bogus": 1})


class ReadCostTests(CacheTestCase):
    """What one cached read costs (see twisted_tests.pubsub_cache.read_cost)."""

    async def test_hit_checked_once_one_transaction(self) -> None:
        """A cached get_items checks its arguments once and is one transaction."""
        await self.blog(30)
        cost, (items, _) = await count_read_cost(
            lambda: self.xep_0060.get_items(self.alice, SERVICE, NS_MICROBLOG, max_items=10)
        )
        self.assertEqual(ids(items), [f"item-{i:02d}" for i in range(20, 30)])
        self.assertEqual(
            cost.as_dict(),
            {
                "argument_checks": 1,
                "checks_by_layer": {"XEP-0060 get_items": 1},
                "gateway_runs": 1,
            },
        )

    async def test_rsm_page_one_transaction(self) -> None:
        """An RSM page from the cache is one transaction too (node look-up + page)."""
        await self.blog(30)
        cost, (items, metadata) = await count_read_cost(
            lambda: self.xep_0060.get_items(
                self.alice, SERVICE, NS_MICROBLOG, rsm_request=RSMRequest(5, after="item-09")
            )
        )
        self.assertEqual(ids(items), [f"item-{i:02d}" for i in range(10, 15)])
        self.assertEqual((metadata["rsm"]["index"], cost.transactions), (10, 1))

    async def test_trigger_fired_by_a_caller(self) -> None:
        """A caller firing the trigger point itself (Libervia's arguments, a plain
        extra) is answered from the cache as well."""
        await self.blog(3)
        cont, (items, metadata) = await self.host.trigger.async_return_point(
            "XEP-0060_getItems", self.alice, SERVICE, NS_MICROBLOG, 2, None, None, None, {}
        )
        self.assertEqual((cont, ids(items)), (False, ["item-01", "item-02"]))
        self.assertEqual(metadata["uri"], get_node_uri(SERVICE, NS_MICROBLOG))

    async def test_bad_order_refused_before_the_database(self) -> None:
        """An unknown extra["order_by"] is refused, naming it, with no transaction."""
        await self.blog(3)
        with counting() as cost:
            with self.assertRaisesRegex(ValueError, "unknown order 'rank'"):
                await self.xep_0060.get_items(
                    self.alice, SERVICE, NS_MICROBLOG, extra={"order_by": "rank"}
                )
        self.assertEqual(cost.transactions, 0)
