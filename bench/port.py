"""Benchmark: ``db port`` SQLite -> PostgreSQL beside a raw psycopg ``COPY`` ceiling.

A SQLite database with N history rows (each with its message row) and N cached Atom
items (default N = 100,000) is made with the driver (schema by the storage's own
migration runner), then on a PostgreSQL server on 127.0.0.1 (``--pg-url`` of a
superuser, else a throwaway server started here):

- ``port``: :func:`sat_storage.port.port` into a new empty database; rows/s of its
  copy phase (``copy_seconds``) and of the whole run (snapshot, checks, copy,
  sequences, full-text rebuild, verification);
- ``raw_copy``: the same rows, read from SQLite beforehand, sent with one psycopg
  ``COPY`` per table into a new database migrated the same way, with the full-text
  column and index dropped as the port drops them during its copy: the ceiling.

Prints rows/s and the ratio port/raw (copy phase, and whole run).

    .venv/bin/python bench/port.py [--json] [--rows N] [--batch B] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import atom_item  # noqa: E402

from sat_storage import engines, fts, migration, port  # noqa: E402
from sat_storage.port import source, target  # noqa: E402
from sat_storage.port.tables import port_tables  # noqa: E402
from sat_storage.xml_tools import to_xml  # noqa: E402


def make_source(path: Path, rows: int) -> None:
    """A SQLite database at head with ``rows`` history messages and cached items."""
    engine = engines.create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        migration.initialise_schema(connection)
    engine.dispose()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO profiles (id, name) VALUES (1, 'bench')")
    db.execute(
        "INSERT INTO pubsub_nodes (id, profile_id, service, name, subscribed, "
        "sync_state, sync_state_updated, type) "
        "VALUES (1, 1, 'pubsub.bench.example', 'urn:xmpp:microblog:0', 1, 'completed', 0, 'blog')"
    )
    when = "2024-05-01 12:00:00.000000"
    db.executemany(
        "INSERT INTO history (uid, profile_id, source, source_res, dest, timestamp, type, "
        "extra) VALUES (?, 1, 'alice@example.org', 'res', 'bob@example.org', ?, 'chat', ?)",
        ((f"uid-{i:07d}", 1_700_000_000.0 + i, json.dumps({"stanza": i})) for i in range(rows)),
    )
    db.executemany(
        "INSERT INTO message (history_uid, message, language) VALUES (?, ?, NULL)",
        ((f"uid-{i:07d}", f"message number {i} about xmpp") for i in range(rows)),
    )
    words = fts.item_text(atom_item(0)[0])  # the same words for every item

    def items() -> Any:
        for i in range(rows):
            element, parsed = atom_item(i)
            yield (i + 1, f"item-{i:06d}", to_xml(element), when, when, json.dumps(parsed))

    db.executemany(
        "INSERT INTO pubsub_items (id, node_id, name, data, created, updated, parsed) "
        "VALUES (?, 1, ?, ?, ?, ?, ?)",
        items(),
    )
    fts.sqlite_write(
        lambda sql, p: (db.executemany if isinstance(p, list) else db.execute)(sql, p),
        [(i + 1, words) for i in range(rows)],
    )
    db.commit()
    db.close()


def new_database(admin_url: str, migrated: bool) -> str:
    """A new database on the server (migrated to head when asked); its URL."""
    name = f"sat_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(target.conninfo(admin_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = engines.parse_url(admin_url).set(database=name).render_as_string(hide_password=False)
    if migrated:
        target.upgrade_schema(url)
    return url


def raw_copy(snapshot: Path, url: str) -> tuple[int, float]:
    """The ceiling: every row read first, then one COPY per table; (rows, seconds)."""
    tables = port_tables()  # the benchmark has no plugin schema
    with source.open_read_only(snapshot) as db:
        data = {t.name: list(source.all_rows(db, t, 50_000)) for t in tables}
    with target.connect(url) as connection:
        target.drop_derived(connection)
        started = time.perf_counter()
        for table in tables:
            columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table.name), columns
            )
            with connection.transaction(), connection.cursor().copy(statement) as copy:
                for row in data[table.name]:
                    copy.write_row(row)
        seconds = time.perf_counter() - started
    return sum(len(rows) for rows in data.values()), seconds


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Make the source, port it, copy it raw; the figures."""
    path = workdir / "source.sqlite"
    started = time.perf_counter()
    make_source(path, args.rows)
    fill_seconds = time.perf_counter() - started
    server = None
    admin = args.pg_url
    if admin is None:
        from twisted_tests.pg_server import start_postgresql

        server = start_postgresql()
        admin = server.url
    try:
        result = port.port(f"sqlite:///{path}", new_database(admin, False), args.batch)
        copy = workdir / "copy.sqlite"
        shutil.copy(path, copy)
        raw_rows, raw_seconds = raw_copy(copy, new_database(admin, True))
    finally:
        if server is not None:
            server.stop()
    rows = result["rows"]
    port_copy_rate = rows / result["copy_seconds"]
    port_total_rate = rows / result["seconds"]
    raw_rate = raw_rows / raw_seconds
    return {
        "benchmark": "port",
        "history_rows": args.rows,
        "cached_items": args.rows,
        "rows": rows,
        "batch": args.batch,
        "fill_seconds": round(fill_seconds, 2),
        "port_copy_seconds": round(result["copy_seconds"], 2),
        "port_finish_seconds": round(result["finish_seconds"], 2),
        "port_verify_seconds": round(result["verify_seconds"], 2),
        "port_total_seconds": round(result["seconds"], 2),
        "raw_copy_seconds": round(raw_seconds, 2),
        "port_copy_rows_per_s": round(port_copy_rate),
        "port_total_rows_per_s": round(port_total_rate),
        "raw_copy_rows_per_s": round(raw_rate),
        "ratio_copy": round(port_copy_rate / raw_rate, 3),
        "ratio_total": round(port_total_rate / raw_rate, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="history rows and cached items")
    p.add_argument("--batch", type=int, default=port.DEFAULT_BATCH, help="rows per COPY")
    p.add_argument("--pg-url", help="PostgreSQL URL of a role that may create databases")
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sat-bench-port."))
    try:
        result = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
