"""Read-only figures of the pubsub cache: count_pubsub_items and get_pubsub_stats."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.orm import Session
from twisted.trial.unittest import TestCase

from sat_storage.exceptions import ProfileUnknownError
from sat_storage.models import PubsubItem, SyncState
from sat_storage.xml_tools import to_xml
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.pubsub_helpers import (
    OTHER_SERVICE,
    SERVICE,
    Client,
    make_item,
    make_items,
    snapshot,
)

UTC_10H = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
UTC_11H = datetime(2024, 1, 1, 11, 0, tzinfo=UTC)
UTC_12H = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

#: (profile, service, node, type, subtype): each node holds the items "old" and "new"
NODES = [
    ("alice", SERVICE, "blog", "blog", None),
    ("alice", SERVICE, "events", "event", "meeting"),
    ("alice", OTHER_SERVICE, "blog", None, None),
    ("bob", SERVICE, "blog", "blog", None),
]


def set_times(session: Session) -> None:
    """ "old" items created and updated at 10:00 UTC, "new" ones at 12:00 UTC."""
    for name, moment in (("old", UTC_10H), ("new", UTC_12H)):
        session.execute(
            update(PubsubItem).where(PubsubItem.name == name).values(created=moment, updated=moment)
        )


class CountTests(TestCase):
    """count_pubsub_items: the purge's filters, nothing deleted."""

    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        for profile, service, name, type_, subtype in NODES:
            node = await self.storage.set_pubsub_node(
                Client(profile), service, name, type_=type_, subtype=subtype
            )
            await self.storage.cache_pubsub_items(Client(profile), node, make_items(["old", "new"]))
        await self.storage.db.run(set_times)

    async def test_no_filter(self) -> None:
        """Without filters every cached item is counted."""
        self.assertEqual(await self.storage.count_pubsub_items(), 8)

    async def test_each_filter(self) -> None:
        """Each filter selects as the purge does (None in types: nodes without a type)."""
        count = self.storage.count_pubsub_items
        self.assertEqual(await count(services=[OTHER_SERVICE]), 2)
        self.assertEqual(await count(names=["events"]), 2)
        self.assertEqual(await count(types=[None]), 2)
        self.assertEqual(await count(types=["blog", None]), 6)
        self.assertEqual(await count(subtypes=["meeting"]), 2)
        self.assertEqual(await count(profiles=["bob"]), 2)
        self.assertEqual(await count(created_before=UTC_11H), 4)
        self.assertEqual(await count(updated_before=UTC_12H), 4)

    async def test_filters_combine(self) -> None:
        """Node and date filters combine (all must match)."""
        count = await self.storage.count_pubsub_items(
            services=[SERVICE], types=["blog"], profiles=["alice"], created_before=UTC_11H
        )
        self.assertEqual(count, 1)

    async def test_is_what_purge_deletes(self) -> None:
        """The count is the number the purge with the same filters deletes."""
        filters = {"types": ["blog", None], "updated_before": UTC_11H}
        counted = await self.storage.count_pubsub_items(**filters)
        self.assertEqual(counted, 3)
        self.assertEqual(await self.storage.purge_pubsub_items(**filters), counted)
        self.assertEqual(await self.storage.count_pubsub_items(**filters), 0)

    async def test_read_only(self) -> None:
        """Counting changes no row."""
        before = await snapshot(self.storage)
        await self.storage.count_pubsub_items(profiles=["alice"])
        self.assertEqual(await snapshot(self.storage), before)

    async def test_long_filters_with_repeats(self) -> None:
        """Lists longer than one IN chunk, repeating values across chunks, count once."""
        names = ["events", *(f"unused-{i}" for i in range(1100)), "events"]
        types = [None, *(f"unused-{i}" for i in range(600)), "event", None]
        self.assertEqual(await self.storage.count_pubsub_items(names=names), 2)
        self.assertEqual(await self.storage.count_pubsub_items(types=types), 4)

    async def test_empty_filter(self) -> None:
        """An empty filter list matches nothing."""
        self.assertEqual(await self.storage.count_pubsub_items(profiles=[]), 0)

    async def test_bad_arguments(self) -> None:
        """Bad filters raise naming the argument, as for the purge."""
        with self.assertRaisesRegex(TypeError, "updated_before"):
            await self.storage.count_pubsub_items(updated_before="2024-01-01")
        with self.assertRaisesRegex(TypeError, r"services\[0\]"):
            await self.storage.count_pubsub_items(services=["pubsub.example.org"])
        with self.assertRaisesRegex(TypeError, r"subtypes\[1\]"):
            await self.storage.count_pubsub_items(subtypes=[None, 3])
        with self.assertRaises(ProfileUnknownError):
            await self.storage.count_pubsub_items(profiles=["nobody"])


