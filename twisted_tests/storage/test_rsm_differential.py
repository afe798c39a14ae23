"""Differential property-based test of RSM pages: stored count vs counting, both engines.

Hypothesis generates sequences of item writes (cache new, edited, unchanged and
payload-less items, retract, purge, sync reset, catch-up) applied through the public
API to one node in a SQLite file and one in a PostgreSQL database (the test server of
pg_server.py, whatever ``SAT_STORAGE_TEST_DB`` says). After each write, generated
``get_items`` requests (every kind: newest, oldest, last, after/before an id,
from_index, item_ids; every order: creation, modification, both, the default) are
answered by each engine and compared with the reference: the COUNT-based computation
the storage did before the node's ``item_count`` existed, over the node's items read
in full and in order in the same database (:func:`reference_page`). The engines must
also agree with each other, ``item_count`` must equal the rows, and
``items_version`` must grow exactly when a write changed the node's items. A second
test does the same with the positions' marks (rsm_positions.py) every 2 items.

Examples per run: the ``SAT_STORAGE_HYPOTHESIS`` profile (see
test_search_differential.py: ``ci``, ``dev``, ``long``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Text, func, select, tuple_, type_coerce
from sqlalchemy.orm import Session
from twisted.internet import defer, threads
from twisted.python import log
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from sat_storage import Storage
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubItem, PubsubNode, SyncState
from sat_storage.storage import rsm_positions
from sat_storage.storage.items_query import ItemsQuery
from twisted_tests.storage.pubsub_helpers import SERVICE, Client, make_item
from twisted_tests.storage.test_search_differential import (
    PROFILE,
    TIMEOUTS,
    blocking,
    engine_storages,
)

NAMES = [f"i{n}" for n in range(10)]
ALICE = Client("alice")
ORDERS = [None, ["creation"], ["modification"], ["modification", "creation"]]
_nodes = itertools.count()


def item(name: str, version: int, payload: bool) -> domish.Element:
    """Item ``name`` with content ``version``; without payload: no child element."""
    element = make_item(name, f"{name} v{version}")
    if not payload:
        element.children = []
    return element


items_st = st.lists(
    st.tuples(st.sampled_from(NAMES), st.integers(0, 2), st.booleans() | st.just(True)),
    min_size=1,
    max_size=6,
)
names_st = st.lists(st.sampled_from(NAMES + ["unknown"]), min_size=1, max_size=4, unique=True)
writes_st = st.one_of(
    st.tuples(st.just("cache"), items_st),
    st.tuples(st.just("retract"), names_st),
    st.tuples(st.just("purge"), st.none()),
    st.tuples(st.just("reset"), st.none()),
    st.tuples(st.just("catch_up"), st.tuples(items_st, names_st, items_st)),
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of one get_items request (cursors may name unknown items)."""
    kwargs: dict[str, Any] = {"order_by": draw(st.sampled_from(ORDERS))}
    kwargs["max_items"] = draw(st.sampled_from([None, 0, 1, 2, 3]))
    kind = draw(st.sampled_from(["newest", "oldest", "last", "after", "before", "index"]))
    if kind == "oldest":
        kwargs["desc"] = False
    elif kind == "last":
        kwargs["before"] = ""
    elif kind in ("after", "before"):
        kwargs[kind] = draw(st.sampled_from(NAMES))
    elif kind == "index":
        kwargs["from_index"] = draw(st.integers(0, len(NAMES) + 1))
    if draw(st.integers(0, 5)) == 0:
        kwargs["item_ids"] = draw(names_st)
    return kwargs


