"""Sort keys declared by analysers (storage/sort_keys.py): same answers, read from an index.

The differential tests search generated data (numbers, strings, booleans, null, missing
values, arrays and objects at the declared path) once through the declared key's index
and once by the JSON expressions (an empty :class:`SortKeyIndex`), on the suite's engine.
"""

from __future__ import annotations

import random
import re
from typing import Any

import sqlalchemy as sa
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from sat_storage import Storage
from sat_storage.storage.search import build_search
from sat_storage.storage.sort_keys import SortKeyIndex
from twisted_tests.db import make_storage, test_dialect
from twisted_tests.storage.search_data import SERVICE, Client

ITEMS = 120
INDEX_NAME = "pubsub_item_sort_values__order"


def item(name: str) -> domish.Element:
    element = domish.Element(("http://jabber.org/protocol/pubsub", "item"))
    element["id"] = name
    element.addElement(("urn:test", "entry"), content=name)
    return element


def random_value(rng: random.Random) -> Any:
    """A value of any JSON kind (numbers and strings most often, with ties)."""
    return rng.choice([
        lambda: rng.randint(-5, 5),
        lambda: rng.randint(-(2**40), 2**40),
        lambda: round(rng.uniform(-1e6, 1e6), 3),
        lambda: 1_700_000_000.0 + rng.randint(0, 50) * 60,
        lambda: rng.choice(["a", "B", "é", "", "zz", "10", "Ω"]),
        lambda: rng.choice([True, False]),
        lambda: None,
        lambda: [rng.randint(0, 3)],
        lambda: {"k": 1},
    ])()  # fmt: skip


def random_parsed(rng: random.Random) -> dict[str, Any] | None:
    """Parsed data with or without ``published`` (and a nested ``meta.score``)."""
    if rng.random() < 0.05:
        return None
    parsed: dict[str, Any] = {"title": "x"}
    if rng.random() < 0.85:
        parsed["published"] = random_value(rng)
    parsed["meta"] = {"score": random_value(rng)} if rng.random() < 0.8 else []
    return parsed


async def fill(storage: Storage, rng: random.Random, count: int = ITEMS) -> Any:
    node = await storage.set_pubsub_node(Client("alice"), SERVICE, "blog")
    names = [f"item-{i:04d}" for i in range(count)]
    await storage.cache_pubsub_items(
        Client("alice"), node, [item(n) for n in names], [random_parsed(rng) for _ in names]
    )
    return node


def queries(rng: random.Random) -> list[dict[str, Any]]:
    """Searches ordered by, or filtered on, the declared paths (and some others)."""
    scope = {"profiles": ["alice"]}
    found = []
    for path in (["published"], ["meta", "score"]):
        for direction in ("asc", "desc"):
            order = {"path": path, "direction": direction}
            found.append({**scope, "order-by": [order]})
            found.append({**scope, "order-by": [order], "limit": 7, "index": rng.randint(0, 50)})
            found.append({**scope, "order-by": [order, {"order": "modification"}], "limit": 30})
        for op in (">", ">=", "<", "<=", "between", "==", "in"):
            low = rng.choice([0, 1_700_000_000.0, -3, 2.5, 1_700_001_200])
            value = {"between": [low, low + rng.randint(1, 3000)], "in": [low, 3]}.get(op, low)
            found.append({**scope, "parsed": [{"path": path, "op": op, "value": value}]})
            found.append({
                **scope, "parsed": [{"path": path, "op": op, "value": value}],
                "order-by": [{"path": ["published"], "direction": rng.choice(["asc", "desc"])}],
                "limit": 10,
            })  # fmt: skip
        found.append({**scope, "parsed": [{"path": path, "op": ">=", "value": "b"}]})
    return found


