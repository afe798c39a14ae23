"""Benchmark: ``Storage.get_items`` newest 20 of a 5,000-item node, beside raw SQL.

Caches ``--items`` Atom-like items into one node, then times, median of ``--runs``
runs of ``--requests`` sequential reads each, interleaved:

- ``Storage.get_items``, **hit**: the public read asked again with no write between
  (on SQLite answered in the calling thread from the read cache: the wal-index
  header says no transaction committed since; on PostgreSQL one read of the node's
  counters in a database thread); the items' XML is parsed when a caller reads
  ``.data``, not here;
- ``Storage.get_items``, **miss**: the read cache emptied before each read (one
  thread hop, the counters and the page read, the page kept);
- ``Storage.get_items`` with the read cache off (its bound set to 0 for the call, the
  same storage and connection): the read before the cache served it;
- ``Storage.get_items`` after a commit of another connection (not timed) before each
  read: to another node (the header changed: the hit is checked by one read of the
  node's counters), and to the node's items (its version grew: a miss);
- ``raw SQL + fetch``: the very statements the uncached read runs (captured once),
  replayed with the driver alone (``sqlite3``/psycopg) in the calling thread, rows
  fetched as tuples: the baseline (target: the storage read within 1.5x of it). On
  PostgreSQL in autocommit, as the storage's read runs them (each statement sees its
  own snapshot either way, under READ COMMITTED);
- ``raw SQL + fetch`` after a commit of another connection (to another node, not
  timed): what any reader pays then (SQLite: the connection's page cache is dropped);
- ``raw SQL + fetch, in a database thread``: the same, run in a thread of a Twisted
  ``ThreadPool`` of one thread and awaited (``deferToThreadPool``, Twisted's own
  thread hop, as the storage's reads went before they had their own database
  threads): what a read going to the database while keeping the storage's contract
  (never block the reactor) costs with Twisted's hop;
- ``thread hop``: a no-op run in that pool and awaited (``deferToThreadPool``): what
  Twisted's hop alone costs; with it, the least a read can cost in the calling
  thread is the raw read plus the hop (``calling_thread_floor``: reachable within
  1.5x raw only if the hop is at most half the raw read);
- ``storage's thread hop``: a no-op given to the storage's own database threads
  (:class:`sat_storage.db_threads.DatabaseThreads`, what every read of the storage
  goes through) and awaited: the part of the miss that no database work can remove
  (``storage_calling_thread_floor``: the raw read plus that hop);
- the hit, the miss and the baselines again in CPU time of the process (all
  threads: the database thread's work counts, the waits for a core on a loaded
  machine do not);
- ``raw SQL + fetch + parse``: the same, plus the items' XML parsed into domish and
  their JSON decoded (what any reader must pay at least).

    python bench/reads.py [--json] [--db-url URL] [--items 5000] [--max-items 20]
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from typing import Any

from _common import (
    SERVICE,
    Client,
    RawDriver,
    cpu_time,
    engine_name,
    main,
    median,
    node_bench,
    parser,
    selects,
    time_async,
    time_call,
)
from twisted.internet import reactor, threads
from twisted.python.threadpool import ThreadPool

from sat_storage import Storage
from sat_storage.xml_tools import parse_xml


def parse_rows(results: list[list[tuple[Any, ...]]]) -> int:
    """Parse every XML text and JSON text of the rows; how many items."""
    parsed = 0
    for rows in results:
        for row in rows:
            for value in row:
                if isinstance(value, str) and value.startswith("<"):
                    parse_xml(value)
                    parsed += 1
                elif isinstance(value, str) and value.startswith("{"):
                    json.loads(value)
    return parsed


def names_of(label: str) -> dict[str, str]:
    """The figures' names (wall-clock, and process CPU time: see ``cpu_time``)."""
    return {
        "storage": f"Storage.get_items {label}, hit (no write between reads)",
        "storage_miss": f"Storage.get_items {label}, miss (read cache emptied before each read)",
        "storage_uncached": f"Storage.get_items {label}, read cache off",
        "storage_other_write": (
            f"Storage.get_items {label}, after a commit of another connection "
            "(another node: the hit checked by one read)"
        ),
        "storage_node_write": (
            f"Storage.get_items {label}, after a commit of another connection "
            "to the node's items (a miss)"
        ),
        "raw": f"raw SQL + fetch, {label}",
        "raw_other_write": f"raw SQL + fetch, {label}, after a commit of another connection",
        "raw_thread": f"raw SQL + fetch, {label}, in a database thread",
        "raw_parse": f"raw SQL + fetch + parse, {label}",
        "hop": "thread hop: a no-op in a Twisted thread pool (deferToThreadPool), awaited",
        "storage_hop": "storage's thread hop: a no-op in the storage's database threads, awaited",
        "storage_cpu": f"Storage.get_items {label}, hit, CPU time",
        "storage_miss_cpu": f"Storage.get_items {label}, miss, CPU time",
        "raw_cpu": f"raw SQL + fetch, {label}, CPU time",
        "raw_thread_cpu": f"raw SQL + fetch, {label}, in a database thread, CPU time",
    }


