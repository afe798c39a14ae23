"""Caching, deleting and purging pubsub items in the storage."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage.exceptions import NotFound, ProfileUnknownError
from sat_storage.models import PubsubItem
from sat_storage.storage import item_rows
from sat_storage.storage.pubsub import MAX_ITEMS_BATCH
from sat_storage.xml_tools import parse_xml
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.pubsub_helpers import (
    NS_PUBSUB,
    OTHER_SERVICE,
    SERVICE,
    Client,
    item_names,
    make_item,
    make_items,
    snapshot,
)


class CacheItemsTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")

    async def cached(self) -> dict[str, PubsubItem]:
        node = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog", with_items=True)
        return {item.name: item for item in node.items}

    async def test_cache_and_read(self) -> None:
        """Items come back as the same XML element, with their parsed data."""
        items = [make_item("a", "first"), make_item("b", "second")]
        await self.storage.cache_pubsub_items(self.alice, self.node, items, [{"n": 1}, None])
        cached = await self.cached()
        self.assertEqual(list(cached), ["a", "b"])
        self.assertIsInstance(cached["a"].data, domish.Element)
        self.assertEqual(cached["a"].data.toXml(), items[0].toXml())
        self.assertEqual((cached["a"].parsed, cached["b"].parsed), ({"n": 1}, None))
        self.assertEqual(cached["a"].created.tzinfo, UTC)

    async def test_update_keeps_id_and_created(self) -> None:
        """Caching a known item replaces data, parsed and updated; id and created stay."""
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a", "b"]))
        old = await self.cached()
        new_a = make_item("a", "edited")
        await self.storage.cache_pubsub_items(self.alice, self.node, [new_a], [{"v": 2}])
        new = await self.cached()
        self.assertEqual((new["a"].id, new["a"].created), (old["a"].id, old["a"].created))
        self.assertGreater(new["a"].updated, old["a"].updated)
        self.assertEqual(new["a"].data.toXml(), new_a.toXml())
        self.assertEqual(new["a"].parsed, {"v": 2})
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b"])

    async def test_unchanged_item_changes_nothing(self) -> None:
        """Caching a known item again with the same XML and parsed data leaves its row as it was
        (updated, parsed data): a notification of an unchanged item changes nothing."""
        items = make_items(["a", "b"])
        await self.storage.cache_pubsub_items(self.alice, self.node, items, [{"v": 1}, None])
        before = await snapshot(self.storage)
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a"]), [{"v": 1}])
        self.assertEqual(await snapshot(self.storage), before)

    async def test_written_on_the_driver_alone(self) -> None:
        """cache_pubsub_items runs its statements on the driver alone (Gateway.write):
        none goes through a SQLAlchemy connection (no Session, no execution context)."""
        connections: list[object] = []

        def record(conn: object, *_args: object) -> None:
            connections.append(conn)

        event.listen(self.storage.db.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.storage.db.engine, "before_cursor_execute", record)
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a", "b"]))
        self.assertTrue(connections)
        self.assertEqual(set(connections), {None})
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b"])

    async def test_written_in_chunks(self) -> None:
        """A call of more rows than one statement writes (SQLITE_/POSTGRESQL_ROWS_PER_STATEMENT,
        made 3 here) is written by one item statement per chunk of that many rows: every
        item stored in the call's order, counted once, its words indexed."""
        self.patch(item_rows, "SQLITE_ROWS_PER_STATEMENT", 3)
        self.patch(item_rows, "POSTGRESQL_ROWS_PER_STATEMENT", 3)
        inserts: list[str] = []

        def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if statement.startswith("INSERT INTO pubsub_items "):
                inserts.append(statement)

        event.listen(self.storage.db.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.storage.db.engine, "before_cursor_execute", record)
        names = [f"i{n}" for n in (5, 3, 8, 1, 7, 2, 6)]  # not in the order of their names
        items = [make_item(name, f"word{name} shared") for name in names]
        await self.storage.cache_pubsub_items(self.alice, self.node, items)
        self.assertEqual(len(inserts), 3)  # 3 + 3 + 1 rows
        self.assertEqual(await item_names(self.storage, self.node), names)
        node = await self.storage.get_pubsub_node(self.alice, SERVICE, "blog")
        self.assertEqual(node.item_count, len(names))
        found = await self.storage.search_pubsub_items({"profiles": ["alice"], "fts": "shared"})
        self.assertEqual(sorted(item.name for item in found), sorted(names))
        found = await self.storage.search_pubsub_items({"profiles": ["alice"], "fts": "wordi7"})
        self.assertEqual([item.name for item in found], ["i7"])

    def record_steps(self) -> list[str]:
        """What the next writes do, in order: ``rows`` for each making of rows
        (``item_rows``), ``insert`` for each item statement."""
        steps: list[str] = []
        make = item_rows.item_rows

        def making(*args: Any) -> Any:
            steps.append("rows")
            return make(*args)

        def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if statement.startswith("INSERT INTO pubsub_items "):
                steps.append("insert")

        self.patch(item_rows, "item_rows", making)
        event.listen(self.storage.db.engine, "before_cursor_execute", record)
        self.addCleanup(event.remove, self.storage.db.engine, "before_cursor_execute", record)
        return steps

    async def test_chunk_sent_before_next_made(self) -> None:
        """PostgreSQL: the rows of a chunk are sent before the next chunk's are made (the
        server writes while Python works); SQLite: every row is made first (one making).
        Either way the same items, in order."""
        self.patch(item_rows, "SQLITE_ROWS_PER_STATEMENT", 2)
        self.patch(item_rows, "POSTGRESQL_ROWS_PER_STATEMENT", 2)
        steps = self.record_steps()
        names = ["c", "a", "e", "b", "d"]
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(names))
        if self.storage.dialect == "postgresql":
            self.assertEqual(steps, ["rows", "insert"] * 3)
        else:
            self.assertEqual(steps, ["rows", "insert", "insert", "insert"])
        self.assertEqual(await item_names(self.storage, self.node), names)

    async def test_chunks_with_empty_items_keep_ids(self) -> None:
        """Items without payload, over several chunks, get their ids after every item with
        payload of the call (as in one chunk), and never replace a cached item."""
        self.patch(item_rows, "POSTGRESQL_ROWS_PER_STATEMENT", 2)
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["k"]))
        items = make_items(["a", "b", "c", "d", "e"])
        for index in (0, 3):
            items[index] = domish.Element((NS_PUBSUB, "item"))
            items[index]["id"] = "ad"[index // 3]
        items.append(domish.Element((NS_PUBSUB, "item")))
        items[-1]["id"] = "k"
        await self.storage.cache_pubsub_items(self.alice, self.node, items)
        self.assertEqual(await item_names(self.storage, self.node), ["k", "b", "c", "e", "a", "d"])
        self.assertEqual((await self.cached())["k"].data.toXml(), make_item("k").toXml())

    async def test_bad_item_in_a_later_chunk(self) -> None:
        """An item that cannot be stored in a later chunk: ValueError naming its index in
        the call, and nothing of the call is stored (the chunks sent are rolled back)."""
        self.patch(item_rows, "POSTGRESQL_ROWS_PER_STATEMENT", 2)
        self.patch(item_rows, "SQLITE_ROWS_PER_STATEMENT", 2)
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a"]))
        items = make_items(["b", "c", "d", "e", "f"])
        items[3].addElement("bad", content="nul \x00 here")
        await self.assert_refused(ValueError, r"items\[3\]", items)

    async def test_empty_item_keeps_payload(self) -> None:
        """An item without payload never replaces a cached one; a new one is stored."""
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a"]))
        before = await snapshot(self.storage)
        empty = [domish.Element((NS_PUBSUB, "item")) for _ in range(2)]
        empty[0]["id"], empty[1]["id"] = "a", "b"
        await self.storage.cache_pubsub_items(self.alice, self.node, empty)
        cached = await self.cached()
        self.assertEqual(cached["a"].data.toXml(), make_item("a").toXml())
        self.assertEqual(cached["b"].data.toXml(), empty[1].toXml())
        self.assertEqual(
            (await snapshot(self.storage))["pubsub_items"][0], before["pubsub_items"][0]
        )

    async def test_duplicate_id_last_payload_wins(self) -> None:
        """An id given twice in one call, first without payload then with one: the last
        one replaces the cached item (the payload-less one is not what is kept)."""
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a"]))
        empty = domish.Element((NS_PUBSUB, "item"))
        empty["id"] = "a"
        edited = make_item("a", "edited")
        await self.storage.cache_pubsub_items(self.alice, self.node, [empty, edited])
        self.assertEqual((await self.cached())["a"].data.toXml(), edited.toXml())

    async def test_catch_up(self) -> None:
        """catch_up_pubsub_items: an edited item keeps its place, removed ones go, and
        appended ones come after the rest in their order, in creation and modification
        order alike."""
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(list("abcd")))
        edited = make_item("b", "edited")
        appended = [make_item("new"), make_item("c")]
        await self.storage.catch_up_pubsub_items(
            self.alice, self.node, [edited], None, ["c", "d"], appended, [{"n": 1}, None]
        )
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b", "new", "c"])
        by_modification, _ = await self.storage.get_items(self.node, order_by=["modification"])
        self.assertEqual([i.name for i in by_modification], ["a", "b", "new", "c"])
        cached = await self.cached()
        self.assertEqual(cached["b"].data.toXml(), edited.toXml())
        self.assertEqual(cached["new"].parsed, {"n": 1})

    async def test_catch_up_bad_items(self) -> None:
        """Bad appended items are refused before anything changes."""
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a"]))
        before = await snapshot(self.storage)
        with self.assertRaisesRegex(ValueError, "items\\[0\\]"):
            await self.storage.catch_up_pubsub_items(
                self.alice, self.node, [], None, ["a"], [domish.Element((None, "x"))], None
            )
        self.assertEqual(await snapshot(self.storage), before)

    async def test_duplicate_ids_last_wins(self) -> None:
        """An id given twice in one call is stored once, at its first place, last content."""
        items = [make_item("a", "one"), make_item("b"), make_item("a", "two")]
        await self.storage.cache_pubsub_items(
            self.alice, self.node, items, [{"v": 1}, None, {"v": 2}]
        )
        cached = await self.cached()
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b"])
        self.assertEqual(cached["a"].data.toXml(), items[2].toXml())
        self.assertEqual(cached["a"].parsed, {"v": 2})

    async def test_unicode_and_large(self) -> None:
        """Unicode text, markup characters and a large item are kept exactly."""
        text = "Ünïcødé ✓ 漢字 <&> 'quotes' \"double\" " * 20_000  # about 0.9 MB
        item = make_item("ü-1", text)
        item.addElement("extra")["attr"] = "<&'\">"
        parsed = {"title": "漢字 ✓", "nested": {"list": [1, 2.5, None, True]}}
        await self.storage.cache_pubsub_items(self.alice, self.node, [item], [parsed])
        cached = (await self.cached())["ü-1"]
        self.assertEqual(cached.data.toXml(), item.toXml())
        self.assertEqual(cached.parsed, parsed)

    async def test_namespace_prefixes(self) -> None:
        """Elements with namespace prefixes and qualified attributes survive the round trip."""
        item = parse_xml(
            "<item xmlns='http://jabber.org/protocol/pubsub' xmlns:x='urn:x' id='p'>"
            "<x:entry x:lang='en'>text</x:entry></item>"
        )
        await self.storage.cache_pubsub_items(self.alice, self.node, [item])
        data = (await self.cached())["p"].data
        self.assertEqual(data.toXml(), item.toXml())
        self.assertEqual(data.firstChildElement().uri, "urn:x")

    async def test_empty_batch(self) -> None:
        """An empty list of items stores nothing and does not fail."""
        await self.storage.cache_pubsub_items(self.alice, self.node, [], [])
        self.assertEqual(await self.cached(), {})

    async def test_batch_too_large(self) -> None:
        """More than MAX_ITEMS_BATCH items raise ValueError; nothing is stored."""
        items = [make_item("same")] * (MAX_ITEMS_BATCH + 1)
        with self.assertRaisesRegex(ValueError, str(MAX_ITEMS_BATCH)):
            await self.storage.cache_pubsub_items(self.alice, self.node, items)
        self.assertEqual(await self.cached(), {})

    async def assert_refused(
        self, error: type[Exception], pattern: str, items: object, parsed: object = None
    ) -> None:
        """The call raises ``error`` matching ``pattern`` and the tables do not change."""
        before = await snapshot(self.storage)
        with self.assertRaisesRegex(error, pattern):
            await self.storage.cache_pubsub_items(self.alice, self.node, items, parsed)
        self.assertEqual(await snapshot(self.storage), before)

    async def test_not_an_item(self) -> None:
        """A non-element or an element not named item is refused, naming its index."""
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a"]))
        await self.assert_refused(ValueError, r"items\[1\]", [make_item("b"), "<item id='c'/>"])
        entry = domish.Element((None, "entry"))
        entry["id"] = "e"
        await self.assert_refused(ValueError, r"items\[0\]", [entry])

    async def test_missing_id(self) -> None:
        """An item without id, or with an empty one, is refused, naming its index."""
        no_id = domish.Element((None, "item"))
        await self.assert_refused(ValueError, r"items\[1\] has no id", [make_item("a"), no_id])
        await self.assert_refused(ValueError, r"items\[0\] has no id", [make_item("")])

    async def test_items_not_a_list(self) -> None:
        """items must be a list or tuple."""
        await self.assert_refused(TypeError, "items", make_item("a"))

    async def test_parsed_mismatch(self) -> None:
        """parsed_items of another length than items is refused."""
        await self.assert_refused(ValueError, "2 items", make_items(["a", "b"]), [{}])

    async def test_parsed_not_dict(self) -> None:
        """A parsed entry that is not a dict or None is refused, naming its index."""
        await self.assert_refused(
            ValueError, r"parsed_items\[1\]", make_items(["a", "b"]), [{}, ["x"]]
        )

    async def test_parsed_not_json(self) -> None:
        """A parsed dict that JSON cannot represent (set, NaN) is refused, naming its index."""
        items = make_items(["a", "b"])
        await self.assert_refused(ValueError, r"parsed_items\[1\]", items, [{}, {"s": {1}}])
        await self.assert_refused(
            ValueError, r"parsed_items\[0\]", items, [{"x": float("nan")}, None]
        )

    async def test_unserialisable_item(self) -> None:
        """An item that cannot be serialised (non-str attribute) is refused, naming it."""
        item = make_item("a")
        item["count"] = 3
        await self.assert_refused(ValueError, r"items\[0\]", [item])

    async def test_node_of_another_profile(self) -> None:
        """Items cannot be cached in another profile's node."""
        self.alice.profile = "bob"
        await self.assert_refused(ValueError, "another profile", make_items(["a"]))

    async def test_unknown_profile(self) -> None:
        """A client of an unknown profile raises ProfileUnknownError."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.cache_pubsub_items(Client("nobody"), self.node, make_items(["a"]))

    async def test_deleted_node(self) -> None:
        """Caching into a node deleted meanwhile raises NotFound; nothing is stored."""
        await self.storage.delete_pubsub_node(None, None, ["blog"])
        with self.assertRaisesRegex(NotFound, "does not exist"):
            await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["a"]))
        self.assertEqual((await snapshot(self.storage))["pubsub_items"], [])

    async def test_concurrent_writers(self) -> None:
        """50 concurrent create-and-cache calls on one node: no error, no duplicate row."""

        async def writer(index: int) -> None:
            node = await self.storage.get_pubsub_node(self.alice, SERVICE, "shared", create=True)
            names = [f"item-{n:02d}" for n in range(index % 10, index % 10 + 15)]
            await self.storage.cache_pubsub_items(
                self.alice, node, make_items(names), [{"writer": index}] * len(names)
            )

        await defer.gatherResults(
            [defer.ensureDeferred(writer(i)) for i in range(50)], consumeErrors=True
        )
        rows = await snapshot(self.storage)
        nodes = [row for row in rows["pubsub_nodes"] if row[3] == "shared"]
        self.assertEqual(len(nodes), 1)
        names = [row[2] for row in rows["pubsub_items"] if row[1] == nodes[0][0]]
        self.assertEqual(sorted(names), [f"item-{n:02d}" for n in range(24)])


class DeleteItemsTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        self.other = await self.storage.set_pubsub_node(self.alice, SERVICE, "other")
        for node in (self.node, self.other):
            await self.storage.cache_pubsub_items(self.alice, node, make_items(["a", "b", "c"]))

    async def test_named(self) -> None:
        """Only the named items of that node are deleted; unknown names are ignored."""
        deleted = await self.storage.delete_pubsub_items(self.node, ["a", "c", "zzz"])
        self.assertEqual(deleted, 2)
        self.assertEqual(await item_names(self.storage, self.node), ["b"])
        self.assertEqual(await item_names(self.storage, self.other), ["a", "b", "c"])

    async def test_all(self) -> None:
        """items_names None deletes every item of the node, and only of that node."""
        self.assertEqual(await self.storage.delete_pubsub_items(self.node), 3)
        self.assertEqual(await item_names(self.storage, self.node), [])
        self.assertEqual(await item_names(self.storage, self.other), ["a", "b", "c"])

    async def test_empty_list(self) -> None:
        """An empty list deletes nothing."""
        self.assertEqual(await self.storage.delete_pubsub_items(self.node, []), 0)
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b", "c"])

    async def test_many_names(self) -> None:
        """More names than one IN chunk holds are all deleted."""
        names = [f"n{i:04d}" for i in range(1500)]
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(names))
        self.assertEqual(await self.storage.delete_pubsub_items(self.node, names + ["b"]), 1501)
        self.assertEqual(await item_names(self.storage, self.node), ["a", "c"])

    async def test_bad_names(self) -> None:
        """A non-list or a non-str name raises TypeError naming it; nothing is deleted."""
        with self.assertRaisesRegex(TypeError, "items_names"):
            await self.storage.delete_pubsub_items(self.node, "a")
        with self.assertRaisesRegex(TypeError, r"items_names\[1\]"):
            await self.storage.delete_pubsub_items(self.node, ["a", 2])
        self.assertEqual(await item_names(self.storage, self.node), ["a", "b", "c"])


UTC_10H = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
UTC_12H = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


class PurgeTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        self.nodes = {}
        specs = [
            ("alice", SERVICE, "blog", "blog", None),
            ("alice", SERVICE, "events", "event", "meeting"),
            ("alice", OTHER_SERVICE, "blog", None, None),
            ("bob", SERVICE, "blog", "blog", None),
        ]
        for profile, service, name, type_, subtype in specs:
            node = await self.storage.set_pubsub_node(
                Client(profile), service, name, type_=type_, subtype=subtype
            )
            self.nodes[(profile, service.host, name)] = node
            await self.storage.cache_pubsub_items(Client(profile), node, make_items(["old", "new"]))
        # fixed times: "old" items at 10:00 UTC, "new" ones at 12:00 UTC
        await self.storage.db.run(self.set_times)

    @staticmethod
    def set_times(session: Session) -> None:
        for name, moment in (("old", UTC_10H), ("new", UTC_12H)):
            session.execute(
                update(PubsubItem)
                .where(PubsubItem.name == name)
                .values(created=moment, updated=moment)
            )

    async def remaining(self) -> list[tuple[str, str, str, str]]:
        rows = await snapshot(self.storage)
        nodes = {row[0]: row for row in rows["pubsub_nodes"]}
        profiles = {v: k for k, v in self.storage.profiles.items()}
        return sorted(
            (profiles[nodes[r[1]][1]], jid.JID(nodes[r[1]][2]).host, nodes[r[1]][3], r[2])
            for r in rows["pubsub_items"]
        )

    async def test_everything(self) -> None:
        """Without filters every item is purged; nodes are kept."""
        self.assertEqual(await self.storage.purge_pubsub_items(), 8)
        self.assertEqual(await self.remaining(), [])
        self.assertEqual(len((await snapshot(self.storage))["pubsub_nodes"]), 4)

    async def test_by_node_fields(self) -> None:
        """services, names and profiles filters combine."""
        purged = await self.storage.purge_pubsub_items(
            services=[SERVICE], names=["blog"], profiles=["alice"]
        )
        self.assertEqual(purged, 2)
        self.assertNotIn(("alice", SERVICE.host, "blog", "old"), await self.remaining())
        self.assertEqual(len(await self.remaining()), 6)

    async def test_types_with_none(self) -> None:
        """None in types matches nodes without a type."""
        self.assertEqual(await self.storage.purge_pubsub_items(types=[None]), 2)
        self.assertEqual(await self.storage.purge_pubsub_items(subtypes=["meeting"]), 2)
        self.assertEqual(
            {(p, s, n) for p, s, n, _ in await self.remaining()},
            {("alice", SERVICE.host, "blog"), ("bob", SERVICE.host, "blog")},
        )

    async def test_created_before_other_zone(self) -> None:
        """An aware datetime in a non-UTC zone is compared as the same instant in UTC."""
        tokyo = timezone(timedelta(hours=9))
        cutoff = datetime(2024, 1, 1, 20, 0, tzinfo=tokyo)  # 11:00 UTC
        self.assertEqual(await self.storage.purge_pubsub_items(created_before=cutoff), 4)
        self.assertEqual({r[3] for r in await self.remaining()}, {"new"})

    async def test_updated_before_local_zone(self) -> None:
        """With TZ set to UTC+14, a local aware datetime is still the right instant."""
        self.set_tz("SAT-14")
        cutoff = datetime(2024, 1, 1, 11, 0, tzinfo=UTC).astimezone()  # local: 01:00 on Jan 2
        self.assertEqual(cutoff.utcoffset(), timedelta(hours=14))
        self.assertEqual(await self.storage.purge_pubsub_items(updated_before=cutoff), 4)
        self.assertEqual({r[3] for r in await self.remaining()}, {"new"})

    async def test_naive_is_utc(self) -> None:
        """A naive datetime is taken as UTC, whatever the local time zone."""
        self.set_tz("SAT-14")
        cutoff = datetime(2024, 1, 1, 11, 0)
        self.assertEqual(await self.storage.purge_pubsub_items(created_before=cutoff), 4)
        self.assertEqual({r[3] for r in await self.remaining()}, {"new"})

    def set_tz(self, tz: str) -> None:
        """Change the process' local time zone until the end of the test."""
        old = os.environ.get("TZ")
        os.environ["TZ"] = tz
        time.tzset()

        def restore() -> None:
            if old is None:
                del os.environ["TZ"]
            else:
                os.environ["TZ"] = old
            time.tzset()

        self.addCleanup(restore)

    async def test_dates_and_node_filters(self) -> None:
        """Date and node filters combine."""
        purged = await self.storage.purge_pubsub_items(profiles=["bob"], created_before=UTC_12H)
        self.assertEqual(purged, 1)
        self.assertNotIn(("bob", SERVICE.host, "blog", "old"), await self.remaining())

    async def test_long_filters(self) -> None:
        """Filter lists longer than one IN chunk select exactly the named nodes."""
        names = [f"unused-{i}" for i in range(1100)] + ["events"]
        self.assertEqual(
            await self.storage.purge_pubsub_items(names=names, types=["event"] * 600), 2
        )

    async def test_bad_arguments(self) -> None:
        """Bad filters raise naming the argument; nothing is purged."""
        with self.assertRaisesRegex(TypeError, "created_before"):
            await self.storage.purge_pubsub_items(created_before="2024-01-01")
        with self.assertRaisesRegex(TypeError, r"services\[0\]"):
            await self.storage.purge_pubsub_items(services=["pubsub.example.org"])
        with self.assertRaisesRegex(TypeError, r"types\[0\]"):
            await self.storage.purge_pubsub_items(types=[1])
        with self.assertRaises(ProfileUnknownError):
            await self.storage.purge_pubsub_items(profiles=["nobody"])
        self.assertEqual(len(await self.remaining()), 8)

    async def test_empty_filter(self) -> None:
        """An empty filter list purges nothing."""
        self.assertEqual(await self.storage.purge_pubsub_items(names=[]), 0)
        self.assertEqual(len(await self.remaining()), 8)
