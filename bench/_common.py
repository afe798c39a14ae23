"""What the storage benchmarks share: Atom-like items, a storage to measure, output."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session
from twisted.internet import defer, task
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage import Storage, engines
from sat_storage.storage.pubsub import MAX_ITEMS_BATCH

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_ATOM = "http://www.w3.org/2005/Atom"
SERVICE = jid.JID("pubsub.bench.example")
TEXT = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure "
    "dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. "
    "Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt "
    "mollit anim id est laborum. Curabitur pretium tincidunt lacus, nulla gravida orci."
)  # about 0.5 KB


class Client:
    """The smallest client object the storage accepts."""

    profile = "bench"


def atom_item(index: int) -> tuple[domish.Element, dict[str, Any]]:
    """An Atom-like ``<item/>`` (≈0.5 KB of text, 3 tags) and its parsed form."""
    item = domish.Element((NS_PUBSUB, "item"))
    item["id"] = f"item-{index:06d}"
    entry = item.addElement((NS_ATOM, "entry"))
    title = f"Post number {index}"
    entry.addElement("title", content=title)
    entry.addElement("id", content=f"urn:uuid:bench-{index:06d}")
    entry.addElement("published", content="2024-05-01T12:00:00Z")
    entry.addElement("updated", content="2024-05-01T12:00:00Z")
    entry.addElement("author").addElement("name", content="Alice")
    tags = ["xmpp", "python", f"tag{index % 50}"]
    for tag in tags:
        entry.addElement("category")["term"] = tag
    entry.addElement("content", content=TEXT)["type"] = "text"
    parsed = {
        "id": f"item-{index:06d}",
        "title": title,
        "content": TEXT,
        "author": "Alice",
        "tags": tags,
        "published": 1714564800.0,
    }
    return item, parsed


def atom_items(count: int) -> tuple[list[domish.Element], list[dict[str, Any]]]:
    """``count`` Atom-like items and their parsed forms."""
    pairs = [atom_item(i) for i in range(count)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class _Parser(argparse.ArgumentParser):
    """Arguments a benchmark does not know are skipped with a warning: ``bench/run``
    hands the same ones (after ``--``) to every benchmark."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        known, unknown = self.parse_known_args(args, namespace)
        if unknown:
            print(f"{self.prog}: ignoring {' '.join(unknown)}", file=sys.stderr)
        return known


def parser(description: str) -> argparse.ArgumentParser:
    """Command line shared by the benchmarks."""
    p = _Parser(description=description)
    p.add_argument(
        "--db-url", help="database to measure (default: a new SQLite file in a temp dir)"
    )
    p.add_argument("--runs", type=int, default=5, help="runs per figure (median taken)")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    return p


async def fill_node(storage: Storage, node: Any, count: int, batch: int = 1000) -> None:
    """Cache ``count`` Atom-like items (``item-000000``...) into ``node``, ``batch`` a call."""
    for start in range(0, count, batch):
        items, parsed = atom_items(min(batch, count - start))
        for offset, item in enumerate(items):
            item["id"] = parsed[offset]["id"] = f"item-{start + offset:06d}"
        await storage.cache_pubsub_items(Client, node, items, parsed)


def count_iqs(client: Any) -> tuple[list[domish.Element], Callable[[], None]]:
    """The IQs ``client`` sends from now on (a list filled as they go), and a function
    that stops counting."""
    sent: list[domish.Element] = []
    original = client.xmlstream.send

    def send(obj: Any) -> None:
        if isinstance(obj, domish.Element) and obj.name == "iq":
            sent.append(obj)
        original(obj)

    def stop() -> None:
        client.xmlstream.send = original

    client.xmlstream.send = send
    return sent, stop


def median(values: list[float]) -> float:
    return statistics.median(values)


async def open_storage(
    db_url: str | None, workdir: str, sqlite_synchronous: str | None = None
) -> Storage:
    """An initialised storage with the profile ``bench``."""
    url = db_url or f"sqlite:///{os.path.join(workdir, 'bench.sqlite')}"
    storage = Storage(url, sqlite_synchronous=sqlite_synchronous)
    await storage.initialise()
    if not storage.has_profile(Client.profile):
        await storage.create_profile(Client.profile)
    return storage


def main(run: Callable[[argparse.Namespace, str], Awaitable[dict[str, Any]]], args: Any) -> None:
    """Run ``run(args, workdir)`` in a reactor; print its result (``--json``: as JSON)."""
    workdir = tempfile.mkdtemp(prefix="sat-bench.")
    result: dict[str, Any] = {}

    async def body(_reactor: Any) -> None:
        result.update(await run(args, workdir))

    try:
        task.react(lambda r: defer.ensureDeferred(body(r)))
    except SystemExit as e:
        if e.code:
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")


