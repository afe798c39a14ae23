"""Benchmark: caching Atom-like pubsub items, beside a raw ``executemany`` ceiling.

Each run caches N items (default 5000, ≈0.5 KB of text, 3 tags, a parsed dict) into
a new node (a) in one ``cache_pubsub_items`` call and (b) in calls of 20 items, and
inserts the same rows with the driver alone (``sqlite3``, or psycopg for
PostgreSQL) into an equivalent table (same columns, indexes and upsert; the words
into SQLite's FTS5 table, or PostgreSQL's ``tsvector`` column, as the storage does):

- ``raw``: the storage's own rows (``item_rows``: XML, JSON and any other
  column as text), made before timing, in one transaction: the baseline of (a);
- ``raw_calls``: the same rows in transactions of ``--page`` rows (one
  ``executemany`` and one commit each): the baseline of (b), with the storage's
  transaction count (a commit costs the database the same whoever sends it);
- ``raw_with_serialisation``: as ``raw``, timing the making of the rows too.

Both raw writers do the storage's database work: same rows, their full-text words,
the node's foreign key and its ``item_count``/``items_version`` (SQLite: the same
schema and triggers; PostgreSQL: a twin table with the foreign key, and one
``UPDATE`` of the node per transaction where the storage has its statement triggers).

Prints items/s (median of the runs) and the ratios to their baselines (also: the
fastest run against the fastest, steadier when others load the machine); targets
(issue #14): (a) >= 0.75 x ``raw``, (b) >= 0.6 x ``raw_calls`` (also printed: (b)
against ``raw``, one transaction for every item). On SQLite every figure is measured twice, with
``synchronous=NORMAL`` (the default) and ``FULL`` (``[storage] sqlite_synchronous``),
the raw baseline with the same pragma. Beside each wall-clock ratio, the ratio of this
process's CPU time (SQLite runs in the process): steadier on a loaded machine, but
blind to the time spent waiting for fsync.

    /work/venv/bin/python bench/cache_items.py [--json] [--db-url URL] [--runs N]
"""

from __future__ import annotations

import contextlib
import operator
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from _common import (
    SERVICE,
    Client,
    atom_items,
    engine_name,
    main,
    median,
    open_storage,
    parser,
)

from sat_storage import engines, fts, json_text
from sat_storage.models import Base, Profile, PubsubItem, utcnow
from sat_storage.storage.item_rows import ITEM_COLUMNS, item_rows
from sat_storage.xml_tools import to_xml

KEPT = ("id", "node_id", "name", "created")  # not written by the upsert's update
FIGURES = ("raw", "raw_calls", "raw_with_serialisation", "one_call", "pages")
BASELINES = {"one_call": "raw", "pages": "raw_calls", "raw_with_serialisation": "raw"}


def upsert_sql(table: str, columns: list[str], mark: str, casts: dict[str, str]) -> str:
    """The storage's upsert of item rows, as driver SQL (names are our constants);
    ``casts``: a column's value expression around ``{}`` (its parameter)."""
    values = ", ".join(casts.get(c, "{}").format(mark) for c in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in KEPT)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT (node_id, name) DO UPDATE SET {updates}"
    )