class DifferentialTests(TestCase):
    """Same answers with and without the declared index."""

    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        await self.storage.create_profile("alice")
        self.rng = random.Random(1414)

    async def names(self, query: dict[str, Any], index: SortKeyIndex) -> list[str]:
        saved, self.storage.sort_key_index = self.storage.sort_key_index, index
        try:
            return [i.name for i in await self.storage.search_pubsub_items(query)]
        finally:
            self.storage.sort_key_index = saved

    async def check_all(self) -> None:
        declared = self.storage.sort_key_index
        self.assertTrue(declared.keys)
        checked = 0
        for query in queries(self.rng):
            expected = await self.names(query, SortKeyIndex())
            self.assertEqual(await self.names(query, declared), expected, query)
            checked += bool(expected)
        self.assertGreater(checked, 20)  # most queries find something

    async def test_declared_after_caching(self) -> None:
        """Items cached before the declaration get their values: same answers."""
        await fill(self.storage, self.rng)
        for direction in ("asc", "desc"):
            await self.storage.declare_sort_key(["published"], direction)
        await self.storage.declare_sort_key(["meta", "score"], "desc")
        await self.check_all()

    async def test_declared_before_caching(self) -> None:
        """Items cached and updated after the declaration: same answers."""
        await self.storage.declare_sort_key(["published"], "desc")
        await self.storage.declare_sort_key(["meta", "score"], "asc")
        node = await fill(self.storage, self.rng)
        names = [f"item-{i:04d}" for i in range(0, ITEMS, 3)]  # updates: new values
        await self.storage.cache_pubsub_items(
            Client("alice"), node, [item(n) for n in names],
            [random_parsed(self.rng) for _ in names],
        )  # fmt: skip
        await self.storage.delete_pubsub_items(node, names[:5])
        await self.check_all()


class MaintenanceTests(TestCase):
    """The stored values follow every write."""

    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        await self.storage.create_profile("alice")
        await self.storage.declare_sort_key(["published"], "desc")
        self.node = await self.storage.set_pubsub_node(Client("alice"), SERVICE, "blog")

    async def cache(self, values: dict[str, Any], storage: Storage | None = None) -> None:
        await (storage or self.storage).cache_pubsub_items(
            Client("alice"), self.node, [item(n) for n in values],
            [{"published": v} for v in values.values()],
        )  # fmt: skip

    async def newest(self) -> list[str]:
        query = {"profiles": ["alice"], "order-by": [{"path": ["published"], "direction": "desc"}]}
        return [i.name for i in await self.storage.search_pubsub_items(query)]

    async def value_rows(self) -> int:
        return await self.storage.db.run(
            lambda s: s.execute(sa.text("SELECT count(*) FROM pubsub_item_sort_values")).scalar()
        )

    async def test_update_moves_item(self) -> None:
        """An item cached again with a new value moves to its new place."""
        await self.cache({"a": 1, "b": 2, "c": 3})
        self.assertEqual(await self.newest(), ["c", "b", "a"])
        await self.cache({"a": 10})
        self.assertEqual(await self.newest(), ["a", "c", "b"])

    async def test_deletion_removes_values(self) -> None:
        """Retracted items, purges and node deletion take their values along."""
        await self.cache({"a": 1, "b": 2, "c": 3})
        await self.storage.delete_pubsub_items(self.node, ["b"])
        self.assertEqual((await self.newest(), await self.value_rows()), (["c", "a"], 2))
        await self.storage.purge_pubsub_items(profiles=["alice"])
        self.assertEqual((await self.newest(), await self.value_rows()), ([], 0))
        await self.cache({"d": 4})
        await self.storage.delete_pubsub_node(["alice"], None, None)
        self.assertEqual(await self.value_rows(), 0)

    async def test_key_of_another_process(self) -> None:
        """A storage that started before another declared a key still stores its values."""
        other = await make_storage(self, self.storage.db_url)
        self.assertTrue(other.sort_key_index.keys)  # loaded at start
        late = await other.declare_sort_key(["updated"], "asc")
        self.assertNotIn((late.path, late.direction), self.storage.sort_key_index.keys)
        await self.cache({"a": 1, "b": 2})  # through the storage that did not declare it
        self.assertEqual(await self.value_rows(), 4)  # published and updated, both items

    async def test_key_of_another_process_after_writes(self) -> None:
        """A storage that already wrote with its cached keys stores the values of a key
        another storage declared since, for new and for updated items."""
        await self.cache({"a": 1, "b": 5})  # the first storage's keys are cached now
        other = await make_storage(self, self.storage.db_url)
        await other.declare_sort_key(["published"], "asc")
        await self.cache({"b": 3, "c": 2})  # an update and a new item, by the first storage
        query = {"profiles": ["alice"], "order-by": [{"path": ["published"]}]}
        ascending = [i.name for i in await other.search_pubsub_items(query)]  # the new index
        self.assertEqual((ascending, await self.value_rows()), (["a", "c", "b"], 6))

    async def test_declared_twice(self) -> None:
        """Declaring a known key again gives the same key and stores nothing more."""
        await self.cache({"a": 1})
        first = await self.storage.declare_sort_key(["published"], "desc")
        again = await self.storage.declare_sort_key(["published"], "desc", "string")
        self.assertEqual((again.id, again.type_), (first.id, "number"))
        self.assertEqual(await self.value_rows(), 1)


class DeclarationErrorTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)

    async def test_bad_arguments(self) -> None:
        """A bad path, direction or type is a ValueError naming the argument."""
        for args, name in (
            (([],), "path"),
            ((["a", 1.5],), r"path\[1\]"),
            ((["a"], "up"), "direction"),
            ((["a"], "asc", "date"), "type_"),
        ):
            with self.assertRaisesRegex(ValueError, name):
                await self.storage.declare_sort_key(*args)


class PlanTests(TestCase):
    """The query plans read the declared key's index (asserted on the plan's text)."""

    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        await self.storage.create_profile("alice")
        await fill(self.storage, random.Random(7), 1000)
        await self.storage.declare_sort_key(["published"], "desc")
        if test_dialect() == "postgresql":  # statistics, as autovacuum gives them
            await self.storage.db.run(lambda session: session.execute(sa.text("ANALYZE")))

    async def plan(self, query: dict[str, Any], no_sort: bool = False) -> list[str]:
        profile_ids = [self.storage.get_profile_id("alice")]
        stmt = build_search(query, profile_ids, self.storage.dialect, self.storage.sort_key_index)

        def explain(session: Any) -> list[str]:
            connection = session.connection()
            sql = stmt.compile(connection, compile_kwargs={"render_postcompile": True})
            params = sql.params
            if self.storage.dialect == "sqlite":
                text = "EXPLAIN QUERY PLAN " + str(sql)
                rows = connection.exec_driver_sql(
                    text, tuple(sql.positiontup and [params[k] for k in sql.positiontup])
                )
                return [str(r[-1]) for r in rows]
            # the test data is small: tell the planner scans and sorts cost a lot
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            if no_sort:
                connection.exec_driver_sql("SET LOCAL enable_sort = off")
            return [str(r[0]) for r in connection.exec_driver_sql("EXPLAIN " + str(sql), params)]

        return await self.storage.db.run(explain)

    def assertReadsIndex(self, plan: list[str]) -> None:
        self.assertTrue(any(INDEX_NAME in line for line in plan), plan)

    async def test_order_by_declared_path(self) -> None:
        """An order by the declared path in its direction walks the index, no sort."""
        query = {"profiles": ["alice"], "limit": 20,
                 "order-by": [{"path": ["published"], "direction": "desc"}]}  # fmt: skip
        plan = await self.plan(query, no_sort=True)
        self.assertReadsIndex(plan)
        if test_dialect() == "sqlite":
            self.assertFalse([line for line in plan if "TEMP B-TREE FOR ORDER BY" in line], plan)
        else:  # an Incremental Sort of ties (by item id) is fine, a full Sort is not
            self.assertFalse([line for line in plan if re.match(r"\s*(->\s+)?Sort\s+\(", line)],
                             plan)  # fmt: skip

    async def test_range_filter_on_declared_path(self) -> None:
        """A range filter on the declared path reads a range of the index."""
        recent = {"path": ["published"], "op": ">=", "value": 1_700_002_950.0}
        query = {"profiles": ["alice"], "parsed": [recent]}
        self.assertReadsIndex(await self.plan(query))

    async def test_undeclared_path(self) -> None:
        """An undeclared path does not read the sort values at all."""
        query = {"profiles": ["alice"], "order-by": [{"path": ["title"]}]}
        plan = await self.plan(query)
        self.assertFalse([line for line in plan if "sort_values" in line], plan)