def reference_page(session: Session, node_id: int, query: ItemsQuery) -> Any:
    """The page and metadata as computed before ``item_count``: from every item of the
    node in the query's order, counted (``NotFound`` for an unknown cursor)."""
    keys = [getattr(PubsubItem, k) for k in query.keys]
    node_filter = PubsubItem.node_id == node_id
    if query.item_ids is not None:
        node_filter &= PubsubItem.name.in_(query.item_ids)
    ordered = list(session.scalars(select(PubsubItem.name).where(node_filter).order_by(*keys)))
    count, most = len(ordered), query.max_items
    cursor = query.before or query.after
    if cursor:
        known = session.scalars(
            select(PubsubItem.id).where(PubsubItem.node_id == node_id, PubsubItem.name == cursor)
        ).first()
        if known is None:
            return "NotFound"
        cursor_key = session.execute(select(*keys).where(PubsubItem.id == known)).one()
        below = session.execute(
            select(func.count()).where(node_filter, tuple_(*keys) < tuple(cursor_key))
        ).scalar_one()
    if query.after is not None:
        start = below + (1 if query.after in ordered else 0)
        page = ordered[start:] if most is None else ordered[start : start + most]
    elif query.before:
        page = ordered[:below] if most is None else ordered[max(below - most, 0) : below]
    elif query.from_index is not None:
        start = query.from_index
        page = ordered[start:] if most is None else ordered[start : start + most]
    elif most is not None and (query.before == "" or query.desc):
        page = ordered[max(count - most, 0) :]
    else:
        page = ordered if most is None else ordered[:most]
    if most == 0:
        page = []
    index = ordered.index(page[0]) if page else None
    if page:
        complete = index + len(page) == count
    else:
        complete = count == 0 or (most != 0 and not query.before)
    rsm = {"first": page[0] if page else None, "last": page[-1] if page else None,
           "index": index, "count": count}  # fmt: skip
    return page, {"rsm": rsm, "complete": complete}


def state_txn(session: Session, node_id: int) -> tuple[int, int, list[tuple[Any, ...]]]:
    """``(item_count, items_version, every item's name, XML, parsed data, update time)``."""
    stored = session.execute(
        select(PubsubNode.item_count, PubsubNode.items_version).where(PubsubNode.id == node_id)
    ).one()
    rows = session.execute(
        select(PubsubItem.name, type_coerce(PubsubItem.data, Text), PubsubItem.parsed,
               PubsubItem.updated).where(PubsubItem.node_id == node_id).order_by(PubsubItem.id)
    )  # fmt: skip
    return stored[0], stored[1], [tuple(row) for row in rows]


def written_then_removed(write: tuple[str, Any]) -> bool:
    """A catch-up writing an item (``changed``) that it also removes: an item new to
    the node is inserted, then deleted, in the one transaction. The rows may end as
    they were while the version grew (two changes were made): that is not an
    unchanged write."""
    kind, args = write
    return kind == "catch_up" and bool({spec[0] for spec in args[0]} & set(args[1]))