def hop(pool: ThreadPool) -> Any:
    """A no-op in a Twisted thread pool (a Deferred): Twisted's hop alone."""
    return threads.deferToThreadPool(reactor, pool, lambda: None)


def storage_hop(storage: Any) -> Any:
    """A no-op in the storage's database threads (a Deferred): its hop alone."""
    return storage.db.pool.submit(lambda: None)


def in_thread(pool: ThreadPool, raw: RawDriver, statements: list[tuple[str, Any]]) -> Any:
    """``raw.run(statements)`` in a Twisted thread pool (a Deferred)."""
    return threads.deferToThreadPool(reactor, pool, raw.run, statements)


class OtherWriter:
    """Commits of another connection (the driver alone, in the calling thread, not
    timed): a row of another node, or an item of the measured node rewritten as it
    is (its items version grows: the node's pages are stale)."""

    def __init__(self, storage: Any, node_id: int, other_id: int) -> None:
        self.raw = RawDriver(storage, autocommit=True)
        mark = "?" if storage.dialect == "sqlite" else "%s"
        self.other_sql = f"UPDATE pubsub_nodes SET sync_state_updated = {mark} WHERE id = {mark}"
        self.item_sql = (
            "UPDATE pubsub_items SET updated = updated WHERE id = "
            f"(SELECT min(id) FROM pubsub_items WHERE node_id = {mark})"
        )
        self.node_id, self.other_id = node_id, other_id

    def _commit(self, sql: str, params: tuple[Any, ...]) -> None:
        cursor = self.raw.connection.cursor()
        try:
            cursor.execute(sql, params)
        finally:
            cursor.close()
        self.raw.connection.commit()

    def other_node(self) -> None:
        self._commit(self.other_sql, (time.time(), self.other_id))

    def node_items(self) -> None:
        self._commit(self.item_sql, (self.node_id,))

    def close(self) -> None:
        self.raw.close()


async def time_after(
    before: Callable[[], Any], call: Callable[[], Any], repeat: int
) -> float:
    """Mean seconds of ``repeat`` calls of ``call()`` (awaited when it gives an
    awaitable), each after ``before()`` (not timed)."""
    total = 0.0
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        result = call()
        if inspect.isawaitable(result):
            await result
        total += time.perf_counter() - start
    return total / repeat


