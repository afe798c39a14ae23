"""Items of the reads (get_items, search) as Core rows: the ORM's values, lazily, unshared."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session
from twisted.trial.unittest import TestCase

from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.storage.item_reads import ItemRow
from sat_storage.xml_tools import to_xml
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.pubsub_helpers import SERVICE, Client, make_items

NAMES = ["a", "b", "c"]
PARSED = {"title": "t", "tags": ["x", "y"], "n": 2**60, "f": 0.5, "none": None}


def _fields(item: Any) -> tuple[Any, ...]:
    """What a caller reads of an item (the element as its XML)."""
    return (
        item.id,
        item.node_id,
        item.name,
        to_xml(item.data),
        item.created,
        item.updated,
        item.parsed,
    )


def _parsed_yet(item: ItemRow) -> bool:
    """True once the item's XML was parsed (its element slot is filled)."""
    try:
        ItemRow._data.__get__(item, ItemRow)
    except AttributeError:
        return False
    return True


class ItemRowTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        parsed = [dict(PARSED, title=name) for name in NAMES]
        parsed[1] = None  # an item without parsed data
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(NAMES), parsed)

    async def orm_items(self) -> list[tuple[Any, ...]]:
        """The items of the node as ORM entities give them, in creation order."""

        def txn(session: Session) -> list[tuple[Any, ...]]:
            stmt = select(PubsubItem).where(PubsubItem.node_id == self.node.id)
            return [_fields(item) for item in session.scalars(stmt.order_by(PubsubItem.id))]

        return await self.storage.db.run(txn)

    async def test_get_items_equal_orm(self) -> None:
        """get_items gives every field the ORM entity gives, with the same value."""
        items, _ = await self.storage.get_items(self.node, order_by=["creation"])
        self.assertEqual([_fields(i) for i in items], await self.orm_items())
        self.assertEqual(items[0].created.utcoffset().total_seconds(), 0)

    async def test_search_equal_orm(self) -> None:
        """search_pubsub_items gives every field the ORM entity gives."""
        items = await self.storage.search_pubsub_items({"profiles": ["alice"]})
        self.assertEqual([_fields(i) for i in items], await self.orm_items())

    async def test_by_ids_equal_orm(self) -> None:
        """get_items with item_ids gives the ORM's values too."""
        items, _ = await self.storage.get_items(self.node, item_ids=["c", "a"])
        orm = {fields[2]: fields for fields in await self.orm_items()}
        self.assertEqual([_fields(i) for i in items], [orm["a"], orm["c"]])

    async def test_xml_parsed_only_when_read(self) -> None:
        """Reading names and parsed data parses no XML; ``xml`` is the stored text."""
        items, _ = await self.storage.get_items(self.node, max_items=2)
        self.assertEqual([i.name for i in items], ["b", "c"])
        self.assertEqual(items[1].parsed["title"], "c")
        self.assertFalse(any(_parsed_yet(i) for i in items))
        self.assertEqual(items[1].xml, to_xml(make_items(["c"])[0]))
        self.assertFalse(_parsed_yet(items[1]))
        self.assertEqual(items[1].data["id"], "c")
        self.assertTrue(_parsed_yet(items[1]))

    async def test_elements_not_shared(self) -> None:
        """Two reads, and a copy, give elements of their own: editing one edits no other."""
        (first,), _ = await self.storage.get_items(self.node, max_items=1)
        (again,), _ = await self.storage.get_items(self.node, max_items=1)
        copy = first.copy()
        first.data["id"] = "edited"
        first.parsed["title"] = "edited"
        self.assertEqual((again.data["id"], again.parsed["title"]), ("c", "c"))
        self.assertEqual((copy.data["id"], copy.parsed["title"]), ("c", "c"))
        self.assertIs(first.data, first.data)  # one element per item, kept

    async def test_assigned_data(self) -> None:
        """Assigning ``data`` replaces the element; ``xml`` then says the new one."""
        (item,), _ = await self.storage.get_items(self.node, max_items=1)
        other = make_items(["z"])[0]
        item.data = other
        self.assertIs(item.data, other)
        self.assertEqual(item.xml, to_xml(other))

    async def test_get_items_node(self) -> None:
        """Items of get_items carry the node they were read from."""
        items, _ = await self.storage.get_items(self.node)
        self.assertTrue(all(item.node is self.node for item in items))

    async def test_search_node_detached(self) -> None:
        """A search's items carry a detached PubsubNode, usable with the storage."""
        other = await self.storage.set_pubsub_node(self.alice, SERVICE, "other", type_="blog")
        await self.storage.cache_pubsub_items(self.alice, other, make_items(["o"]))
        items = await self.storage.search_pubsub_items({"profiles": ["alice"]})
        nodes = [item.node for item in items]
        self.assertEqual([n.name for n in nodes], ["blog"] * 3 + ["other"])
        self.assertIs(nodes[0], nodes[2])  # one node object for the items of one node
        state = inspect(nodes[3])
        self.assertTrue(state.detached and state.has_identity)
        self.assertIsInstance(nodes[3], PubsubNode)
        self.assertEqual((nodes[3].id, nodes[3].type_), (other.id, "blog"))
        with self.assertRaises(InvalidRequestError):  # lazy="raise", as when loaded
            nodes[3].items  # noqa: B018
        page, _ = await self.storage.get_items(nodes[3])
        self.assertEqual([i.name for i in page], ["o"])
