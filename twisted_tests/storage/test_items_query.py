"""ItemsQuery (a get_items request checked once) and get_synced_items (one transaction)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from twisted.trial.unittest import TestCase

from sat_storage import ItemsQuery, Storage
from sat_storage.exceptions import ArgumentTypeError, NotFound
from sat_storage.models import SyncState
from sat_storage.storage import items_query, pubsub_paging
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.pubsub_helpers import (
    OTHER_SERVICE,
    SERVICE,
    Client,
    gateway_calls,
    make_items,
)

NAMES = [f"i{n}" for n in range(10)]  # cached in this order
# requests of every kind get_items answers
REQUESTS: list[dict[str, Any]] = [
    {},
    {"max_items": 3},
    {"max_items": 3, "desc": False},
    {"max_items": 0},
    {"max_items": 3, "after": "i2"},
    {"max_items": 3, "before": "i5"},
    {"max_items": 3, "before": ""},
    {"max_items": 3, "from_index": 4},
    {"item_ids": ["i4", "i1", "i4", "nope"], "max_items": 1},
    {"item_ids": ["i1", "i3", "i5"], "after": "i1", "max_items": 1},
    {"max_items": 4, "order_by": ["creation"], "force_rsm": True},
]
# bad requests, each refused by get_items
BAD_REQUESTS: list[dict[str, Any]] = [
    {"order_by": ["colour"]},
    {"before": "i1", "after": "i2"},
    {"after": "i1", "from_index": 2},
    {"max_items": -1},
    {"max_items": "3"},
    {"max_items": True},
    {"after": ""},
    {"item_ids": [1]},
    {"item_ids": [""]},
    {"order_by": "creation"},
    {"desc": "yes"},
    {"force_rsm": None},
    {"from_index": 2**63},
]


def get_items_parameters() -> list[inspect.Parameter]:
    """The parameters of Storage.get_items after ``node`` (Libervia's signature)."""
    return list(inspect.signature(Storage.get_items).parameters.values())[2:]


class ItemsQueryTests(TestCase):
    """The value object alone (no database)."""

    def test_fields_mirror_get_items(self) -> None:
        """The fields are get_items' keyword arguments, in order, with its defaults."""
        fields = [f for f in dataclasses.fields(ItemsQuery) if f.init]
        self.assertEqual(
            [(f.name, f.default) for f in fields],
            [(p.name, p.default) for p in get_items_parameters()],
        )

    def test_exported(self) -> None:
        """ItemsQuery is reachable from sat_storage and sat_storage.storage."""
        from sat_storage import storage

        self.assertIs(storage.ItemsQuery, ItemsQuery)
        self.assertIs(items_query.ItemsQuery, ItemsQuery)

    def test_normalised(self) -> None:
        """item_ids become a tuple of unique ids in first-seen order; order_by a tuple."""
        query = ItemsQuery(item_ids=["b", "a", "b"], order_by=["creation"])
        self.assertEqual(query.item_ids, ("b", "a"))
        self.assertEqual(query.order_by, ("creation",))
        self.assertEqual(query.keys, items_query.order_keys(["creation"]))

    def test_default_keys(self) -> None:
        """Without order_by the keyset is Libervia's default order's."""
        self.assertEqual(ItemsQuery().keys, items_query.order_keys(None))

    def test_frozen(self) -> None:
        """A query cannot be changed once checked."""
        query = ItemsQuery(max_items=3)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            query.max_items = -1  # type: ignore[misc]

    def test_replace_checks_again(self) -> None:
        """dataclasses.replace builds a new query, checked like any other."""
        query = ItemsQuery(max_items=3, before="i5")
        with self.assertRaisesRegex(ValueError, "before"):
            dataclasses.replace(query, after="i2")

    def test_equal_queries(self) -> None:
        """Queries of the same arguments are equal and hash alike (usable as keys)."""
        first = ItemsQuery(max_items=3, item_ids=["a", "a"])
        second = ItemsQuery(max_items=3, item_ids=("a",))
        self.assertEqual(first, second)
        self.assertEqual(hash(first), hash(second))

    def test_wrong_type_is_value_error(self) -> None:
        """A wrong type is a ValueError naming the argument (and a TypeError)."""
        with self.assertRaisesRegex(ValueError, "max_items") as caught:
            ItemsQuery(max_items="3")  # type: ignore[arg-type]
        self.assertIsInstance(caught.exception, TypeError)
        self.assertIsInstance(caught.exception, ArgumentTypeError)

    def test_in_order(self) -> None:
        """in_order gives the same query in another order: equal to one built with it."""
        query = ItemsQuery(max_items=3, after="i2", desc=False)
        self.assertEqual(
            query.in_order(["creation"]),
            ItemsQuery(max_items=3, after="i2", desc=False, order_by=["creation"]),
        )
        self.assertEqual(query.in_order(["creation"]).keys, items_query.order_keys(["creation"]))
        self.assertEqual(query.order_by, None)  # the original is untouched

    def test_hash_of_in_order(self) -> None:
        """A query hashed, then put in another order, hashes as one built in that order
        (the hash is kept per query: a cache key)."""
        query = ItemsQuery(max_items=3, desc=False)
        hash(query)
        built = ItemsQuery(max_items=3, desc=False, order_by=["creation"])
        self.assertEqual(hash(query.in_order(["creation"])), hash(built))
        self.assertEqual({query.in_order(["creation"]): 1}.get(built), 1)

    def test_in_order_unknown_order(self) -> None:
        """in_order refuses an unknown order, naming it."""
        with self.assertRaisesRegex(ValueError, "colour"):
            ItemsQuery().in_order(["colour"])

    def test_too_many_ids(self) -> None:
        """More unique item_ids than MAX_ITEMS_BATCH are refused."""
        ids = [f"i{n}" for n in range(items_query.MAX_ITEMS_BATCH + 1)]
        with self.assertRaisesRegex(ValueError, "item_ids"):
            ItemsQuery(item_ids=ids)


class GetItemsQueryTests(TestCase):
    """get_items with arguments or with a ready ItemsQuery."""

    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.node = await self.storage.set_pubsub_node(Client("alice"), SERVICE, "blog")
        await self.storage.cache_pubsub_items(Client("alice"), self.node, make_items(NAMES))

    async def test_same_page(self) -> None:
        """get_items(node, ItemsQuery(**kw)) gives what get_items(node, **kw) gives."""
        for kwargs in REQUESTS:
            items, metadata = await self.storage.get_items(self.node, **kwargs)
            q_items, q_metadata = await self.storage.get_items(self.node, ItemsQuery(**kwargs))
            self.assertEqual([i.name for i in q_items], [i.name for i in items], kwargs)
            self.assertEqual(q_metadata, metadata, kwargs)

    async def test_same_errors(self) -> None:
        """ItemsQuery refuses what get_items refuses, with the same error and message."""
        for kwargs in BAD_REQUESTS:
            with self.assertRaises(Exception) as by_storage:
                await self.storage.get_items(self.node, **kwargs)
            with self.assertRaises(Exception) as by_query:
                ItemsQuery(**kwargs)
            self.assertIsInstance(by_storage.exception, (TypeError, ValueError), kwargs)
            self.assertIs(type(by_query.exception), type(by_storage.exception), kwargs)
            self.assertEqual(str(by_query.exception), str(by_storage.exception), kwargs)

    def queries_built(self) -> list[ItemsQuery]:
        """The queries built (checked) from now on; the queries of arguments seen
        before, kept by get_items, forgotten first."""
        built: list[ItemsQuery] = []
        checks = ItemsQuery.__post_init__

        def counting(query: ItemsQuery) -> None:
            built.append(query)
            checks(query)

        self.patch(ItemsQuery, "__post_init__", counting)
        pubsub_paging._plain_query.cache_clear()
        return built

    async def test_ready_query_not_checked_again(self) -> None:
        """A ready query is read as is: get_items builds no other query."""
        query = ItemsQuery(max_items=2)
        built = self.queries_built()
        items, _ = await self.storage.get_items(self.node, query)
        self.assertEqual([i.name for i in items], NAMES[-2:])
        self.assertEqual(built, [])
        await self.storage.get_items(self.node, max_items=2)
        self.assertEqual(len(built), 1)

    async def test_plain_arguments_checked_once(self) -> None:
        """The query of the newest or oldest page's arguments is built once and kept
        (it is immutable); a refused value is refused at every call."""
        built = self.queries_built()
        for _ in range(2):
            items, _ = await self.storage.get_items(self.node, max_items=2, desc=False)
            self.assertEqual([i.name for i in items], NAMES[:2])
        self.assertEqual(len(built), 1)
        for _ in range(2):
            with self.assertRaisesRegex(ValueError, "max_items"):
                await self.storage.get_items(self.node, max_items=-1)
        with self.assertRaisesRegex(TypeError, "max_items"):
            await self.storage.get_items(self.node, max_items=True)
        self.assertEqual(len(built), 4)

    async def test_query_takes_no_other_argument(self) -> None:
        """A query given with other arguments is refused, naming the mistake."""
        with self.assertRaisesRegex(ValueError, "ItemsQuery"):
            await self.storage.get_items(self.node, ItemsQuery(max_items=2), desc=False)

    def test_bad_node_failed_deferred(self) -> None:
        """A refused argument comes as a failed Deferred, not raised at the call."""
        d = self.storage.get_items("blog")  # type: ignore[arg-type]
        failure = self.failureResultOf(d, TypeError)
        self.assertIn("node", str(failure.value))


class GetSyncedItemsTests(TestCase):
    """get_synced_items: node look-up and page in one transaction."""

    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(NAMES))
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.COMPLETED)

    def count_transactions(self) -> list[Any]:
        """The functions the storage runs in the gateway from now on (a list filled later)."""
        return gateway_calls(self, self.storage)

    async def test_completed_node_page(self) -> None:
        """A COMPLETED node gives (node, page), the page exactly as get_items gives it."""
        for kwargs in REQUESTS:
            node, page = await self.storage.get_synced_items(
                self.alice, SERVICE, "blog", ItemsQuery(**kwargs)
            )
            self.assertEqual((node.id, node.sync_state), (self.node.id, SyncState.COMPLETED))
            items, metadata = await self.storage.get_items(self.node, **kwargs)
            self.assertEqual([i.name for i in page[0]], [i.name for i in items], kwargs)
            self.assertEqual(page[1], metadata, kwargs)

    async def test_items_loaded(self) -> None:
        """The page's items carry their XML and parsed data (nothing lazy)."""
        _, (items, _) = await self.storage.get_synced_items(
            self.alice, SERVICE, "blog", ItemsQuery(max_items=1)
        )
        self.assertEqual(items[0].data["id"], NAMES[-1])

    async def test_one_transaction(self) -> None:
        """A cached read is one gateway transaction (node look-up and page)."""
        calls = self.count_transactions()
        node, page = await self.storage.get_synced_items(
            self.alice, SERVICE, "blog", ItemsQuery(max_items=2)
        )
        self.assertIsNotNone(page)
        self.assertEqual(len(calls), 1)

    async def test_not_synchronised(self) -> None:
        """A node in any other sync state gives (node, None): no page is read."""
        for state in (None, SyncState.IN_PROGRESS, SyncState.ERROR, SyncState.NO_SYNC):
            await self.storage.update_pubsub_node_sync_state(self.node, state)
            node, page = await self.storage.get_synced_items(
                self.alice, SERVICE, "blog", ItemsQuery(max_items=2)
            )
            self.assertEqual((node.id, node.sync_state, page), (self.node.id, state, None))

    async def test_unknown_node(self) -> None:
        """An unknown node (other name, service or profile) gives (None, None)."""
        query = ItemsQuery()
        for client, service, name in (
            (self.alice, SERVICE, "other"),
            (self.alice, OTHER_SERVICE, "blog"),
            (Client("bob"), SERVICE, "blog"),
        ):
            result = await self.storage.get_synced_items(client, service, name, query)
            self.assertEqual(result, (None, None))

    async def test_unknown_cursor(self) -> None:
        """An RSM cursor that is not a cached item raises NotFound."""
        with self.assertRaisesRegex(NotFound, "nope"):
            await self.storage.get_synced_items(
                self.alice, SERVICE, "blog", ItemsQuery(max_items=2, after="nope")
            )

    async def test_bad_arguments(self) -> None:
        """A query that is not an ItemsQuery, or a bad service, is refused, named."""
        with self.assertRaisesRegex(ValueError, "query"):
            await self.storage.get_synced_items(self.alice, SERVICE, "blog", {"max_items": 2})
        with self.assertRaisesRegex(TypeError, "service"):
            await self.storage.get_synced_items(self.alice, "pubsub.example.org", "blog", None)