class RawSQLite:
    """The same schema (create_all) in another SQLite file, written with ``sqlite3``."""

    dialect = "sqlite"

    def __init__(self, path: str, columns: list[str], synchronous: str = "NORMAL") -> None:
        engine = engines.create_engine(f"sqlite:///{path}")  # same DDL and pragmas
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(Profile).values(id=1, name="raw"))
        self.sqla_dialect = engine.dialect
        engine.dispose()
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            f"busy_timeout = {engines.SQLITE_BUSY_TIMEOUT_MS}",
            "foreign_keys = ON",
            "journal_mode = WAL",
            f"synchronous = {engines.sqlite_synchronous(synchronous)}",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        # the words go to the FTS5 table (not a column of pubsub_items), as the storage's
        text = columns.index(fts.TEXT_COLUMN)
        kept = [i for i in range(len(columns)) if i != text]
        self.pick = operator.itemgetter(*kept)
        self.text = text
        # ids given (every run writes new items): the words need no look-up of them
        self.sql = upsert_sql("pubsub_items", ["id"] + [columns[i] for i in kept], "?", {})
        self.nodes = self.last_id = 0

    def new_node(self) -> int:
        self.nodes += 1
        self.conn.execute(
            "INSERT INTO pubsub_nodes (id, profile_id, service, name, subscribed, "
            "sync_state_updated) VALUES (?, 1, 'raw', ?, 0, 0)",
            (self.nodes, f"node-{self.nodes}"),
        )
        return self.nodes

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        first, self.last_id = self.last_id + 1, self.last_id + len(rows)
        ids = range(first, self.last_id + 1)
        pick, text = self.pick, self.text
        numbered = list(zip(ids, rows, strict=True))
        self.conn.executemany(self.sql, [(i, *pick(r)) for i, r in numbered])
        conn = self.conn  # the index entries as the storage writes them
        fts.sqlite_write(
            lambda sql, p: (conn.executemany if isinstance(p, list) else conn.execute)(sql, p),
            [(i, r[text]) for i, r in numbered],
        )
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class RawPostgreSQL:
    """A twin of ``pubsub_items`` in the same database, written with psycopg alone."""

    dialect = "postgresql"

    def __init__(self, url: str, columns: list[str]) -> None:
        self.engine = engines.create_engine(url)
        self.sqla_dialect = self.engine.dialect
        self.conn = self.engine.raw_connection()
        cursor = self.conn.cursor()
        cursor.execute("DROP TABLE IF EXISTS bench_raw_items")
        cursor.execute("CREATE TABLE bench_raw_items (LIKE pubsub_items INCLUDING ALL)")
        cursor.execute(
            "ALTER TABLE bench_raw_items ADD FOREIGN KEY (node_id) "
            "REFERENCES pubsub_nodes (id) ON DELETE CASCADE"
        )
        cursor.execute("SELECT id FROM profiles WHERE name = %s", (Client.profile,))
        self.profile_id = cursor.fetchone()[0]
        self.conn.commit()
        vector = [fts.VECTOR_COLUMN if c == fts.TEXT_COLUMN else c for c in columns]
        casts = {"parsed": "{}::jsonb", fts.VECTOR_COLUMN: fts.POSTGRESQL_VECTOR}
        self.sql = upsert_sql("bench_raw_items", vector, "%s", casts)
        self.nodes: list[int] = []

    def new_node(self) -> int:
        cursor = self.conn.cursor()
        cursor.execute(
            "INSERT INTO pubsub_nodes (profile_id, service, name, subscribed, "
            "sync_state_updated, item_count, items_version) "
            "VALUES (%s, 'raw', %s, false, 0, 0, 0) RETURNING id",
            (self.profile_id, f"raw-node-{len(self.nodes)}"),
        )
        self.nodes.append(cursor.fetchone()[0])
        self.conn.commit()
        return self.nodes[-1]

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        cursor = self.conn.cursor()
        cursor.executemany(self.sql, rows)  # psycopg: pipelined, one round trip
        # the node's count and version, as the storage's statement triggers keep them
        cursor.execute(
            "UPDATE pubsub_nodes SET item_count = item_count + %s, "
            "items_version = items_version + 1 WHERE id = %s",
            (len(rows), rows[0][0]),
        )
        self.conn.commit()

    def close(self) -> None:
        cursor = self.conn.cursor()
        cursor.execute("DROP TABLE IF EXISTS bench_raw_items")
        cursor.execute("DELETE FROM pubsub_nodes WHERE id = ANY(%s)", (self.nodes,))
        self.conn.commit()
        self.conn.close()
        self.engine.dispose()


