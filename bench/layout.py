"""Benchmark: the items table's layout (SQLite), beside the reference's, per page size.

The reference is Libervia 0.9's ``pubsub_items`` (XML, parsed JSON, dates; its FTS5
external-content table on the XML, kept by triggers), its DDL read from the Libervia
database of the tests (``twisted_tests/libervia/libervia-0.9.sqlite``), written with
raw ``sqlite3`` into its own file. The storage's file is the one ``cache_pubsub_items``
writes. Both hold the same items (Atom-like, ≈0.5 KB of text, 3 tags): a node of
``--items`` and, to purge, one node of ``--purged`` items a run. For each page size
(4 KiB, 8 KiB: set on the new, empty files) and each side, in the same run:

- ``table_mb``: the pages of ``pubsub_items`` (``dbstat``), its indexes excluded;
- ``scan``: a bare scan of the table (``SELECT sum(length(name)) … NOT INDEXED``);
- ``order_undeclared``: the newest 20 of the node by a path no analyser declared
  (``ORDER BY json_extract(parsed, '$.title') DESC LIMIT 20``: a scan and a sort);
- ``purge``: the purge of one node of ``--purged`` items (storage:
  ``purge_pubsub_items``; reference: ``DELETE`` by node, its triggers running), the
  full-text indexes as the writes left them;
- ``purge_merged``: the same, on other nodes, once both full-text indexes were merged
  into one segment (FTS5 ``optimize``): a purge's FTS5 work includes the incremental
  merging of older segments that it happens to trigger, which depends on each
  index's history (its fill); merged, both sides pay for their own entries only;
- ``purge_cpu``, ``purge_merged_cpu``: the CPU time of the process during those
  purges (``time.process_time``: the database thread's included), less sensitive
  than wall-clock time to other processes on a loaded machine.

Both sides are written in the same transactions (``MAX_ITEMS_BATCH`` items each).
Times are medians of ``--runs`` (scans and sorts: 5 a run; the two sides alternate
which goes first; caches warm: every figure is what is left once the pages are in
memory; each file's WAL is checkpointed before each timed purge, untimed, so that
neither side pays the other's or an earlier statement's checkpoint); ratios are
storage / reference at the same page size (lower is better, ≤ 1: not slower), each
side's 8 KiB / 4 KiB, and the storage at its default (8 KiB) / the reference at
SQLite's default (4 KiB, Libervia's files).

With ``--db-url`` naming a PostgreSQL database, the same figures there, beside a
Libervia-shaped table in the same database (``bench/_layout_pg.py``).

    .venv/bin/python bench/layout.py [--json] [--db-url URL] [--items N] [--purged N] [--runs N]
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import _layout_pg
from _common import SERVICE, Client, atom_items, engine_name, main, median, open_storage, parser

from sat_storage import json_text
from sat_storage.storage.pubsub import MAX_ITEMS_BATCH
from sat_storage.xml_tools import to_xml

REFERENCE_DB = Path(__file__).parent.parent / "twisted_tests" / "libervia" / "libervia-0.9.sqlite"
PAGE_SIZES = (4096, 8192)
SCAN = "SELECT sum(length(name)) FROM pubsub_items NOT INDEXED"
ORDER = (
    "SELECT id FROM pubsub_items WHERE node_id = ? "
    "ORDER BY json_extract(parsed, '$.title') DESC LIMIT 20"
)
READS_A_RUN = 5  # scans and sorts are short: more samples for their medians
TABLE_SIZE = "SELECT sum(pgsize) FROM dbstat WHERE name = 'pubsub_items'"
FTS = "pubsub_items_fts"  # the full-text table's name on both sides
PURGE_ORDER = (("storage", "reference"), ("reference", "storage"))  # by the run's parity


def reference_ddl() -> list[str]:
    """Libervia 0.9's DDL of ``pubsub_items`` and its full-text table and triggers."""
    with sqlite3.connect(REFERENCE_DB) as source:
        rows = source.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND "
            "(name = 'pubsub_items' OR name = 'pubsub_items_fts' OR "
            "(type = 'trigger' AND tbl_name = 'pubsub_items')) "
            "ORDER BY type = 'trigger', name"
        ).fetchall()
    return [sql for (sql,) in rows]


def new_file(path: str, page_size: int) -> None:
    """An empty SQLite file in WAL mode with ``page_size`` (fixed from then on)."""
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA page_size = {int(page_size)}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE bench_page_size (x)")
    connection.execute("DROP TABLE bench_page_size")
    connection.commit()
    connection.close()


def timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class Reference:
    """Libervia 0.9's table in its own file, written and read with ``sqlite3``."""

    def __init__(self, path: str, page_size: int) -> None:
        new_file(path, page_size)
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA synchronous = NORMAL")
        for statement in reference_ddl():
            self.connection.execute(statement)

    def fill(self, node_id: int, items: list, parsed: list) -> None:
        """``MAX_ITEMS_BATCH`` items a transaction, as the storage's :func:`fill`."""
        rows = [
            (node_id, item["id"], to_xml(item), json_text.dumps(p))
            for item, p in zip(items, parsed, strict=True)
        ]
        for start in range(0, len(rows), MAX_ITEMS_BATCH):
            self.connection.execute("BEGIN")
            self.connection.executemany(
                "INSERT INTO pubsub_items (node_id, name, data, parsed) VALUES (?, ?, ?, ?)",
                rows[start : start + MAX_ITEMS_BATCH],
            )
            self.connection.execute("COMMIT")

    def query(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, parameters).fetchall()

    def purge(self, node_id: int) -> None:
        self.connection.execute("BEGIN")
        self.connection.execute("DELETE FROM pubsub_items WHERE node_id = ?", (node_id,))
        self.connection.execute("COMMIT")


async def fill(storage: Any, name: str, items: list, parsed: list) -> Any:
    node = await storage.set_pubsub_node(Client, SERVICE, name)
    for start in range(0, len(items), MAX_ITEMS_BATCH):
        page = slice(start, start + MAX_ITEMS_BATCH)
        await storage.cache_pubsub_items(Client, node, items[page], parsed[page])
    return node


async def measure(args: Any, workdir: str, page_size: int) -> dict[str, Any]:
    """Both sides at ``page_size``: their figures (seconds, median of the runs)."""
    os.makedirs(workdir, exist_ok=True)
    new_file(os.path.join(workdir, "bench.sqlite"), page_size)
    storage = await open_storage(None, workdir)
    reference = Reference(os.path.join(workdir, "reference.sqlite"), page_size)
    path = os.path.join(workdir, "bench.sqlite")
    reader = sqlite3.connect(path)
    try:
        items, parsed = atom_items(args.items)
        node = await fill(storage, "main", items, parsed)
        reference.fill(1, items, parsed)
        purged, purged_parsed = atom_items(args.purged)
        for run in range(2 * args.runs):  # nodes 2 + run: purged-{run} of the storage
            await fill(storage, f"purged-{run}", purged, purged_parsed)
            reference.fill(2 + run, purged, purged_parsed)
        for connection in (reader, reference.connection):  # every page in the file itself
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (node_id,) = reader.execute("SELECT id FROM pubsub_nodes WHERE name = 'main'").fetchone()
        times: dict[str, dict[str, list[float]]] = {
            side: {name: [] for name in FIGURES[1:]} for side in ("storage", "reference")
        }
        sizes = {
            "storage": reader.execute(TABLE_SIZE).fetchone()[0],
            "reference": reference.query(TABLE_SIZE)[0][0],
        }
        reader.execute(SCAN).fetchall()  # pages into the cache
        reference.query(SCAN)
        answers = {}
        sides = [
            ("storage", lambda sql, *p: reader.execute(sql, p).fetchall(), node_id),
            ("reference", reference.query, 1),
        ]

        async def purge(side: str, run: int, figure: str) -> None:
            """One purge of node ``2 + run`` (its WAL checkpointed first): its seconds
            and CPU seconds, kept as ``figure`` and ``{figure}_cpu``."""
            connection = reader if side == "storage" else reference.connection
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cpu, start = time.process_time(), time.perf_counter()
            if side == "storage":
                await storage.purge_pubsub_items(services=[SERVICE], names=[f"purged-{run}"])
            else:
                reference.purge(2 + run)
            times[side][figure].append(time.perf_counter() - start)
            times[side][f"{figure}_cpu"].append(time.process_time() - cpu)

        for run in range(args.runs):
            for _ in range(READS_A_RUN):
                sides.reverse()  # neither side always first
                for side, run_query, node in sides:
                    times[side]["scan"].append(timed(lambda: run_query(SCAN)))  # noqa: B023
                    times[side]["order_undeclared"].append(
                        timed(lambda: answers.__setitem__(side, run_query(ORDER, node)))  # noqa: B023
                    )
            for side in PURGE_ORDER[run % 2]:
                await purge(side, run, "purge")
        for connection in (reader, reference.connection):
            connection.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('optimize')")
            connection.commit()  # the reader's sqlite3 began a transaction for it
        for run in range(args.runs, 2 * args.runs):
            for side in PURGE_ORDER[run % 2]:
                await purge(side, run, "purge_merged")
        if len(answers["storage"]) != len(answers["reference"]):
            raise RuntimeError("the two sides do not hold the same items")
    finally:
        reader.close()
        reference.connection.close()
        await storage.close()
    return {
        side: {"table_mb": round(sizes[side] / 2**20, 2)}
        | {name: median(values) for name, values in figures.items()}
        for side, figures in times.items()
    }


