"""Adoption of a Libervia 0.9 database: rows/s of the whole start (backup + upgrade).

The database is made by the reference (Debian's libervia-backend) with
``twisted_tests/libervia/generate_fixture.py --history 100000 --items 50000 --out
PATH``; give it with ``--libervia PATH`` (or ``$SAT_BENCH_LIBERVIA_DB``). Each run
adopts a fresh copy through ``Storage.initialise()``. Baselines from the same run:
SQLite copying the same tables as they are (``CREATE TABLE … AS SELECT`` from the
attached copy, one transaction: the ceiling of moving the rows) and the backup
alone (``VACUUM INTO``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from _common import main, median, parser

from sat_storage import Storage

DEFAULT = os.environ.get("SAT_BENCH_LIBERVIA_DB", "/work/libervia-bench/libervia-100k.sqlite")


def raw_copy(source: Path, target: Path) -> int:
    """Copy every table of ``source`` into a new file as it is; rows copied."""
    connection = sqlite3.connect(target, isolation_level=None)
    try:
        connection.execute("ATTACH DATABASE ? AS src", (str(source),))
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM src.sqlite_master WHERE type = 'table' AND sql NOT LIKE "
                "'CREATE VIRTUAL%' AND name NOT LIKE 'pubsub_items_fts%'"
            )
        ]
        rows = 0
        connection.execute("BEGIN")
        for name in tables:
            connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM src."{name}"')
            rows += connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        connection.execute("COMMIT")
        return rows
    finally:
        connection.close()


def vacuum_into(source: Path, target: Path) -> None:
    connection = sqlite3.connect(source)
    try:
        connection.execute("VACUUM INTO ?", (str(target),))
    finally:
        connection.close()


async def run(args: Any, workdir: str) -> dict[str, Any]:
    source = Path(args.libervia)
    if not source.is_file():
        sys.exit(
            f"no Libervia database at {source}: make one with the reference, "
            "twisted_tests/libervia/generate_fixture.py --history 100000 --items 50000 --out PATH"
        )
    adopt_times, raw_times, backup_times = [], [], []
    rows = raw_rows = 0
    for n in range(args.runs):
        copy = Path(workdir) / f"run{n}.db"
        shutil.copyfile(source, copy)
        started = time.perf_counter()
        raw_rows = raw_copy(copy, Path(workdir) / f"raw{n}.db")
        raw_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        vacuum_into(copy, Path(workdir) / f"vacuum{n}.db")
        backup_times.append(time.perf_counter() - started)
        storage = Storage(f"sqlite:///{copy}")
        started = time.perf_counter()
        await storage.initialise()
        adopt_times.append(time.perf_counter() - started)
        assert storage.adoption is not None, "not adopted: not a Libervia 0.9 database?"
        rows = storage.adoption.row_count
        await storage.close()
        for leftover in Path(workdir).iterdir():
            leftover.unlink()
        print(f"run {n + 1}: {rows} rows adopted in {adopt_times[-1]:.2f}s", file=sys.stderr)
    raw = "raw SQLite copy of the same tables"
    return {
        "benchmark": "libervia_adopt",
        "rows": rows,
        "results": [
            {"name": raw, "value": round(raw_rows / median(raw_times)), "unit": "rows/s"},
            {
                "name": "backup alone (VACUUM INTO)",
                "value": round(median(backup_times), 2),
                "unit": "s",
            },  # fmt: skip
            {
                "name": "adoption at initialise() (backup + upgrade)",
                "value": round(rows / median(adopt_times)),
                "unit": "rows/s",
                "baseline": raw,
            },
            {
                "name": "adoption at initialise(), seconds",
                "value": round(median(adopt_times), 2),
                "unit": "s",
            },  # fmt: skip
        ],
    }


if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--libervia", default=DEFAULT, help="the Libervia 0.9 database to adopt")
    p.set_defaults(runs=3)
    main(run, p.parse_args())