class StatsTests(TestCase):
    """get_pubsub_stats: nodes per state and type, items and their size in bytes."""

    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob", "carol")
        alice, bob = Client("alice"), Client("bob")
        self.items = [make_item("a", "Ünïcødé ✓ 漢字"), make_item("b")]
        blog = await self.storage.set_pubsub_node(alice, SERVICE, "blog", type_="blog")
        await self.storage.cache_pubsub_items(alice, blog, self.items)
        await self.storage.update_pubsub_node_sync_state(blog, SyncState.COMPLETED)
        events = await self.storage.set_pubsub_node(
            alice, SERVICE, "events", type_="event", subtype="meeting"
        )
        await self.storage.update_pubsub_node_sync_state(events, SyncState.ERROR)
        misc = await self.storage.set_pubsub_node(bob, OTHER_SERVICE, "misc")
        await self.storage.cache_pubsub_items(bob, misc, self.items[1:])

    def xml_size(self, *indexes: int) -> int:
        """Bytes of the UTF-8 XML of the test items at ``indexes``."""
        return sum(len(to_xml(self.items[i]).encode()) for i in indexes)

    async def test_totals(self) -> None:
        """Nodes, items and the size in bytes (not characters) of their XML."""
        stats = await self.storage.get_pubsub_stats()
        self.assertEqual(
            (stats["nodes"], stats["items"], stats["size"]), (3, 3, self.xml_size(0, 1, 1))
        )

    async def test_by_state(self) -> None:
        """Nodes are counted per sync state; None is a node never synchronised."""
        stats = await self.storage.get_pubsub_stats()
        self.assertEqual(stats["by_state"], {SyncState.COMPLETED: 1, SyncState.ERROR: 1, None: 1})

    async def test_by_type(self) -> None:
        """Per (type, subtype), None first; a node without items counts 0 items, 0 bytes."""
        stats = await self.storage.get_pubsub_stats()
        self.assertEqual(
            stats["by_type"],
            [
                {"type": None, "subtype": None, "nodes": 1, "items": 1, "size": self.xml_size(1)},
                {
                    "type": "blog",
                    "subtype": None,
                    "nodes": 1,
                    "items": 2,
                    "size": self.xml_size(0, 1),
                },
                {"type": "event", "subtype": "meeting", "nodes": 1, "items": 0, "size": 0},
            ],
        )

    async def test_profiles(self) -> None:
        """``profiles`` restricts the figures to those profiles (a repeat counts once)."""
        stats = await self.storage.get_pubsub_stats(["bob", "bob"])
        self.assertEqual((stats["nodes"], stats["items"]), (1, 1))
        self.assertEqual(stats["by_state"], {None: 1})

    async def test_profile_without_cache(self) -> None:
        """A profile caching nothing has zero figures and no rows."""
        stats = await self.storage.get_pubsub_stats(["carol"])
        self.assertEqual(stats, {"nodes": 0, "items": 0, "size": 0, "by_state": {}, "by_type": []})

    async def test_unknown_profile(self) -> None:
        """An unknown profile is ProfileUnknownError, before the database is read."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.get_pubsub_stats(["nobody"])

    async def test_bad_profiles(self) -> None:
        """``profiles`` that is not a list of names raises TypeError naming it."""
        with self.assertRaisesRegex(TypeError, "profiles"):
            await self.storage.get_pubsub_stats("alice")