FIGURES = (
    "table_mb", "scan", "order_undeclared", "purge", "purge_merged", "purge_cpu",
    "purge_merged_cpu",
)  # fmt: skip


async def run_postgresql(args: Any, workdir: str) -> dict[str, Any]:
    """The PostgreSQL figures (``bench/_layout_pg.py``)."""
    storage = await open_storage(args.db_url, workdir)
    try:
        figures = await _layout_pg.measure(args, storage, fill)
    finally:
        await storage.close()
    result = _layout_pg.result(args, figures)
    if not args.json:
        print(f"{args.items} items (+{args.purged} purged a run), {args.runs} runs, PostgreSQL")
        shown = ("figures", "ratio_to_reference", "target")
        print(json.dumps({k: result[k] for k in shown}, indent=1))
    return result


async def run(args: Any, workdir: str) -> dict[str, Any]:
    if engine_name(args.db_url) == "postgresql":
        return await run_postgresql(args, workdir)
    by_size = {
        size: await measure(args, os.path.join(workdir, str(size)), size) for size in PAGE_SIZES
    }
    result: dict[str, Any] = {
        "benchmark": "layout",
        "engine": "sqlite",
        "items": args.items,
        "purged": args.purged,
        "runs": args.runs,
        "figures": {
            str(size): {
                side: {k: (v if k == "table_mb" else round(v * 1000, 2)) for k, v in f.items()}
                for side, f in figures.items()
            }
            for size, figures in by_size.items()
        },
        "ratio_to_reference": {
            str(size): {
                k: round(figures["storage"][k] / figures["reference"][k], 3) for k in FIGURES
            }
            for size, figures in by_size.items()
        },
        "ratio_8k_to_4k": {
            side: {k: round(by_size[8192][side][k] / by_size[4096][side][k], 3) for k in FIGURES}
            for side in ("storage", "reference")
        },
    }
    # the storage's new files (8 KiB pages) beside Libervia's (SQLite's default, 4 KiB)
    result["ratio_default_to_reference_4k"] = {
        k: round(by_size[8192]["storage"][k] / by_size[4096]["reference"][k], 3) for k in FIGURES
    }
    result["target"] = {
        "not_slower_than_reference": all(
            result["ratio_to_reference"][str(size)][k] <= 1.0
            for size in PAGE_SIZES
            for k in ("scan", "order_undeclared", "purge", "purge_merged")
        )
    }
    results = []
    for size in PAGE_SIZES:
        for k in FIGURES:
            unit = "MB" if k == "table_mb" else "ms"
            ref = f"reference {k}, {size // 1024} KiB pages"
            value = by_size[size]["reference"][k]
            results.append({"name": ref, "value": value if unit == "MB" else value * 1000,
                            "unit": unit})  # fmt: skip
            value = by_size[size]["storage"][k]
            results.append({"name": f"storage {k}, {size // 1024} KiB pages",
                            "value": value if unit == "MB" else value * 1000, "unit": unit,
                            "baseline": ref})  # fmt: skip
    result["results"] = results
    if not args.json:
        print(f"{args.items} items (+{args.purged} purged a run), {args.runs} runs, SQLite")
        shown = ("figures", "ratio_to_reference", "ratio_8k_to_4k",
                 "ratio_default_to_reference_4k", "target")  # fmt: skip
        print(json.dumps({k: result[k] for k in shown}, indent=1))
    return result


if __name__ == "__main__":
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=20000, help="items of the scanned node")
    p.add_argument("--purged", type=int, default=1000, help="items of each purged node")
    main(run, p.parse_args())