def engine_name(db_url: str | None) -> str:
    return "sqlite" if db_url is None else engines.parse_url(db_url).get_backend_name()


def capture_statements(engine: Any) -> tuple[list[tuple[str, Any]], Callable[[], None]]:
    """Record every statement ``engine`` runs from now on; and the function that stops it."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    return statements, lambda: event.remove(engine, "before_cursor_execute", capture)


async def selects(storage: Storage, call: Callable[[], Awaitable[Any]]) -> list[tuple[str, Any]]:
    """Every SELECT (text, parameters) that ``await call()`` runs on ``storage``."""
    statements, stop = capture_statements(storage.db.engine)
    try:
        await call()
    finally:
        stop()
    return [s for s in statements if s[0].lstrip().upper().startswith("SELECT")]


async def explain(storage: Storage, statements: list[tuple[str, Any]]) -> list[str]:
    """The query plans of ``statements`` (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN``
    on PostgreSQL), one line a step."""
    prefix = "EXPLAIN QUERY PLAN " if storage.dialect == "sqlite" else "EXPLAIN "

    def txn(session: Session) -> list[str]:
        connection = session.connection()
        return [
            str(row[-1])
            for sql, params in statements
            for row in connection.exec_driver_sql(prefix + sql, params)
        ]

    return await storage.db.run(txn)


class RawDriver:
    """A connection of the driver alone (``sqlite3``/psycopg) to the storage's database.

    Used in the reactor thread for the baselines: the same SQL text, no SQLAlchemy,
    no thread hop, rows fetched as tuples.
    """

    def __init__(self, storage: Storage, autocommit: bool = False) -> None:
        """``autocommit``: PostgreSQL statements without BEGIN/ROLLBACK, as the
        storage's read-only path runs them (SQLite's ``sqlite3`` begins no
        transaction for a SELECT anyway). The connection may be used from any thread."""
        engine = storage.db.engine
        path = engines.sqlite_path(engine.url) if engines.is_sqlite(engine) else None
        if path is not None:  # the storage's pool holds its only connection
            self.connection: Any = sqlite3.connect(path, check_same_thread=False)
        else:
            self.connection = engine.raw_connection()
            if autocommit:
                self.connection.driver_connection.autocommit = True

    def run(self, statements: list[tuple[str, Any]]) -> list[list[tuple[Any, ...]]]:
        """Run ``statements`` (text, parameters) in one transaction; their rows."""
        cursor = self.connection.cursor()
        results = []
        try:
            for sql, params in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall())
        finally:
            cursor.close()
            self.connection.rollback()
        return results

    def close(self) -> None:
        self.connection.close()


@dataclass
class NodeBench:
    """A storage with one node of cached items, and the driver alone on its database."""

    storage: Storage
    raw: RawDriver
    node: Any
    fill_s: float  # seconds the items took to cache


@contextlib.asynccontextmanager
async def node_bench(
    db_url: str | None, workdir: str, prefix: str, count: int, autocommit: bool = False
) -> AsyncIterator[NodeBench]:
    """A new node ``prefix-...`` of ``count`` Atom-like items (cached by calls of
    ``MAX_ITEMS_BATCH``) in the storage of ``db_url``; closed on leaving.
    ``autocommit``: the raw driver's (see :class:`RawDriver`)."""
    storage = await open_storage(db_url, workdir)
    raw = RawDriver(storage, autocommit)
    try:
        node = await storage.set_pubsub_node(Client, SERVICE, f"{prefix}-{time.time_ns()}")
        start = time.perf_counter()
        await fill_node(storage, node, count, MAX_ITEMS_BATCH)
        yield NodeBench(storage, raw, node, time.perf_counter() - start)
    finally:
        raw.close()
        await storage.close()


Clock = Callable[[], float]
#: the CPU time of the whole process (all its threads): what a call costs, without the
#: waits for a core that other processes' load adds to wall-clock times
cpu_time: Clock = time.process_time


def time_call(call: Callable[[], Any], repeat: int, clock: Clock = time.perf_counter) -> float:
    """Mean seconds (of ``clock``) of ``repeat`` calls of ``call`` (synchronous)."""
    start = clock()
    for _ in range(repeat):
        call()
    return (clock() - start) / repeat


async def time_async(
    call: Callable[[], Awaitable[Any]], repeat: int, clock: Clock = time.perf_counter
) -> float:
    """Mean seconds (of ``clock``) of ``repeat`` sequential awaits of ``call()``."""
    start = clock()
    for _ in range(repeat):
        await call()
    return (clock() - start) / repeat