def rows_for(raw: RawSQLite | RawPostgreSQL, node_id: int, items: list, parsed: list) -> list:
    """The storage's own rows for ``items`` (XML, JSON, … as text), as tuples."""
    now = engines.db_value(raw.sqla_dialect, PubsubItem.__table__.c.created, utcnow())
    return item_rows(node_id, items, parsed, now)[0]


def row_building(items: list, parsed: list, now: Any) -> dict[str, float]:
    """Per item, in microseconds (best of 3 over every item): the parts of the rows
    that ``item_rows`` makes (its XML and words in one walk, its JSON), each part
    alone (the XML, the words by their own walk), and ``item_rows`` itself."""

    def best(fn: Any) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return round(min(times) / len(items) * 1e6, 2)

    return {
        "to_xml": best(lambda: [to_xml(i) for i in items]),
        "item_text": best(lambda: [fts.item_text(i) for i in items]),
        "item_xml_text": best(lambda: [fts.item_xml_text(i) for i in items])
        if hasattr(fts, "item_xml_text")  # (a tree from before it, measured with this bench)
        else None,
        "json": best(lambda: [json_text.dumps(p) for p in parsed]),
        "item_rows": best(lambda: item_rows(1, items, parsed, now)),
    }


async def run(args: Any, workdir: str) -> dict[str, Any]:
    """The figures with SQLite's ``synchronous`` NORMAL then FULL (PostgreSQL: once)."""
    if engine_name(args.db_url) == "postgresql":
        return await measure(args, workdir, None)
    normal = await measure(args, workdir, "NORMAL")
    full = await measure(args, os.path.join(workdir, "full"), "FULL")
    for result in (normal, full):
        suffix = f" (synchronous={result['sqlite_synchronous']})"
        for figure in result["results"]:
            figure["name"] += suffix
            if "baseline" in figure:
                figure["baseline"] += suffix
    return {**normal, "full": {k: v for k, v in full.items() if k != "results"},
            "results": normal["results"] + full["results"]}  # fmt: skip


