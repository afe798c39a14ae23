"""PostgreSQL half of ``bench/layout.py``: the items table beside a Libervia-shaped one.

The reference is Libervia 0.9's ``pubsub_items`` as its SQLAlchemy model makes it on
PostgreSQL (``data`` text, ``parsed`` json, ``created``/``updated`` timestamps, unique
``(node_id, name)``, the node's foreign key), with the PostgreSQL analogue of its
full-text table on the XML: a GIN index on ``to_tsvector('simple', data)`` (an index,
no stored copy, as FTS5's external content). It lives in the storage's database
(``bench_reference_items``, its nodes are rows of ``pubsub_nodes``), written with
psycopg alone in the storage's transactions (``MAX_ITEMS_BATCH`` items each). Both
tables are vacuumed and analysed once filled. Figures:

- ``table_mb``: ``pg_table_size`` (heap, TOAST, maps; indexes excluded);
  ``indexes_mb``: ``pg_indexes_size``; ``row_bytes``: mean ``pg_column_size`` of a row
  (TOASTed values counted whole);
- ``heap_pages``: the pages of the heap alone (``pg_relation_size``, no TOAST), and
  ``rows_per_page``: the rows of a page (``pg_class.reltuples / relpages``, exact after
  the ``VACUUM (ANALYZE)``; shown, no ratio): what a bare scan reads and a purge's
  delete dirties. On this bench's items the storage's heap tuples are 1,646-1,650
  bytes (1,628-1,632 without the vector's TOAST pointer: jsonb is 13 bytes over json)
  against the reference's 1,616-1,619, just over what 5 a page of 8 KiB allow
  (1,624 once aligned): 4.0 rows a page against the reference's 4.6;
- ``scan``: ``SELECT sum(length(name))`` read from the heap (index scans disabled);
- ``order_undeclared``: the newest 20 of the node by ``parsed ->> 'title'``;
- ``purge``: the purge of one node of ``--purged`` items (storage:
  ``purge_pubsub_items``; reference: ``DELETE`` by node and commit).
"""

from __future__ import annotations

import time
from typing import Any

from _common import SERVICE, Client, atom_items, median

from sat_storage import engines, json_text
from sat_storage.storage.pubsub import MAX_ITEMS_BATCH
from sat_storage.xml_tools import to_xml

REFERENCE = "bench_reference_items"
REFERENCE_DDL = (
    f"DROP TABLE IF EXISTS {REFERENCE}",
    f"CREATE TABLE {REFERENCE} (id SERIAL PRIMARY KEY, "
    "node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE, "
    "name TEXT NOT NULL, data TEXT NOT NULL, "
    "created TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, "
    "updated TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL, "
    "parsed JSON, UNIQUE (node_id, name))",
    f"CREATE INDEX {REFERENCE}_fts ON {REFERENCE} USING gin (to_tsvector('simple', data))",
)
SCAN = "SELECT sum(length(name)) FROM {}"
HEAP_ONLY = (
    "SET LOCAL enable_indexscan = off",
    "SET LOCAL enable_indexonlyscan = off",
    "SET LOCAL enable_bitmapscan = off",
)
ORDER = "SELECT id FROM {} WHERE node_id = %s ORDER BY parsed ->> 'title' DESC LIMIT 20"
SIZES = (
    "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass), "
    "(SELECT avg(pg_column_size(t.*)) FROM {} AS t), "
    "pg_relation_size(%s::regclass) / current_setting('block_size')::integer, "
    "(SELECT reltuples / greatest(relpages, 1) FROM pg_class WHERE oid = %s::regclass)"
)
READS_A_RUN = 5
PURGE_ORDER = (("storage", "reference"), ("reference", "storage"))


class Reference:
    """The Libervia-shaped table, written and read with psycopg alone."""

    def __init__(self, storage: Any) -> None:
        self.engine = engines.create_engine(storage.db_url)
        self.conn = self.engine.raw_connection()
        cursor = self.conn.cursor()
        for statement in REFERENCE_DDL:
            cursor.execute(statement)
        cursor.execute("SELECT id FROM profiles WHERE name = %s", (Client.profile,))
        self.profile_id = cursor.fetchone()[0]
        self.conn.commit()

    def new_node(self, name: str) -> int:
        cursor = self.conn.cursor()
        cursor.execute(
            "INSERT INTO pubsub_nodes (profile_id, service, name, subscribed, "
            "sync_state_updated, item_count, items_version) "
            "VALUES (%s, 'reference', %s, false, 0, 0, 0) RETURNING id",
            (self.profile_id, name),
        )
        self.conn.commit()
        return cursor.fetchone()[0]

    def fill(self, node_id: int, items: list, parsed: list) -> None:
        rows = [
            (node_id, item["id"], to_xml(item), json_text.dumps(p))
            for item, p in zip(items, parsed, strict=True)
        ]
        cursor = self.conn.cursor()
        for start in range(0, len(rows), MAX_ITEMS_BATCH):
            cursor.executemany(
                f"INSERT INTO {REFERENCE} (node_id, name, data, parsed) VALUES (%s, %s, %s, %s)",
                rows[start : start + MAX_ITEMS_BATCH],
            )
            self.conn.commit()

    def query(self, sql: str, *parameters: Any, heap_only: bool = False) -> list[Any]:
        cursor = self.conn.cursor()
        try:
            if heap_only:
                for statement in HEAP_ONLY:
                    cursor.execute(statement)
            cursor.execute(sql, parameters)
            return cursor.fetchall()
        finally:
            self.conn.rollback()

    def purge(self, node_id: int) -> None:
        cursor = self.conn.cursor()
        cursor.execute(f"DELETE FROM {REFERENCE} WHERE node_id = %s", (node_id,))
        self.conn.commit()

    def vacuum(self, *tables: str) -> None:
        self.conn.commit()
        self.conn.driver_connection.autocommit = True
        try:
            for table in tables:
                self.conn.cursor().execute(f"VACUUM (ANALYZE) {table}")  # our constant names
        finally:
            self.conn.driver_connection.autocommit = False

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


def timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


async def measure(args: Any, storage: Any, fill: Any) -> dict[str, Any]:
    """Both tables in the storage's PostgreSQL database: their figures (seconds, medians)."""
    reference = Reference(storage)
    try:
        items, parsed = atom_items(args.items)
        node = await fill(storage, "main", items, parsed)
        main_ref = reference.new_node("main")
        reference.fill(main_ref, items, parsed)
        purged, purged_parsed = atom_items(args.purged)
        ref_nodes = []
        for run in range(args.runs):
            await fill(storage, f"purged-{run}", purged, purged_parsed)
            ref_nodes.append(reference.new_node(f"purged-{run}"))
            reference.fill(ref_nodes[-1], purged, purged_parsed)
        reference.vacuum("pubsub_items", REFERENCE)
        tables = {"storage": "pubsub_items", "reference": REFERENCE}
        sizes = {
            side: reference.query(SIZES.format(table), table, table, table, table)[0]
            for side, table in tables.items()
        }
        for table in tables.values():  # pages into the cache, hint bits set
            reference.query(SCAN.format(table), heap_only=True)
        times: dict[str, dict[str, list[float]]] = {
            side: {"scan": [], "order_undeclared": [], "purge": []} for side in tables
        }
        answers: dict[str, Any] = {}
        sides = [("storage", node.id), ("reference", main_ref)]
        for run in range(args.runs):
            for _ in range(READS_A_RUN):
                sides.reverse()
                for side, node_id in sides:
                    table = tables[side]
                    times[side]["scan"].append(
                        timed(lambda: reference.query(SCAN.format(table), heap_only=True))  # noqa: B023
                    )
                    times[side]["order_undeclared"].append(
                        timed(  # noqa: B023
                            lambda: answers.__setitem__(
                                side,  # noqa: B023
                                reference.query(ORDER.format(table), node_id),  # noqa: B023
                            )
                        )
                    )
            for side in PURGE_ORDER[run % 2]:
                start = time.perf_counter()
                if side == "storage":
                    await storage.purge_pubsub_items(services=[SERVICE], names=[f"purged-{run}"])
                else:
                    reference.purge(ref_nodes[run])
                times[side]["purge"].append(time.perf_counter() - start)
        if len(answers["storage"]) != len(answers["reference"]):
            raise RuntimeError("the two tables do not hold the same items")
    finally:
        reference.close()
    return {
        side: {
            "table_mb": round(sizes[side][0] / 2**20, 2),
            "indexes_mb": round(sizes[side][1] / 2**20, 2),
            "row_bytes": round(float(sizes[side][2]), 1),
            "heap_pages": int(sizes[side][3]),
            "rows_per_page": round(float(sizes[side][4]), 2),
        }
        | {name: median(values) for name, values in figures.items()}
        for side, figures in times.items()
    }


#: with a ratio (storage / reference: lower is better); rows_per_page is shown only
FIGURES = (
    "table_mb", "indexes_mb", "row_bytes", "heap_pages", "scan", "order_undeclared", "purge",
)  # fmt: skip
UNITS = {
    "table_mb": "MB", "indexes_mb": "MB", "row_bytes": "B", "heap_pages": "pages",
    "rows_per_page": "rows",
}  # fmt: skip


def result(args: Any, figures: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` object of a PostgreSQL run."""
    shown = {
        side: {k: (v if k in UNITS else round(v * 1000, 2)) for k, v in f.items()}
        for side, f in figures.items()
    }
    ratios = {k: round(figures["storage"][k] / figures["reference"][k], 3) for k in FIGURES}
    results = []
    for k in FIGURES:
        unit = UNITS.get(k, "ms")
        scale = 1 if k in UNITS else 1000
        ref = f"reference {k}"
        results.append({"name": ref, "value": figures["reference"][k] * scale, "unit": unit})
        results.append({"name": f"storage {k}", "value": figures["storage"][k] * scale,
                        "unit": unit, "baseline": ref})  # fmt: skip
    return {
        "benchmark": "layout",
        "engine": "postgresql",
        "items": args.items,
        "purged": args.purged,
        "runs": args.runs,
        "figures": shown,
        "ratio_to_reference": ratios,
        "target": {
            "not_slower_than_reference": all(
                ratios[k] <= 1.0 for k in ("scan", "order_undeclared", "purge")
            )
        },
        "results": results,
    }
