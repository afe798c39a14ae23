"""get_items: XEP-0059 paging of cached pubsub items (keyset on the indexes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from twisted.trial.unittest import TestCase

from sat_storage.exceptions import NotFound
from sat_storage.storage.checks import IN_BATCH
from twisted_tests.db import only_on, storage_with_profiles
from twisted_tests.storage.pubsub_helpers import (
    SERVICE,
    Client,
    make_item,
    make_items,
)

NAMES = [f"i{n}" for n in range(10)]  # cached in this order
# a search (never a scan) of one node's entries in an index of pubsub_items
PLAN_SEARCH = (
    r"^SEARCH pubsub_items USING (COVERING )?INDEX "
    r"(pubsub_items__node_id_id|pubsub_items__node_id_updated_id|sqlite_autoindex_\w+) "
    r"\(node_id=\?"
)
# or the node's own row (its item count), or the frame of a SELECT of scalar subqueries
PLAN_OTHER = (
    r"^(SEARCH pubsub_nodes USING INTEGER PRIMARY KEY \(rowid=\?\)|SCALAR SUBQUERY \d+"
    r"|SCAN CONSTANT ROW)$"
)
ORDER_INDEXES = (
    ("creation", "pubsub_items__node_id_id"),
    ("modification", "pubsub_items__node_id_updated_id"),
)


def rsm(first: str | None, last: str | None, index: int | None, count: int) -> dict[str, Any]:
    return {"first": first, "last": last, "index": index, "count": count}


class GetItemsTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(NAMES))

    async def page(self, **kwargs: Any) -> tuple[list[str], dict[str, Any]]:
        items, metadata = await self.storage.get_items(self.node, **kwargs)
        return [item.name for item in items], metadata

    async def test_max_only_newest(self) -> None:
        """max_items alone gives the newest items, oldest first."""
        names, metadata = await self.page(max_items=3)
        self.assertEqual(names, ["i7", "i8", "i9"])
        self.assertEqual(metadata, {"rsm": rsm("i7", "i9", 7, 10), "complete": True})

    async def test_max_only_ascending(self) -> None:
        """desc=False: the oldest items."""
        names, metadata = await self.page(max_items=3, desc=False)
        self.assertEqual(names, ["i0", "i1", "i2"])
        self.assertEqual(metadata, {"rsm": rsm("i0", "i2", 0, 10), "complete": False})

    async def test_no_limit(self) -> None:
        """Without max_items every item is given."""
        names, metadata = await self.page()
        self.assertEqual(names, NAMES)
        self.assertEqual(metadata, {"rsm": rsm("i0", "i9", 0, 10), "complete": True})

    async def test_max_bigger_than_count(self) -> None:
        """max_items above the count gives all items."""
        names, metadata = await self.page(max_items=50, force_rsm=True)
        self.assertEqual(names, NAMES)
        self.assertEqual(metadata["rsm"], rsm("i0", "i9", 0, 10))

    async def test_max_zero_counts(self) -> None:
        """max_items=0 gives no item, only the count."""
        names, metadata = await self.page(max_items=0)
        self.assertEqual(names, [])
        self.assertEqual(metadata, {"rsm": rsm(None, None, None, 10), "complete": False})

    async def test_after(self) -> None:
        """after=ID gives the items just after it."""
        names, metadata = await self.page(max_items=3, after="i2")
        self.assertEqual(names, ["i3", "i4", "i5"])
        self.assertEqual(metadata, {"rsm": rsm("i3", "i5", 3, 10), "complete": False})

    async def test_after_reaching_end(self) -> None:
        """A page after ID that reaches the newest item is complete."""
        names, metadata = await self.page(max_items=5, after="i6")
        self.assertEqual(names, ["i7", "i8", "i9"])
        self.assertEqual(metadata, {"rsm": rsm("i7", "i9", 7, 10), "complete": True})

    async def test_after_last(self) -> None:
        """After the newest item: an empty, complete page."""
        names, metadata = await self.page(max_items=3, after="i9")
        self.assertEqual(names, [])
        self.assertEqual(metadata, {"rsm": rsm(None, None, None, 10), "complete": True})

    async def test_before(self) -> None:
        """before=ID gives the items just before it, oldest first."""
        names, metadata = await self.page(max_items=3, before="i5")
        self.assertEqual(names, ["i2", "i3", "i4"])
        self.assertEqual(metadata, {"rsm": rsm("i2", "i4", 2, 10), "complete": False})

    async def test_before_near_start(self) -> None:
        """Before the second item: only the first."""
        names, metadata = await self.page(max_items=3, before="i1")
        self.assertEqual(names, ["i0"])
        self.assertEqual(metadata["rsm"], rsm("i0", "i0", 0, 10))

    async def test_before_first(self) -> None:
        """Before the oldest item: an empty page, not complete."""
        names, metadata = await self.page(max_items=3, before="i0")
        self.assertEqual(names, [])
        self.assertEqual(metadata, {"rsm": rsm(None, None, None, 10), "complete": False})

    async def test_last_page(self) -> None:
        """before="" gives the last page, whatever desc says."""
        names, metadata = await self.page(max_items=4, before="", desc=False)
        self.assertEqual(names, ["i6", "i7", "i8", "i9"])
        self.assertEqual(metadata, {"rsm": rsm("i6", "i9", 6, 10), "complete": True})

    async def test_from_index(self) -> None:
        """from_index=I gives the items from that position."""
        names, metadata = await self.page(max_items=3, from_index=4)
        self.assertEqual(names, ["i4", "i5", "i6"])
        self.assertEqual(metadata, {"rsm": rsm("i4", "i6", 4, 10), "complete": False})

    async def test_from_index_past_end(self) -> None:
        """An index past the end gives an empty, complete page."""
        names, metadata = await self.page(max_items=3, from_index=10)
        self.assertEqual(names, [])
        self.assertEqual(metadata, {"rsm": rsm(None, None, None, 10), "complete": True})

    async def test_walk_forward(self) -> None:
        """Following last ids with after= visits every item once, in order."""
        seen: list[str] = []
        names, metadata = await self.page(max_items=4, desc=False)
        while names:
            seen.extend(names)
            names, metadata = await self.page(max_items=4, after=metadata["rsm"]["last"])
        self.assertEqual(seen, NAMES)
        self.assertTrue(metadata["complete"])

    async def test_walk_backward(self) -> None:
        """Following first ids with before= from the last page visits every item once."""
        seen: list[str] = []
        names, metadata = await self.page(max_items=4, before="")
        while names:
            seen[:0] = names
            names, metadata = await self.page(max_items=4, before=metadata["rsm"]["first"])
        self.assertEqual(seen, NAMES)

    async def test_item_ids(self) -> None:
        """item_ids gives those items in order; unknown ids are skipped."""
        names, metadata = await self.page(item_ids=["i5", "i1", "nope", "i1"])
        self.assertEqual(names, ["i1", "i5"])
        self.assertEqual(metadata, {"rsm": rsm("i1", "i5", 0, 2), "complete": True})

    async def test_item_ids_with_max(self) -> None:
        """max_items applies to the items found: the newest ones."""
        names, metadata = await self.page(item_ids=["i1", "i5", "i8"], max_items=2)
        self.assertEqual(names, ["i5", "i8"])
        self.assertEqual(metadata["rsm"], rsm("i5", "i8", 1, 3))

    async def test_item_ids_from_index(self) -> None:
        """item_ids with from_index (a Libervia-style RSM request): a page of those items."""
        names, metadata = await self.page(
            item_ids=["i8", "i1", "i5", "i3"], from_index=0, max_items=2
        )
        self.assertEqual(names, ["i1", "i3"])
        self.assertEqual(metadata, {"rsm": rsm("i1", "i3", 0, 4), "complete": False})
        names, metadata = await self.page(item_ids=["i8", "i1", "i5", "i3"], from_index=3)
        self.assertEqual(names, ["i8"])
        self.assertEqual(metadata, {"rsm": rsm("i8", "i8", 3, 4), "complete": True})

    async def test_item_ids_after(self) -> None:
        """item_ids with after: the named items after the cursor (named or not)."""
        names, metadata = await self.page(
            item_ids=["i1", "i3", "i5", "i8"], after="i3", max_items=1
        )
        self.assertEqual(names, ["i5"])
        self.assertEqual(metadata["rsm"], rsm("i5", "i5", 2, 4))
        names, metadata = await self.page(item_ids=["i1", "i3", "i5", "i8"], after="i4")
        self.assertEqual((names, metadata["complete"]), (["i5", "i8"], True))

    async def test_item_ids_before(self) -> None:
        """item_ids with before: the named items just before the cursor; "" the last page."""
        names, metadata = await self.page(
            item_ids=["i1", "i3", "i5", "i8"], before="i8", max_items=2
        )
        self.assertEqual(names, ["i3", "i5"])
        self.assertEqual(metadata["rsm"], rsm("i3", "i5", 1, 4))
        names, metadata = await self.page(item_ids=["i1", "i3", "i5", "i8"], before="", max_items=3)
        self.assertEqual(names, ["i3", "i5", "i8"])

    async def test_item_ids_unknown_cursor(self) -> None:
        """With item_ids too, a cursor that is not cached raises NotFound naming it."""
        with self.assertRaisesRegex(NotFound, "nope"):
            await self.page(item_ids=["i1"], after="nope")

    async def test_many_item_ids(self) -> None:
        """More item_ids than one IN chunk holds are all found."""
        many = [f"x{n:04d}" for n in range(IN_BATCH * 2 + 10)]
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(many))
        names, metadata = await self.page(item_ids=many + ["i0"], order_by=["creation"])
        self.assertEqual(names, ["i0"] + many)
        self.assertEqual(metadata["rsm"]["count"], len(many) + 1)

    async def test_modification_order(self) -> None:
        """Re-caching an edited item moves it to the end of modification order, not
        creation (an unchanged one changes nothing: see test_pubsub_items)."""
        edited = make_item("i2", "edited")
        await self.storage.cache_pubsub_items(self.alice, self.node, [edited])
        by_modification, _ = await self.page(max_items=2, order_by=["modification"])
        by_creation, _ = await self.page(max_items=2, order_by=["creation"])
        default, _ = await self.page(max_items=2)
        self.assertEqual(by_modification, ["i9", "i2"])
        self.assertEqual(by_creation, ["i8", "i9"])
        self.assertEqual(default, by_modification)

    async def test_after_in_modification_order(self) -> None:
        """Cursors follow the requested order."""
        edited = make_item("i2", "edited")
        await self.storage.cache_pubsub_items(self.alice, self.node, [edited])
        names, metadata = await self.page(max_items=3, after="i8", order_by=["modification"])
        self.assertEqual(names, ["i9", "i2"])
        self.assertEqual(metadata["rsm"], rsm("i9", "i2", 8, 10))
        names, _ = await self.page(max_items=3, after="i8", order_by=["creation"])
        self.assertEqual(names, ["i9"])

    async def test_unknown_cursor(self) -> None:
        """An after or before id that is not cached raises NotFound naming it."""
        with self.assertRaisesRegex(NotFound, "nope"):
            await self.page(max_items=3, after="nope")
        with self.assertRaisesRegex(NotFound, "gone"):
            await self.page(max_items=3, before="gone")

    async def test_bad_arguments(self) -> None:
        """Bad arguments raise ValueError/TypeError naming the culprit."""
        cases = [
            (ValueError, "colour", {"order_by": ["colour"]}),
            (ValueError, "before", {"before": "i1", "after": "i2"}),
            (ValueError, "from_index", {"after": "i1", "from_index": 2}),
            (ValueError, "max_items", {"max_items": -1}),
            (TypeError, "max_items", {"max_items": "3"}),
            (TypeError, "max_items", {"max_items": True}),
            (ValueError, "after", {"after": ""}),
            (TypeError, r"item_ids\[0\]", {"item_ids": [1]}),
            (TypeError, "order_by", {"order_by": "creation"}),
            (TypeError, "desc", {"desc": "yes"}),
        ]
        for error, pattern, kwargs in cases:
            with self.assertRaisesRegex(error, pattern, msg=str(kwargs)):
                await self.page(**kwargs)

    async def test_bad_node(self) -> None:
        """A node that is not a stored PubsubNode raises TypeError."""
        with self.assertRaisesRegex(TypeError, "node"):
            await self.storage.get_items("blog")


class EmptyNodeTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.node = await self.storage.set_pubsub_node(Client("alice"), SERVICE, "empty")

    async def test_every_request(self) -> None:
        """Every kind of request on an empty node gives no item, count 0, complete."""
        for kwargs in (
            {},
            {"max_items": 5},
            {"max_items": 5, "desc": False},
            {"max_items": 5, "before": ""},
            {"max_items": 5, "from_index": 0},
            {"max_items": 0},
            {"item_ids": ["a"]},
        ):
            items, metadata = await self.storage.get_items(self.node, **kwargs)
            self.assertEqual(items, [], kwargs)
            self.assertEqual(metadata, {"rsm": rsm(None, None, None, 0), "complete": True})

    async def test_unknown_cursor(self) -> None:
        """after= on an empty node raises NotFound."""
        with self.assertRaises(NotFound):
            await self.storage.get_items(self.node, max_items=5, after="a")


class IndexUseTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.node = await self.storage.set_pubsub_node(Client("alice"), SERVICE, "blog")
        await self.storage.cache_pubsub_items(Client("alice"), self.node, make_items(NAMES))
        self.statements: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                self.statements.append((statement, params))

        event.listen(self.storage.db.engine, "before_cursor_execute", capture)
        self.addCleanup(event.remove, self.storage.db.engine, "before_cursor_execute", capture)

    async def plans(self, **kwargs: Any) -> list[str]:
        """EXPLAIN QUERY PLAN details of every SELECT get_items(**kwargs) runs."""
        self.statements.clear()
        await self.storage.get_items(self.node, **kwargs)
        statements = list(self.statements)

        def explain(session: Any) -> list[str]:
            connection = session.connection()
            details = []
            for sql, params in statements:
                rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
                details.extend(row[-1] for row in rows)
            return details

        return await self.storage.db.run(explain)

    async def count_plans(self, **kwargs: Any) -> list[str]:
        """The plans (text) of the COUNTs that get_items(**kwargs) runs; on PostgreSQL
        with sequential and bitmap scans off (the test's node is too small to want an
        index otherwise): the plan shows which index can answer alone."""
        self.statements.clear()
        await self.storage.get_items(self.node, **kwargs)
        counts = [s for s in self.statements if "count(" in s[0].lower()]

        def explain(session: Any) -> list[str]:
            connection = session.connection()
            if connection.dialect.name == "sqlite":
                prefix = "EXPLAIN QUERY PLAN "
            else:
                prefix = "EXPLAIN "
                connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
                connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            return [
                "\n".join(str(row[-1]) for row in connection.exec_driver_sql(prefix + sql, params))
                for sql, params in counts
            ]

        return await self.storage.db.run(explain)

    async def test_counts_read_an_index_range(self) -> None:
        """No page counts the node: the count is stored, the index known for the oldest,
        newest, last and from_index pages; after or before a cursor, one COUNT of a
        range of the order's index, which answers alone (covering / index-only)."""
        covering = {  # a range of the node's entries (node_id and a bound), index alone
            "sqlite": r"SEARCH pubsub_items USING COVERING INDEX {index} \(node_id=\? AND ",
            "postgresql": r"Index Only Scan using {index} on pubsub_items.*\n.*"
            r"Index Cond: \(\(node_id = \d+\) AND \(",
        }[self.storage.dialect]
        for order, index in ORDER_INDEXES:
            for cursor in ({}, {"desc": False}, {"before": ""}, {"from_index": 5}):
                kwargs = {"order_by": [order], "max_items": 3} | cursor
                self.assertEqual(await self.count_plans(**kwargs), [], kwargs)
            for cursor in ({"after": "i3"}, {"before": "i6"}, {"after": "i8"}):
                kwargs = {"order_by": [order], "max_items": 3} | cursor
                plans = await self.count_plans(**kwargs)
                self.assertEqual(len(plans), 1, kwargs)
                self.assertRegex(plans[0], covering.format(index=index), kwargs)

    @only_on("sqlite")
    async def test_pages_use_the_order_indexes(self) -> None:
        """Pages search the order's index; counts read an index alone; no sort, no scan."""
        requests = [
            ({"order_by": [order], "max_items": 3} | cursor, index)
            for order, index in (
                ("creation", "pubsub_items__node_id_id"),
                ("modification", "pubsub_items__node_id_updated_id"),
            )
            for cursor in ({}, {"after": "i3"}, {"before": "i6"}, {"from_index": 5})
        ]
        for kwargs, index in requests:
            plans = await self.plans(**kwargs)
            msg = f"{kwargs}: {plans}"
            # the page itself reads rows through the order's index
            page = f"SEARCH pubsub_items USING INDEX {index} (node_id=?"
            self.assertTrue(any(p.startswith(page) for p in plans), msg)
            for plan in plans:
                self.assertRegex(plan, f"{PLAN_SEARCH}|{PLAN_OTHER}", msg)
                self.assertNotIn("TEMP B-TREE", plan, msg)
