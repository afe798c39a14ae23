"""``sat_storage.port``: a populated SQLite database copied into a fresh PostgreSQL one."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twisted.internet import threads
from twisted.trial.unittest import TestCase

from sat_storage import Storage, engines, port
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.port import source
from twisted_tests.db import _empty, make_storage, sqlite_url
from twisted_tests.pg_server import fresh_database
from twisted_tests.port.fill import PROFILES, SERVICE, api_view, populate, search_view
from twisted_tests.storage.pubsub_helpers import make_item


def empty_postgresql(testcase: TestCase) -> str:
    """URL of a new, empty PostgreSQL database (no schema)."""
    return fresh_database(testcase, _empty)


async def populated_sqlite(testcase: TestCase, items: int = 40) -> tuple[str, Storage]:
    """A SQLite database filled by :func:`populate`; its URL and its (open) storage."""
    url = sqlite_url(testcase)
    storage = await make_storage(testcase, url)
    await populate(storage, items)
    return url, storage


def sqlite_file(url: str) -> Path:
    """The file of a SQLite URL."""
    path = engines.sqlite_path(engines.parse_url(url))
    assert path is not None
    return path


class PortTests(TestCase):
    """A whole port, then the same data through the public API on both engines."""

    async def setUp(self) -> None:
        self.source_url, self.source = await populated_sqlite(self)
        self.target_url = empty_postgresql(self)
        self.events: list[dict[str, Any]] = []
        # the source stays open (a running host): the port works on a snapshot
        self.result = await threads.deferToThread(
            port.port, self.source_url, self.target_url, 7, self.events.append
        )
        self.target = await make_storage(self, self.target_url)

    async def test_api_equal(self) -> None:
        """Every row and value read through the storage API is equal on both sides."""
        self.assertEqual(await api_view(self.target), await api_view(self.source))

    async def test_searches_equal(self) -> None:
        """Full-text and parsed-data searches give the same items, in the same order."""
        expected = await search_view(self.source)
        self.assertTrue(all(expected), expected)
        self.assertEqual(await search_view(self.target), expected)

    def test_verified(self) -> None:
        """Every table is counted and checksummed equal; the snapshot is removed."""
        tables = {row["table"]: row for row in self.result["tables"]}
        self.assertTrue(all(row["equal"] for row in tables.values()))
        self.assertEqual(tables["pubsub_items"]["rows"], 80)
        self.assertEqual(self.result["rows"], sum(row["rows"] for row in tables.values()))
        self.assertFalse(source.snapshot_path(sqlite_file(self.source_url)).exists())

    async def test_item_counts(self) -> None:
        """Nodes keep their count and version; items cached after the port are counted."""

        def counts(session: Session) -> list[tuple[int, int, int, int]]:
            rows = session.execute(
                select(PubsubNode.id, PubsubNode.item_count, PubsubNode.items_version,
                       select(func.count()).where(PubsubItem.node_id == PubsubNode.id)
                       .scalar_subquery()).order_by(PubsubNode.id)
            )  # fmt: skip
            return [tuple(row) for row in rows]

        source = await self.source.db.run(counts)
        self.assertEqual(await self.target.db.run(counts), source)
        self.assertTrue(all(stored == rows for _id, stored, _v, rows in source))
        self.assertTrue(any(rows for *_, rows in source))
        client = SimpleNamespace(profile="alice")
        node = await self.target.set_pubsub_node(client, SERVICE, "new-node")
        await self.target.cache_pubsub_items(client, node, [make_item("after-port")])
        after = await self.target.db.run(counts)
        self.assertEqual([row[1] for row in after if row[0] == node.id], [1])

    def test_progress_events(self) -> None:
        """Batches are reported with the rows done, the total and a rate."""
        progress = [e for e in self.events if e["event"] == "progress"]
        self.assertGreater(len(progress), 10)
        self.assertEqual(progress[-1]["done"], self.result["rows"])
        self.assertEqual({e["total"] for e in progress}, {self.result["rows"]})
        self.assertEqual(self.events[-1]["event"], "verified")

    async def test_sequences_fixed(self) -> None:
        """New rows get ids after the copied ones (PostgreSQL sequences moved)."""
        client = SimpleNamespace(profile="alice")
        view = await api_view(self.source)
        highest = max(view[p][kind]["id"] for p in PROFILES for kind in ("blog", "misc"))
        node = await self.target.set_pubsub_node(client, SERVICE, "new-node")
        self.assertEqual(node.id, highest + 1)
        await self.target.create_profile("dave")  # a taken id would be a conflict
        self.assertIn("dave", self.target.get_profiles_list())


class RefusalTests(TestCase):
    """What a port refuses before copying anything."""

    async def test_target_not_empty(self) -> None:
        """A target holding rows is refused, naming a table with rows."""
        source_url, _storage = await populated_sqlite(self, items=2)
        target_url = empty_postgresql(self)
        other = await make_storage(self, target_url)
        await other.create_profile("someone")
        await other.close()
        with self.assertRaises(port.PortRefused) as caught:
            await threads.deferToThread(port.port, source_url, target_url)
        self.assertIn("not empty: profiles (1 rows)", str(caught.exception))
        self.assertFalse(source.snapshot_path(sqlite_file(source_url)).exists())

    async def test_bad_value_reported(self) -> None:
        """A NUL character is reported with table, row id and column; nothing copied."""
        source_url, storage = await populated_sqlite(self, items=2)
        await storage.close()
        with sqlite3.connect(sqlite_file(source_url)) as connection:
            connection.execute("UPDATE pubsub_items SET name = ? WHERE id = 2", ["a\x00b"])
        target_url = empty_postgresql(self)
        with self.assertRaises(port.PortRefused) as caught:
            await threads.deferToThread(port.port, source_url, target_url)
        [bad] = caught.exception.bad_values
        self.assertEqual((bad.table, bad.key, bad.column), ("pubsub_items", {"id": 2}, "name"))
        self.assertIn("table pubsub_items, row id=2, column name: contains a NUL", str(bad))

    async def test_source_not_at_head(self) -> None:
        """A source at an older revision is refused, saying how to upgrade it."""
        from twisted_tests.schema import set_revision

        source_url, storage = await populated_sqlite(self, items=2)
        await storage.close()
        set_revision(source_url, "0001")
        with self.assertRaises(port.PortRefused) as caught:
            await threads.deferToThread(port.port, source_url, empty_postgresql(self))
        self.assertIn("db upgrade", str(caught.exception))


class VerifyTests(TestCase):
    """The final check compares content, not only counts."""

    async def test_changed_value_detected(self) -> None:
        """One value changed on the target makes its table differ; the others stay equal."""
        import psycopg

        from sat_storage.port import target, verify
        from sat_storage.port.tables import port_tables

        source_url, storage = await populated_sqlite(self, items=3)
        await storage.close()
        target_url = empty_postgresql(self)
        await threads.deferToThread(port.port, source_url, target_url)
        with psycopg.connect(target.conninfo(target_url)) as connection:
            connection.execute("UPDATE history SET source_res = 'other' WHERE source_res = 'res'")
        with (
            source.open_read_only(sqlite_file(source_url)) as snapshot,
            target.connect(target_url) as connection,
        ):
            report = verify.compare(snapshot, connection, port_tables())
        differing = [row["table"] for row in report if not row["equal"]]
        self.assertEqual(differing, ["history"])
        [history] = [row for row in report if row["table"] == "history"]
        self.assertEqual(history["rows"], history["target_rows"])


class PluginSchemaTests(TestCase):
    """Tables of an installed plugin schema (the documented example, ``notes``)."""

    async def test_plugin_tables_ported(self) -> None:
        """The notes of the example plugin are copied, read back through its store."""
        from twisted_tests.schemas.helpers import install_example

        install_example(self)
        from sat_notes import store

        source_url, storage = await populated_sqlite(self, items=2)
        alice = storage.get_profile_id("alice")
        note = await storage.run_txn("notes", store.add_note_txn, alice, "first", "body")
        await storage.run_txn("notes", store.pin_note_txn, note)
        await storage.run_txn("notes", store.add_note_txn, alice, "second")
        target_url = empty_postgresql(self)
        result = await threads.deferToThread(port.port, source_url, target_url)
        self.assertIn("notes", [row["table"] for row in result["tables"]])
        ported = await make_storage(self, target_url)
        notes = await ported.run_txn("notes", store.get_notes_txn, alice)
        self.assertEqual(notes, [("first", "body", True), ("second", "", False)])
        self.assertEqual(notes, await storage.run_txn("notes", store.get_notes_txn, alice))

    async def test_unknown_plugin_schema_refused(self) -> None:
        """A source with tables of a plugin not installed here is refused, naming it."""
        from twisted_tests.schemas.helpers import install_example

        installed = install_example(self)
        source_url, storage = await populated_sqlite(self, items=2)
        await storage.close()
        installed.uninstall()
        with self.assertRaises(port.PortRefused) as caught:
            await threads.deferToThread(port.port, source_url, empty_postgresql(self))
        self.assertIn("plugin schema(s) not installed here: notes", str(caught.exception))
