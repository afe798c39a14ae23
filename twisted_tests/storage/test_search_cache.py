"""The statements of recent searches, kept by query (search_cache.py)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage.storage.search_cache import SearchStatements, query_key
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.pubsub_helpers import SERVICE, Client, make_items


class QueryKeyTests(TestCase):
    def test_typed(self) -> None:
        """1, 1.0 and True; a list and a tuple; a JID and its text: distinct keys."""
        keys = [
            query_key({"limit": value}) for value in (1, 1.0, True, [1], (1,), JID("a@b"), "a@b")
        ]
        self.assertEqual(len(set(keys)), len(keys))

    def test_dict_order(self) -> None:
        """The order of a dict's keys does not matter; values do."""
        self.assertEqual(query_key({"a": 1, "b": [2]}), query_key({"b": [2], "a": 1}))
        self.assertNotEqual(query_key({"a": 1}), query_key({"a": 2}))

    def test_unkeyable(self) -> None:
        """Sets, non-text dict keys and other objects give no key."""
        for query in ({"services": {"a"}}, {1: "x"}, {"limit": object()}):
            self.assertIsNone(query_key(query))


class SearchStatementsTests(TestCase):
    def setUp(self) -> None:
        self.built: list[int] = []

    def build(self) -> Any:
        self.built.append(1)
        return sa.select(sa.literal(len(self.built)))

    def test_kept(self) -> None:
        """The same query, profiles, dialect and keys: built once, the same statement."""
        statements = SearchStatements()
        keys = object()
        first = statements.get({"fts": "x"}, [1], "sqlite", keys, self.build)
        again = statements.get({"fts": "x"}, [1], "sqlite", keys, self.build)
        self.assertIs(first, again)
        self.assertEqual(len(self.built), 1)

    def test_each_part_counts(self) -> None:
        """Other profiles, dialect or declared keys: built again."""
        statements = SearchStatements()
        keys = object()
        statements.get({}, [1], "sqlite", keys, self.build)
        statements.get({}, [2], "sqlite", keys, self.build)
        statements.get({}, None, "sqlite", keys, self.build)
        statements.get({}, [1], "postgresql", keys, self.build)
        statements.get({}, [1], "sqlite", object(), self.build)
        self.assertEqual(len(self.built), 5)

    def test_bounded(self) -> None:
        """Past ``size`` queries, the least recently used one is forgotten."""
        statements = SearchStatements(size=2)
        keys = object()
        for limit in (1, 2, 1, 3):  # 2 is then the least recently used
            statements.get({"limit": limit}, None, "sqlite", keys, self.build)
        statements.get({"limit": 1}, None, "sqlite", keys, self.build)
        self.assertEqual(len(self.built), 3)
        statements.get({"limit": 2}, None, "sqlite", keys, self.build)
        self.assertEqual(len(self.built), 4)

    def test_unkeyable_built_each_time(self) -> None:
        """A query without a key is built at every call."""
        statements = SearchStatements()
        for _ in range(2):
            statements.get({"services": {"a"}}, None, "sqlite", None, self.build)
        self.assertEqual(len(self.built), 2)


class StorageSearchCacheTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        parsed = [{"published": float(n)} for n in range(3)]
        await self.storage.cache_pubsub_items(
            self.alice, self.node, make_items(["a", "b", "c"]), parsed
        )

    async def test_results_not_kept(self) -> None:
        """A search asked again reads the database again: it sees new items."""
        query = {"profiles": ["alice"], "names": ["a", "d"]}
        self.assertEqual([i.name for i in await self.storage.search_pubsub_items(query)], ["a"])
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(["d"]))
        found = await self.storage.search_pubsub_items(query)
        self.assertEqual([i.name for i in found], ["a", "d"])

    async def test_bad_query_refused_every_time(self) -> None:
        """A refused query is refused again (nothing is kept of it)."""
        query = {"profiles": ["alice"], "limit": -1}
        for _ in range(2):
            with self.assertRaises(ValueError):
                await self.storage.search_pubsub_items(query)

    async def test_declared_key_used_by_a_repeated_search(self) -> None:
        """A search asked before and after a sort key is declared reads its index after."""
        query = {"profiles": ["alice"], "order-by": [{"path": ["published"], "direction": "desc"}]}
        sql: list[str] = []

        def capture(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            sql.append(statement)

        engine = self.storage.db.engine
        event.listen(engine, "before_cursor_execute", capture)
        try:
            before = await self.storage.search_pubsub_items(query)
            sql_before = [s for s in sql if "ORDER BY" in s]
            await self.storage.declare_sort_key(["published"], "desc")
            del sql[:]
            after = await self.storage.search_pubsub_items(query)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        self.assertEqual([i.name for i in before], ["c", "b", "a"])
        self.assertEqual([i.name for i in after], ["c", "b", "a"])
        self.assertFalse(any("pubsub_item_sort_values" in s for s in sql_before), sql_before)
        self.assertTrue(any("pubsub_item_sort_values" in s for s in sql), sql)