async def measure(args: Any, workdir: str, synchronous: str | None) -> dict[str, Any]:
    """Cache the items ``args.runs`` times (storage and raw, interleaved)."""
    os.makedirs(workdir, exist_ok=True)
    items, parsed = atom_items(args.items)
    storage = await open_storage(args.db_url, workdir, synchronous)
    columns = list(ITEM_COLUMNS)
    if synchronous is None:
        raw: RawSQLite | RawPostgreSQL = RawPostgreSQL(args.db_url, columns)
    else:
        raw = RawSQLite(os.path.join(workdir, "raw.sqlite"), columns, synchronous)
    times: dict[str, list[float]] = {name: [] for name in FIGURES}
    cpu: dict[str, list[float]] = {name: [] for name in FIGURES}  # this process's CPU time

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        """Wall clock and CPU time of the block, into ``times``/``cpu`` under ``name``."""
        start, start_cpu = time.perf_counter(), time.process_time()
        yield
        times[name].append(time.perf_counter() - start)
        cpu[name].append(time.process_time() - start_cpu)

    try:
        for run_index in range(args.runs):
            rows = rows_for(raw, raw.new_node(), items, parsed)
            with timed("raw"):
                raw.insert(rows)

            rows = rows_for(raw, raw.new_node(), items, parsed)
            with timed("raw_calls"):
                for i in range(0, len(rows), args.page):
                    raw.insert(rows[i : i + args.page])

            node_id = raw.new_node()
            with timed("raw_with_serialisation"):
                raw.insert(rows_for(raw, node_id, items, parsed))

            node = await storage.set_pubsub_node(Client, SERVICE, f"one-call-{run_index}")
            with timed("one_call"):
                await storage.cache_pubsub_items(Client, node, items, parsed)

            node = await storage.set_pubsub_node(Client, SERVICE, f"pages-{run_index}")
            with timed("pages"):
                for i in range(0, len(items), args.page):
                    page = slice(i, i + args.page)
                    await storage.cache_pubsub_items(Client, node, items[page], parsed[page])
    finally:
        raw.close()
        await storage.close()
    rates = {name: args.items / median(values) for name, values in times.items()}
    now = engines.db_value(raw.sqla_dialect, PubsubItem.__table__.c.created, utcnow())
    parts = row_building(items, parsed, now)
    result = {
        "benchmark": "cache_items",
        "engine": engine_name(args.db_url),
        "sqlite_synchronous": synchronous,
        "items": args.items,
        "page": args.page,
        "runs": args.runs,
        "items_per_s": {name: round(rate) for name, rate in rates.items()},
        "median_ms": {name: round(median(v) * 1000, 1) for name, v in times.items()},
        # each figure against its baseline (BASELINES: pages against raw_calls)
        "ratio_to_raw": {
            name: round(rates[name] / rates[base], 3) for name, base in BASELINES.items()
        },
        # calls of `page` against one raw transaction of every item (the older figure)
        "ratio_to_raw_one_transaction": {
            name: round(rates[name] / rates["raw"], 3) for name in ("pages", "raw_calls")
        },
        # the fastest run of each figure against the fastest of its baseline: on a
        # machine others load, the runs least slowed down (the medians above stay the figure)
        "best_ratio_to_raw": {
            name: round(min(times[base]) / min(times[name]), 3) for name, base in BASELINES.items()
        },
        # CPU time of this process (SQLite runs in it; PostgreSQL's server does not):
        # less sensitive than wall clock to other load on the machine, blind to fsync waits
        "cpu_ratio_to_raw": {
            name: round(median(cpu[base]) / median(cpu[name]), 3)
            for name, base in BASELINES.items()
        },
        "ratio_to_raw_with_serialisation": {
            name: round(rates[name] / rates["raw_with_serialisation"], 3)
            for name in ("one_call", "pages")
        },
        "target": {"one_call_ratio_to_raw": 0.75, "pages_ratio_to_raw_calls": 0.6},
        # where the making of the rows goes (the part raw is not timed for), us/item
        "row_building_us_per_item": parts,
    }
    result["target"]["met"] = (
        result["ratio_to_raw"]["one_call"] >= 0.75 and result["ratio_to_raw"]["pages"] >= 0.6
    )
    labels = {
        "raw": "raw executemany (rows made before)",
        "raw_calls": f"raw executemany, transactions of {args.page}",
        "raw_with_serialisation": "raw executemany + making the rows",
        "one_call": f"cache_pubsub_items, one call of {args.items}",
        "pages": f"cache_pubsub_items, calls of {args.page}",
    }
    result["results"] = [  # for bench/run
        {"name": labels[name], "value": round(rate), "unit": "items/s"}
        | ({"baseline": labels[BASELINES[name]]} if name in BASELINES else {})
        for name, rate in rates.items()
    ]
    if not args.json:
        on = f", synchronous={synchronous}" if synchronous else ""
        print(f"{args.items} items, {args.runs} runs, engine {result['engine']}{on}")
        for name, rate in rates.items():
            base = BASELINES.get(name, name)
            ratio = rate / rates[base]
            by_cpu = median(cpu[base]) / median(cpu[name])
            by_best = min(times[base]) / min(times[name])
            print(
                f"  {name:24} {rate:10.0f} items/s  ({ratio:.2f} x {base}; CPU {by_cpu:.2f} x;"
                f" best runs {by_best:.2f} x; {rate / rates['raw']:.2f} x raw)"
            )
        print("  row building, us/item: " + ", ".join(f"{k} {v}" for k, v in parts.items()))
        met = "met" if result["target"]["met"] else "NOT met"
        print(f"  targets one_call >= 0.75 x raw, pages >= 0.6 x raw_calls: {met}")
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=5000, help="items per run")
    p.add_argument("--page", type=int, default=20, help="items per call in (b)")
    main(run, p.parse_args())
