"""The read-only path on the driver alone (Gateway.read, driver_sql) and get_items on it."""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from twisted.trial.unittest import TestCase

from sat_storage import engines, gateway
from sat_storage.driver_sql import DriverStatement, Reader
from sat_storage.gateway import GatewayClosed
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.storage.items_query import ItemsQuery
from sat_storage.storage.pubsub_paging import PubsubPagingStore
from sat_storage.xml_tools import to_xml
from twisted_tests.db import make_storage, only_on, storage_with_profiles
from twisted_tests.locks import real_locked_error
from twisted_tests.storage import search_data
from twisted_tests.storage.pubsub_helpers import SERVICE, Client, make_items
from twisted_tests.storage.search_data import OTHER_SERVICE

NAMES = [f"i{n:02d}" for n in range(12)]

#: the queries the driver path answers (newest or oldest pages, no ids, no cursor)
PLAIN_QUERIES = [
    ItemsQuery(),
    ItemsQuery(5),
    ItemsQuery(5, desc=False),
    ItemsQuery(0),
    ItemsQuery(100),
    ItemsQuery(5, before=""),
    ItemsQuery(None, before="", desc=False),
    ItemsQuery(4, order_by=["creation"]),
    ItemsQuery(4, order_by=["creation"], desc=False),
    ItemsQuery(3, order_by=["modification", "creation"]),
]


def _fields(item: Any) -> tuple[Any, ...]:
    """What a caller reads of an item (the element as its XML, the node's id)."""
    return (
        item.id, item.node_id, item.name, to_xml(item.data), item.created, item.updated,
        item.parsed, item.node.id if item.node is not None else None,
    )  # fmt: skip


class DriverReadsTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")
        self.alice = Client("alice")
        self.node = await self.storage.set_pubsub_node(self.alice, SERVICE, "blog")
        parsed = [{"n": n, "big": 2**60, "f": 0.5} for n in range(len(NAMES))]
        await self.storage.cache_pubsub_items(self.alice, self.node, make_items(NAMES), parsed)
        # edit two old items: modification order differs from creation order
        edited = make_items(["i01", "i03"])
        await self.storage.cache_pubsub_items(self.alice, self.node, edited, [None, {"e": 1}])

    async def both(self, node_id: int, query: ItemsQuery) -> tuple[Any, Any]:
        """(driver path, Session path) answers of ``query``, as fields and metadata."""
        node = self.node if node_id == self.node.id else None
        driver = await self.storage.db.read(PubsubPagingStore.read_items_page, node_id, query, node)
        orm = await self.storage.db.run(PubsubPagingStore.get_items_page_txn, node_id, query, node)
        return (
            ([_fields(i) for i in driver[0]], driver[1]),
            ([_fields(i) for i in orm[0]], orm[1]),
        )

    async def test_same_pages_as_session_path(self) -> None:
        """Every plain query gives the Session path's items (all fields) and metadata."""
        for query in PLAIN_QUERIES:
            driver, orm = await self.both(self.node.id, query)
            self.assertEqual(driver, orm, query)
        self.assertNotEqual(orm[0], [])  # the comparison saw items

    async def test_same_on_empty_and_unknown_nodes(self) -> None:
        """An empty node and an unknown node id give the Session path's answers."""
        empty = await self.storage.set_pubsub_node(self.alice, SERVICE, "empty")
        for node_id in (empty.id, empty.id + 1000):
            for query in (ItemsQuery(5), ItemsQuery(0), ItemsQuery(None, desc=False)):
                driver, orm = await self.both(node_id, query)
                self.assertEqual(driver, orm, (node_id, query))

    async def test_get_items_on_driver_path(self) -> None:
        """get_items of a plain query runs no SQLAlchemy execution: only the driver's
        two statements (seen by the engine's listeners), no BEGIN IMMEDIATE."""
        seen: list[tuple[Any, str]] = []

        def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            seen.append((conn, statement))

        sa.event.listen(self.storage.db.engine, "before_cursor_execute", record)
        self.addCleanup(sa.event.remove, self.storage.db.engine, "before_cursor_execute", record)
        items, metadata = await self.storage.get_items(self.node, max_items=3)
        self.assertEqual([i.name for i in items], ["i11", "i01", "i03"])
        self.assertEqual(metadata["rsm"]["count"], len(NAMES))
        self.assertEqual(len(seen), 2)
        self.assertEqual([conn for conn, _ in seen], [None, None])  # no Connection: driver

    async def test_items_not_shared(self) -> None:
        """Two driver reads give distinct elements and parsed dicts."""
        first, _ = await self.storage.get_items(self.node, max_items=1)
        second, _ = await self.storage.get_items(self.node, max_items=1)
        self.assertIsNot(first[0].data, second[0].data)
        self.assertIsNot(first[0].parsed, second[0].parsed)
        self.assertEqual(first[0].parsed, {"e": 1})

    @only_on("sqlite")
    async def test_read_takes_no_write_lock(self) -> None:
        """A read answers while another connection holds SQLite's write lock (the
        Session path's BEGIN IMMEDIATE would wait for it), and does not see that
        connection's uncommitted rows."""
        path = engines.sqlite_path(self.storage.db.engine.url)
        holder = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(holder.close)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("DELETE FROM pubsub_items WHERE node_id = ?", (self.node.id,))
        items, metadata = await self.storage.get_items(self.node, max_items=2)
        holder.execute("ROLLBACK")
        self.assertEqual([i.name for i in items], ["i01", "i03"])
        self.assertEqual(metadata["rsm"]["count"], len(NAMES))


class GatewayReadTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.db = self.storage.db

    async def test_rows_as_sqlalchemy_gives_them(self) -> None:
        """A statement's rows equal those of SQLAlchemy's execution, with the column
        types' result processing (a node's enum and datetime)."""
        await self.storage.create_profile("bob")
        await self.storage.set_pubsub_node(Client("bob"), SERVICE, "n")
        stmt = sa.select(PubsubNode.__table__)
        driver = await self.db.read(lambda reader: list(reader.rows(DriverStatement(stmt), {})))
        orm = await self.db.run(lambda session: [tuple(r) for r in session.execute(stmt)])
        self.assertEqual(driver, orm)
        self.assertEqual(len(driver), 1)

    def test_bind_needing_processing_refused(self) -> None:
        """A statement whose parameter SQLAlchemy would convert or expand is refused."""
        items = PubsubItem.__table__
        expanding = sa.select(items.c.id).where(
            items.c.name.in_(sa.bindparam("names", expanding=True))
        )
        dated = sa.select(items.c.id).where(items.c.updated > sa.bindparam("when"))
        for stmt in (expanding, dated):
            with self.assertRaisesRegex(ValueError, "needs SQLAlchemy's execution"):
                DriverStatement(stmt).compiled(self.db.engine.dialect)

    async def test_driver_error_wrapped(self) -> None:
        """A driver error comes as SQLAlchemy's DBAPIError, the statement named."""
        missing = DriverStatement(sa.select(sa.table("no_such_table", sa.column("x"))))

        def txn(reader: Reader) -> Any:
            return reader.rows(missing, {})

        with self.assertRaises(DBAPIError) as caught:
            await self.db.read(txn)
        self.assertIn("no_such_table", str(caught.exception.statement))

    async def test_read_then_write(self) -> None:
        """The connection a read used is left clean: a write transaction follows."""
        stmt = DriverStatement(sa.select(sa.func.count()).select_from(PubsubNode.__table__))
        await self.db.read(lambda reader: reader.rows(stmt, {}))
        await self.storage.create_profile("carol")

        def names(session: Session) -> list[Any]:
            return list(session.scalars(sa.text("SELECT name FROM profiles")))

        self.assertIn("carol", await self.db.run(names))

    async def test_transient_retried(self) -> None:
        """A transient error is retried on a fresh attempt; another error is not."""
        self.patch(gateway, "RETRY_DELAY", 0)
        locked = real_locked_error(self)
        attempts: list[int] = []

        def flaky(reader: Reader) -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise locked
            return "done"

        with self.assertLogs("sat_storage.gateway", "WARNING"):
            self.assertEqual(await self.db.read(flaky), "done")
        self.assertEqual(len(attempts), 2)

        def broken(reader: Reader) -> None:
            attempts.append(1)
            raise KeyError("not transient")

        with self.assertRaises(KeyError):
            await self.db.read(broken)
        self.assertEqual(len(attempts), 3)

    async def test_closed_refuses(self) -> None:
        """A closed gateway refuses reads."""
        await self.db.close()
        with self.assertRaises(GatewayClosed):
            await self.db.read(lambda reader: None)