async def run(args: Any, workdir: str) -> dict[str, Any]:
    async with node_bench(args.db_url, workdir, "reads", args.items, autocommit=True) as bench:
        raw, node = bench.raw, bench.node
        other = await bench.storage.set_pubsub_node(
            Client, SERVICE, f"reads-other-{time.time_ns()}"
        )
        # reads on a connection opened after the node was filled (the filling one reads
        # slower); the read cache off on the same storage (another storage's connection
        # may read faster or slower: up to 40 us apart for this page on SQLite)
        storage = Storage(bench.storage.db_url)
        await storage.initialise()
        cache = storage.read_cache
        writer = OtherWriter(storage, node.id, other.id)
        # Twisted's hop, for the baselines: a pool of one thread (the raw connection
        # may be used from any thread)
        pool = ThreadPool(minthreads=1, maxthreads=1, name="bench-raw-thread")
        pool.start()

        def read() -> Any:
            return storage.get_items(node, max_items=args.max_items)

        def read_miss() -> Any:
            storage.read_cache.clear()
            return storage.get_items(node, max_items=args.max_items)

        def read_uncached() -> Any:
            bound, cache.max_items = cache.max_items, 0
            try:
                return storage.get_items(node, max_items=args.max_items)
            finally:
                cache.max_items = bound

        statements = await selects(storage, read_uncached)
        items, _metadata = await read()
        assert len(items) == args.max_items, len(items)
        assert parse_rows(raw.run(statements)) == args.max_items
        times: dict[str, list[float]] = {k: [] for k in names_of("")}
        try:
            for _ in range(args.runs):  # interleaved: background load hits every figure alike
                times["storage"].append(await time_async(read, args.requests))
                times["raw"].append(time_call(lambda: raw.run(statements), args.requests))
                times["storage_miss"].append(await time_async(read_miss, args.requests))
                times["raw_thread"].append(
                    await time_async(lambda: in_thread(pool, raw, statements), args.requests)
                )
                times["hop"].append(await time_async(lambda: hop(pool), args.requests))
                times["storage_hop"].append(
                    await time_async(lambda: storage_hop(storage), args.requests)
                )
                times["storage_uncached"].append(await time_async(read_uncached, args.requests))
                times["storage_other_write"].append(
                    await time_after(writer.other_node, read, args.requests)
                )
                times["storage_node_write"].append(
                    await time_after(writer.node_items, read, args.requests)
                )
                times["raw_other_write"].append(
                    await time_after(writer.other_node, lambda: raw.run(statements), args.requests)
                )
                times["raw_parse"].append(
                    time_call(lambda: parse_rows(raw.run(statements)), args.requests)
                )
                await read()  # cached again: the hit's CPU time
                times["storage_cpu"].append(await time_async(read, args.requests, cpu_time))
                times["raw_cpu"].append(
                    time_call(lambda: raw.run(statements), args.requests, cpu_time)
                )
                times["storage_miss_cpu"].append(
                    await time_async(read_miss, args.requests, cpu_time)
                )
                times["raw_thread_cpu"].append(
                    await time_async(
                        lambda: in_thread(pool, raw, statements), args.requests, cpu_time
                    )
                )
        finally:
            pool.stop()
            writer.close()
            await storage.close()
    ms = {name: round(median(values) * 1000, 3) for name, values in times.items()}
    names = names_of(f"newest {args.max_items} of {args.items}")
    ratios = {
        name: round(value / ms["raw_cpu" if name.endswith("_cpu") else "raw"], 2)
        for name, value in ms.items()
    }
    result = {
        "benchmark": "reads",
        "engine": engine_name(args.db_url),
        "items": args.items,
        "runs": args.runs,
        "requests": args.requests,
        "statements": [sql for sql, _ in statements],
        "median_ms": ms,
        # every run's mean of the misses and of their baselines (the spread of the medians)
        "runs_ms": {
            name: [round(value * 1000, 3) for value in times[name]]
            for name in ("storage_miss", "raw_thread", "hop", "storage_hop", "raw")
        },
        "ratio_to_raw": ratios,
        "target": {
            "storage_to_raw_max": 1.5,
            "met": ms["storage"] <= 1.5 * ms["raw"],
            "met_cpu": ms["storage_cpu"] <= 1.5 * ms["raw_cpu"],
            "met_miss": ms["storage_miss"] <= 1.5 * ms["raw"],
            "met_miss_against_raw_in_thread": ms["storage_miss"] <= 1.5 * ms["raw_thread"],
            "met_miss_against_raw_in_thread_cpu": (
                ms["storage_miss_cpu"] <= 1.5 * ms["raw_thread_cpu"]
            ),
        },
        # the least a read going through a database thread can cost, in the calling
        # thread's figure: the raw read and the hop (x raw; 1.5x reachable only if <= 1.5)
        "calling_thread_floor": round((ms["raw"] + ms["hop"]) / ms["raw"], 2),
        "hop_to_raw": round(ms["hop"] / ms["raw"], 2),
        "storage_calling_thread_floor": round((ms["raw"] + ms["storage_hop"]) / ms["raw"], 2),
        "storage_hop_to_hop": round(ms["storage_hop"] / ms["hop"], 2),
        "miss_to_raw_in_thread": round(ms["storage_miss"] / ms["raw_thread"], 2),
        "miss_cpu_to_raw_in_thread_cpu": round(ms["storage_miss_cpu"] / ms["raw_thread_cpu"], 2),
        "results": [
            {"name": names["raw"], "value": ms["raw"], "unit": "ms"},
            {"name": names["raw_cpu"], "value": ms["raw_cpu"], "unit": "ms"},
            {"name": names["raw_thread"], "value": ms["raw_thread"], "unit": "ms"},
            {"name": names["raw_thread_cpu"], "value": ms["raw_thread_cpu"], "unit": "ms"},
            {"name": names["hop"], "value": ms["hop"], "unit": "ms"},
            {"name": names["storage_hop"], "value": ms["storage_hop"], "unit": "ms"},
        ]
        + [
            {
                "name": names[name],
                "value": ms[name],
                "unit": "ms",
                "baseline": names["raw_cpu" if name.endswith("_cpu") else "raw"],
            }
            for name in ms
            if not name.startswith(("raw", "hop", "storage_hop"))
            or name in ("raw_parse", "raw_other_write")
        ]
        + [
            {
                "name": names["storage_other_write"] + ", against the raw read after a commit",
                "value": ms["storage_other_write"],
                "unit": "ms",
                "baseline": names["raw_other_write"],
            },
            {
                "name": names["storage_miss"] + ", against the raw read in a database thread",
                "value": ms["storage_miss"],
                "unit": "ms",
                "baseline": names["raw_thread"],
            },
            {
                "name": names["storage_miss_cpu"] + ", against the raw read in a database thread",
                "value": ms["storage_miss_cpu"],
                "unit": "ms",
                "baseline": names["raw_thread_cpu"],
            },
        ],
    }
    if not args.json:
        for name, value in ms.items():
            print(f"  {names[name]:100} {value:8.3f} ms  ({ratios[name]:.2f} x raw)")
        print(f"  miss / raw in a database thread: {result['miss_to_raw_in_thread']:.2f}")
        floor = result["calling_thread_floor"]
        print(f"  floor in the calling thread (raw + hop) / raw: {floor:.2f}")
        floor = result["storage_calling_thread_floor"]
        print(f"  the same with the storage's hop: {floor:.2f}")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=5000, help="items in the node")
    p.add_argument("--max-items", type=int, default=20, help="size of the page")
    p.add_argument("--requests", type=int, default=50, help="reads per run")
    p.set_defaults(runs=7)
    main(run, p.parse_args())
