"""XEP-0060 get_items answered by the storage's read cache: never stale, own elements.

On a real host and database, with an offline client (what would go to the network
fails with "not connected"). Each write the cache plugin makes (pubsub events,
purge, reset, catch-up) is followed by a request whose answer must be what the
database holds; a hit reads no item row (statements watched on the engine).
"""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (before wokkel)

# isort: split
from typing import Any

from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from sat_storage.plugins.pubsub_cache import service_order
from wokkel.pubsub import DeleteEvent, ItemsEvent, PurgeEvent

from sat_storage import ItemsQuery
from twisted_tests.pubsub_cache.read_cost import count_read_cost
from twisted_tests.pubsub_cache.test_cache_storage import (
    SERVICE,
    CacheTestCase,
    event_item,
    ids,
    retract,
)
from twisted_tests.storage.pubsub_helpers import item_reads

NEWEST = 3


class ReadCacheTests(CacheTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.node = await self.blog(10)
        await self.assert_hit()

    def get(self, max_items: int | None = NEWEST, **kwargs: Any) -> Any:
        return self.xep_0060.get_items(self.alice, SERVICE, NS_MICROBLOG, max_items, **kwargs)

    def item_reads(self) -> Any:
        """The statements reading ``pubsub_items`` run meanwhile (a list filled later)."""
        return item_reads(self.storage)

    async def assert_hit(self) -> None:
        """The newest items, asked twice: the second answer reads no item row."""
        await self.get()
        with self.item_reads() as reads:
            await self.get()
        self.assertEqual(reads, [])

    async def assert_as_database(self) -> list[str]:
        """The answer is what the database holds (in the service's order: the page read
        by get_items' transaction, no read cache); its ids."""
        items, _ = await self.get()
        node = await self.storage.get_pubsub_node(self.alice, SERVICE, NS_MICROBLOG)
        order = service_order.default_order(node)
        query = ItemsQuery(max_items=NEWEST, order_by=order)
        stored, _ = await self.storage.db.run(self.storage.get_items_txn, node.id, query)
        self.assertEqual([i.toXml() for i in items], [i.data.toXml() for i in stored])
        return ids(items)

    def items_event(self, *elements: Any) -> ItemsEvent:
        return ItemsEvent(SERVICE, self.alice.jid, NS_MICROBLOG, list(elements), {})

    async def test_items_event(self) -> None:
        """New and republished items notified are in the next answer."""
        await self.cache.on_items_event(
            self.alice, self.items_event(event_item("new", "N"), event_item("item-09", "U"))
        )
        self.assertEqual(await self.assert_as_database(), ["item-08", "item-09", "new"])
        items, _ = await self.get()
        self.assertIn("U", items[1].toXml())

    async def test_retract_event(self) -> None:
        """A retracted item is gone from the next answer."""
        await self.cache.on_items_event(self.alice, self.items_event(retract("item-09")))
        self.assertEqual(await self.assert_as_database(), ["item-06", "item-07", "item-08"])

    async def test_purge_event(self) -> None:
        """A purge notified empties the next answer."""
        await self.cache.on_purge_event(
            self.alice, PurgeEvent(SERVICE, self.alice.jid, NS_MICROBLOG, {})
        )
        self.assertEqual(await self.assert_as_database(), [])

    async def test_delete_event(self) -> None:
        """A node deletion notified: the next request goes to the network."""
        await self.cache.on_delete_event(
            self.alice, DeleteEvent(SERVICE, self.alice.jid, NS_MICROBLOG, {})
        )
        await self.assert_network(self.get())

    async def test_plugin_purge(self) -> None:
        """The cache's purge (admin): the node is no longer synchronised, the next
        request goes to the network."""
        await self.cache.purge({"nodes": [NS_MICROBLOG]})
        await self.assert_network(self.get())

    async def test_reset(self) -> None:
        """A reset: the next request goes to the network."""
        await self.cache.reset()
        await self.assert_network(self.get())

    async def test_catch_up(self) -> None:
        """A catch-up's changes (written as the freshness check writes them) are in
        the next answer."""
        await self.storage.catch_up_pubsub_items(
            self.alice, self.node, [event_item("item-08", "C")], None, ["item-09"],
            [event_item("late", "L")], None,
        )  # fmt: skip
        self.assertEqual(await self.assert_as_database(), ["item-07", "item-08", "late"])

    async def test_elements_own(self) -> None:
        """Elements answered twice are distinct objects: changing one changes no later
        answer."""
        first, _ = await self.get()
        before = [item.toXml() for item in first]
        first[0]["id"] = "changed"
        first[-1].children.clear()
        second, _ = await self.get()
        self.assertEqual([item.toXml() for item in second], before)
        self.assertTrue(all(a is not b for a, b in zip(first, second, strict=True)))

    async def test_moving_service_one_transaction(self) -> None:
        """A node whose service moves republished items (Prosody) is read in its order
        in the one transaction, once its policy was read (after a commit elsewhere: on
        SQLite a hit with no commit since would make none)."""
        await self.storage.update_pubsub_node_extra(
            self.node, {service_order.EXTRA_REPUBLISH: service_order.MOVE}
        )
        await self.cache.on_items_event(self.alice, self.items_event(event_item("item-02", "M")))
        await self.get()  # the policy is read with the node
        await self.storage.set_pubsub_node(self.alice, SERVICE, "elsewhere")  # a commit
        cost, (items, _) = await count_read_cost(self.get)
        self.assertEqual((ids(items), cost.transactions), (["item-08", "item-09", "item-02"], 1))
        self.assertEqual(await self.assert_as_database(), ["item-08", "item-09", "item-02"])