def _p(path: list[Any], op: str, value: Any) -> dict[str, Any]:
    return {"path": path, "op": op, "value": value}


#: searches of many shapes (filters of every kind of value, orders, paging)
SEARCHES: list[dict[str, Any]] = [
    {},
    {"fts": "hello"},
    {"fts": "world OR design", "order-by": [{"order": "rank"}]},
    {"names": ["hello", "apple", "nope"]},
    {"types": [None], "services": [str(OTHER_SERVICE)]},
    {"nodes": ["events"], "subtypes": ["meeting"]},
    {"parsed": [_p(["rating"], ">=", 4)], "order-by": [{"path": ["rating"], "direction": "desc"}]},
    {"parsed": [_p(["rating"], "between", [3, 5])]},
    {"parsed": [_p(["rating"], "not_in", [3, 10, "4"])]},
    {"parsed": [_p(["tags"], "overlap", ["xmpp", "db"])], "order-by": [{"order": "modification"}]},
    {"parsed": [_p(["tags"], "ioverlap", ["XMPP"])], "limit": 2, "index": 1},
    {"parsed": [_p(["tags"], "disjoint", ["db"])]},
    {"parsed": [_p(["title"], "like", "%\\%")]},
    {"parsed": [_p(["author", "name"], "ilike", "ALICE")]},
    {
        "parsed": [_p(["draft"], "eq", None)],
        "order-by": [{"order": "creation", "direction": "desc"}],
    },
    {"parsed": [_p(["price"], "le", 10.0)], "order-by": [{"path": ["price"]}]},
    {"order-by": [{"path": ["title"], "direction": "asc"}, {"order": "item_id"}], "limit": 4},
]


def _search_fields(item: Any) -> tuple[Any, ...]:
    """What a caller reads of a search result, its node's attributes included."""
    node = item.node
    node_fields = tuple(sorted((k, repr(v)) for k, v in vars(node).items() if k[0] != "_"))
    return (*_fields(item), node_fields)


class DriverSearchTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        await search_data.fixed_data_set(self.storage)

    async def test_repeated_search_same_results(self) -> None:
        """A search asked again is replayed by the driver alone and gives the same
        items, nodes and values as its first run (SQLAlchemy's)."""
        seen: list[Any] = []

        def record(conn: Any, *_args: Any) -> None:
            seen.append(conn)

        engine = self.storage.db.engine
        for search in SEARCHES:
            query = {"profiles": ["alice", "bob"], **search}
            first = [_search_fields(i) for i in await self.storage.search_pubsub_items(query)]
            sa.event.listen(engine, "before_cursor_execute", record)
            try:
                again = await self.storage.search_pubsub_items(query)
            finally:
                sa.event.remove(engine, "before_cursor_execute", record)
            self.assertEqual([_search_fields(i) for i in again], first, query)
            self.assertEqual(seen, [None], query)  # one statement, by the driver alone
            del seen[:]
        self.assertNotEqual(first, [])

    async def test_repeated_search_sees_changes(self) -> None:
        """A replayed search reads the database: an item added, then one deleted."""
        query = {"profiles": ["alice"], "parsed": [_p(["tags"], "overlap", ["db"])]}
        names = [i.name for i in await self.storage.search_pubsub_items(query)]
        self.assertEqual(names, ["cache", "apple"])
        blog = await search_data.node(self.storage, "alice")  # the existing one
        await search_data.cache(
            self.storage, "alice", blog, [search_data.atom_item("new")], [{"tags": ["db"]}]
        )
        names = [i.name for i in await self.storage.search_pubsub_items(query)]
        self.assertEqual(names, ["cache", "apple", "new"])
        await self.storage.delete_pubsub_items(blog, ["cache"])
        names = [i.name for i in await self.storage.search_pubsub_items(query)]
        self.assertEqual(names, ["apple", "new"])