class DifferentialPagingTests(TestCase):
    timeout = TIMEOUTS[PROFILE]

    async def setUp(self) -> None:
        self.storages = await engine_storages(self)
        for storage in self.storages.values():
            await storage.create_profile("alice")
        self.stats: Counter[str] = Counter()
        self.stopping = False  # set when the test ends (timeout): no more examples
        self.addCleanup(setattr, self, "stopping", True)

    def tearDown(self) -> None:
        log.msg(f"rsm differential: {self.id()} profile={PROFILE} {dict(self.stats)}")

    async def write(self, storage: Storage, node: PubsubNode, write: tuple[str, Any]) -> None:
        kind, args = write
        if kind == "cache":
            await storage.cache_pubsub_items(ALICE, node, [item(*spec) for spec in args])
        elif kind == "retract":
            await storage.delete_pubsub_items(node, args)
        elif kind == "purge":
            await storage.purge_pubsub_items(services=[SERVICE], names=[node.name])
        elif kind == "reset":
            await storage.claim_pubsub_node_sync(node, "owner", 60.0, delete_items=True)
            await storage.release_pubsub_node_sync(node, "owner", SyncState.COMPLETED)
        else:
            changed, removed, appended = args
            await storage.catch_up_pubsub_items(
                ALICE, node, [item(*s) for s in changed], None, removed,
                [item(*s) for s in appended], None,
            )  # fmt: skip

    async def answer(self, storage: Storage, node: PubsubNode, kwargs: dict[str, Any]) -> Any:
        """(names, metadata) of get_items, and the reference's, in the same database."""
        try:
            items, metadata = await storage.get_items(node, **kwargs)
            got: Any = ([i.name for i in items], metadata)
        except NotFound:
            got = "NotFound"
        query = ItemsQuery(**kwargs)
        return got, await storage.db.run(reference_page, node.id, query)

    async def check(self, nodes: dict[str, PubsubNode], kwargs: dict[str, Any]) -> None:
        answers = {}
        for dialect, storage in self.storages.items():
            got, expected = await self.answer(storage, nodes[dialect], kwargs)
            self.assertEqual(got, expected, f"{dialect}: {kwargs}")
            answers[dialect] = got
        self.assertEqual(answers["sqlite"], answers["postgresql"], kwargs)
        self.stats["requests"] += 1

    async def step(
        self, nodes: dict[str, PubsubNode], write: tuple[str, Any], before: dict[str, Any]
    ) -> None:
        """Apply ``write`` on both engines; the count is exact, the version grows iff
        the items changed."""
        for dialect, storage in self.storages.items():
            await self.write(storage, nodes[dialect], write)
            count, version, rows = await storage.db.run(state_txn, nodes[dialect].id)
            self.assertEqual(count, len(rows), f"{dialect}: {write}")
            old_version, old_rows = before[dialect]
            if rows == old_rows and written_then_removed(write):
                self.assertGreaterEqual(version, old_version, f"{dialect}: {write}")
            elif rows == old_rows:
                self.assertEqual(version, old_version, f"{dialect}: {write} changed nothing")
            else:
                self.assertGreater(version, old_version, f"{dialect}: {write}")
            before[dialect] = (version, rows)

    async def start(self) -> tuple[dict[str, PubsubNode], dict[str, Any]]:
        name = f"node-{next(_nodes)}"
        nodes, before = {}, {}
        for dialect, storage in self.storages.items():
            nodes[dialect] = node = await storage.set_pubsub_node(ALICE, SERVICE, name)
            _count, version, rows = await storage.db.run(state_txn, node.id)
            before[dialect] = (version, rows)
        return nodes, before

    async def finish(self, nodes: dict[str, PubsubNode]) -> None:
        for dialect, storage in self.storages.items():
            await storage.delete_pubsub_node(None, None, [nodes[dialect].name])

    def test_pages_match_the_counting_reference(self) -> None:
        """Generated writes, then generated requests: both engines answer as the
        COUNT-based reference, pages and RSM metadata alike."""
        return self.run_examples()

    def test_marked_positions_match_the_counting_reference(self) -> None:
        """The same with positions read from marks every 2 items, for every node (marks
        built at the first read of a version, then used until the next write)."""
        self.patch(rsm_positions, "STEP", 2)
        self.patch(rsm_positions, "MIN_ITEMS", 0)
        self.patch(rsm_positions, "BUILD_AT", 1)
        return self.run_examples()

    def run_examples(self) -> defer.Deferred[None]:
        """Generated writes on both engines, each followed by generated requests."""

        @settings(settings.get_profile(PROFILE))
        @given(
            st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)),
            st.lists(writes_st, min_size=1, max_size=6),
            st.data(),
        )
        def test(first: list[str], writes: list[tuple[str, Any]], data: st.DataObject) -> None:
            if self.stopping:
                return
            self.stats["examples"] += 1
            nodes, before = blocking(self.start)
            if first:  # the node's first items, so that it is not always small
                writes = [("cache", [(name, 0, True) for name in first]), *writes]
            try:
                for write in writes:
                    blocking(self.step, nodes, write, before)
                    self.stats["writes"] += 1
                    for kwargs in data.draw(st.lists(requests(), min_size=1, max_size=4)):
                        blocking(self.check, nodes, kwargs)
            finally:
                blocking(self.finish, nodes)

        return threads.deferToThread(test)

