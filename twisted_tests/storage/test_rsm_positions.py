"""Marks of positions (rsm_positions.py): built when due, never used once stale."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from sat_storage.storage import rsm_positions
from twisted_tests.db import make_storage, storage_with_profiles
from twisted_tests.storage.pubsub_helpers import SERVICE, Client, make_item, make_items

ALICE = Client("alice")
NAMES = [f"i{n}" for n in range(10)]


class MarksTests(TestCase):
    async def setUp(self) -> None:
        self.patch(rsm_positions, "STEP", 2)
        self.patch(rsm_positions, "MIN_ITEMS", 0)
        self.patch(rsm_positions, "_cache", type(rsm_positions._cache)())
        self.storage = await storage_with_profiles(self, "alice")
        self.storage.read_cache.max_items = 0  # every page read from the database
        self.node = await self.storage.set_pubsub_node(ALICE, SERVICE, "blog")
        await self.storage.cache_pubsub_items(ALICE, self.node, make_items(NAMES))

    async def expected(self, order: str, **kwargs: Any) -> tuple[list[str], int | None]:
        """Names and index of a page, from the whole node read in order."""
        everything, _ = await self.storage.get_items(self.node, order_by=[order], desc=False)
        names = [i.name for i in everything]
        if "after" in kwargs:
            start = names.index(kwargs["after"]) + 1
        else:
            start = kwargs["from_index"]
        page = names[start : start + 2]
        return page, start if page else None

    async def page(self, order: str, **kwargs: Any) -> tuple[list[str], int | None]:
        items, metadata = await self.storage.get_items(
            self.node, max_items=2, order_by=[order], **kwargs
        )
        return [i.name for i in items], metadata["rsm"]["index"]

    def marks(self) -> list[Any]:
        return [v for v in rsm_positions._cache.values() if isinstance(v, rsm_positions._Marks)]

    async def test_built_at_the_second_read(self) -> None:
        """The first read of a version counts; the second builds the marks (at that
        version) and answers the same."""
        first = await self.page("creation", after="i6")
        self.assertEqual(self.marks(), [])
        self.assertEqual(await self.page("creation", after="i6"), first)
        self.assertEqual(first, await self.expected("creation", after="i6"))
        node = await self.storage.get_pubsub_node(ALICE, SERVICE, "blog")
        self.assertEqual([m.version for m in self.marks()], [node.items_version])

    async def test_writes_of_another_storage(self) -> None:
        """Marks of a node another storage (process) wrote since are not used: pages
        and indexes follow its writes, in both orders and for from_index."""
        self.patch(rsm_positions, "BUILD_AT", 1)
        for order in ("creation", "modification"):
            await self.page(order, after="i6")
        other = await make_storage(self, self.storage.db_url)
        node = await other.get_pubsub_node(ALICE, SERVICE, "blog")
        await other.delete_pubsub_items(node, ["i1", "i2"])
        await other.cache_pubsub_items(ALICE, node, [make_item("i3", "edited"), make_item("new")])
        for order in ("creation", "modification"):
            for kwargs in ({"after": "i6"}, {"after": "i0"}, {"from_index": 5}):
                want = await self.expected(order, **kwargs)
                self.assertEqual(await self.page(order, **kwargs), want, (order, kwargs))
