"""Writes of this storage followed by reads of the read cache: the scenarios shared by
the tests of ``get_items`` (test_items_cache.py) and of ``get_synced_items``
(test_read_cache.py)."""

from __future__ import annotations

from typing import Any

from sat_storage import ItemsQuery
from twisted_tests.storage.pubsub_helpers import make_item

#: the newest 3 items in creation order
CREATED = ItemsQuery(max_items=3, order_by=("creation",))
#: a writer in another process: raw SQL on the same database (no storage code)
RAW_WRITER = """
import sys
import sqlalchemy as sa
engine = sa.create_engine(sys.argv[1])
with engine.begin() as connection:
    connection.execute(sa.text(sys.argv[2]), {"name": sys.argv[3]})
engine.dispose()
"""


class ThisProcessWrites:
    """After each write of this storage, the next read is the database's.

    A mixin of a ``TestCase`` whose node ``self.node`` of ``self.client`` holds items
    ``i0``...``i9``, every page of which was read (kept by the cache) in ``setUp``;
    :meth:`page` reads a page of it through the API under test and
    ``assert_as_database()`` compares every query's answer with the database's.
    """

    storage: Any
    node: Any
    client: Any
    assertEqual: Any
    assert_as_database: Any  # the test case's
    page: Any  # async (query) -> (items, metadata): the node's page, by the API under test

    async def created_names(self) -> list[str]:
        items, _ = await self.page(CREATED)
        return [item.name for item in items]

    async def test_new_and_edited_items(self) -> None:
        """New items and an edited one are seen at once."""
        items = [make_item("new"), make_item("i8", "edited")]
        await self.storage.cache_pubsub_items(self.client, self.node, items)
        await self.assert_as_database()
        self.assertEqual(await self.created_names(), ["i8", "i9", "new"])

    async def test_retracted(self) -> None:
        """Deleted items are gone at once, cursors on them too."""
        await self.storage.delete_pubsub_items(self.node, ["i9", "i3", "i4", "i6"])
        await self.assert_as_database()
        self.assertEqual(await self.created_names(), ["i5", "i7", "i8"])

    async def test_purge(self) -> None:
        """A purge (of every node) empties the pages."""
        await self.storage.purge_pubsub_items()
        await self.assert_as_database()
        items, metadata = await self.page(ItemsQuery(max_items=3))
        self.assertEqual((items, metadata["rsm"]["count"]), ([], 0))

    async def test_catch_up(self) -> None:
        """A catch-up (changed, removed, appended in one transaction) is seen at once."""
        await self.storage.catch_up_pubsub_items(
            self.client, self.node, [make_item("i2", "changed")], None, ["i9"],
            [make_item("late")], None,
        )  # fmt: skip
        await self.assert_as_database()
        self.assertEqual(await self.created_names(), ["i7", "i8", "late"])
