"""``sat-storage db port``: copy a SQLite database into PostgreSQL, keeping every id.

:func:`port` runs synchronously (no reactor: it only talks to the two databases), so
Ctrl-C stops it between two statements and the batch in flight is rolled back.
:func:`plan` is the dry run: it reads both sides and changes nothing.

Steps of a port: consistent snapshot of the source (:mod:`.source`); source revision
equal to this code's head; target created or upgraded to head, empty, and no value
PostgreSQL would refuse; then every table (:mod:`.tables`) in batches of ``COPY``,
each batch committed with its progress (:mod:`.target`: resumable without
duplicates); sequences moved past the copied ids; full-text index rebuilt and item
count triggers created again (dropped during the copy: node counts are copied); row counts
and checksums compared (:mod:`.verify`); progress table and snapshot removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from sat_storage import engines, migration
from sat_storage.port import source, target, verify
from sat_storage.port.source import BadValue
from sat_storage.port.tables import PortTable, installed_schemas, port_tables

__all__ = ["BadValue", "PortRefused", "PortUnverified", "plan", "port"]

DEFAULT_BATCH = 5_000
Event = Callable[[dict[str, Any]], None]


class PortRefused(Exception):
    """The port cannot start (bad source, target or values); nothing was copied."""

    def __init__(self, message: str, bad_values: list[BadValue] | None = None) -> None:
        super().__init__(message)
        self.bad_values = bad_values or []


class PortUnverified(Exception):
    """The copy ended but the target differs from the source (per-table report)."""

    def __init__(self, report: list[dict[str, Any]]) -> None:
        differing = ", ".join(r["table"] for r in report if not r["equal"])
        super().__init__(f"verification failed: {differing} differ from the source")
        self.report = report


def source_file(url: str) -> Path:
    """The SQLite file of the source URL; PortRefused when it is not one that exists."""
    parsed = engines.parse_url(url)
    path = engines.sqlite_path(parsed) if engines.is_sqlite(parsed) else None
    if path is None:
        raise PortRefused(f"--from must be a SQLite file URL, got {engines.safe_url(url)}")
    if not path.is_file():
        raise PortRefused(f"--from: no SQLite database at {path}")
    return path


def check_target_url(url: str) -> None:
    """PortRefused unless ``url`` is a PostgreSQL URL."""
    if engines.parse_url(url).get_backend_name() != "postgresql":
        raise PortRefused(f"--to must be a PostgreSQL URL, got {engines.safe_url(url)}")


def source_revision(connection: Any) -> str | None:
    """The core revision of a SQLite database (None: not a sat_storage database)."""
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        [migration.VERSION_TABLE],
    ).fetchone()
    if not found:
        return None
    row = connection.execute(f"SELECT version_num FROM {migration.VERSION_TABLE}").fetchone()
    return row[0] if row else None


def source_branches(connection: Any) -> dict[str, str | None]:
    """The plugin schemas recorded in a SQLite database: name -> revision."""
    from sat_storage.branches import VERSION_PREFIX

    found: dict[str, str | None] = {}
    names = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ESCAPE '!'",
        [VERSION_PREFIX.replace("_", "!_") + "%"],
    ).fetchall()
    for (table,) in names:
        name = table[len(VERSION_PREFIX) :]
        rows = connection.execute(f'SELECT version_num FROM "{table}"').fetchall()
        found[name] = next((r[0] for r in rows if r[0].startswith(name + "_")), None)
    return found


def source_schemas(connection: Any) -> dict[str, Any]:
    """The plugin schemas to port (name -> metadata): those of the source, all installed.

    PortRefused when the source has a plugin schema this installation does not know.
    """
    installed = installed_schemas()
    recorded = source_branches(connection)
    unknown = sorted(set(recorded) - set(installed))
    if unknown:
        raise PortRefused(
            "the source has tables of plugin schema(s) not installed here: "
            f"{', '.join(unknown)}; install their plugins, then port"
        )
    return {name: installed[name] for name in recorded}


def check_branches(source: dict[str, str | None], target: dict[str, str | None]) -> None:
    """PortRefused unless each plugin schema of the source is at the target's revision."""
    for name, revision in source.items():
        if target.get(name) != revision:
            raise PortRefused(
                f"plugin schema {name!r} is at revision {revision} in the source and "
                f"{target.get(name)} in the target: upgrade the source first "
                "(sat-storage db upgrade, with the plugin installed)"
            )


def check_source_revision(revision: str | None, path: Path) -> None:
    """PortRefused unless the source is at this code's head revision."""
    head = migration.head_revision()
    if revision is None:
        raise PortRefused(f"{path} is not a sat_storage database (no revision)")
    if revision != head:
        raise PortRefused(
            f"the source is at revision {revision}, the target will be at {head}: "
            f"upgrade the source first (sat-storage --db-url sqlite:///{path} db upgrade)"
        )


def in_use(path: Path) -> bool:
    """Whether a process seems to have the SQLite file open (its WAL file is not empty)."""
    wal = path.with_name(path.name + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def _refuse_bad_values(found: list[BadValue]) -> None:
    if found:
        raise PortRefused(
            f"{len(found)} value(s) PostgreSQL refuses; fix them in the source first:\n"
            + "\n".join(str(value) for value in found),
            found,
        )


def plan(source_url: str, target_url: str) -> dict[str, Any]:
    """What :func:`port` would do, changing nothing (``--dry-run``)."""
    path = source_file(source_url)
    check_target_url(target_url)
    with source.open_read_only(path) as connection:
        revision = source_revision(connection)
        tables = port_tables(source_schemas(connection))
        counts = {t.name: source.count_rows(connection, t) for t in tables}
        found = source.bad_values(connection, tables)
    target_revision, has_tables = target.read_revision(target_url)
    progress: dict[str, Any] = {}
    state = "empty"
    if has_tables:
        with target.connect(target_url) as connection:
            if target.has_state(connection):
                state = "resume"
                progress = target.read_state(connection)[1]
            elif target.non_empty(connection, tables):
                state = "not empty"
    return {
        "source": str(path),
        "source_revision": revision,
        "head": migration.head_revision(),
        "source_in_use": in_use(path),
        "target": engines.safe_url(target_url),
        "target_revision": target_revision,
        "target_state": state,
        "tables": [
            {"table": name, "rows": count, "copied": progress.get(name, {}).get("rows", 0)}
            for name, count in counts.items()
        ],
        "total": sum(counts.values()),
        "bad_values": [str(value) for value in found],
    }


def _start(path: Path, target_url: str, emit: Event) -> Path:
    """A new port: snapshot, checks, target schema and progress table; the snapshot."""
    snapshot = source.snapshot_path(path)
    busy = in_use(path)
    source.take_snapshot(path, snapshot)
    try:
        with source.open_read_only(snapshot) as connection:
            revision = source_revision(connection)
            check_source_revision(revision, path)
            branches = source_branches(connection)
            tables = port_tables(source_schemas(connection))
            _refuse_bad_values(source.bad_values(connection, tables))
        schema, target_branches = target.upgrade_schema(target_url)
        check_branches(branches, target_branches)
        with target.connect(target_url) as connection:
            filled = target.non_empty(connection, tables)
            if filled:
                listed = ", ".join(f"{name} ({count} rows)" for name, count in filled.items())
                raise PortRefused(f"the target is not empty: {listed}; port into an empty one")
            meta = {"source": str(path), "snapshot": str(snapshot), "revision": revision}
            target.create_state(connection, meta)
    except BaseException:
        snapshot.unlink(missing_ok=True)
        raise
    # said once every check passed: a refused port prints only its refusal
    emit({"event": "snapshot", "path": str(snapshot), "source_in_use": busy})
    emit({"event": "schema", "action": schema.action, "revision": schema.current})
    return snapshot


def _resume(path: Path, connection: Any) -> tuple[Path, dict[str, Any]]:
    """An interrupted port of ``path``: its snapshot and progress."""
    meta, progress = target.read_state(connection)
    if meta.get("source") != str(path):
        raise PortRefused(
            f"the target holds an interrupted port from {meta.get('source')}: resume it "
            "with that --from, or port into another database"
        )
    snapshot = Path(meta["snapshot"])
    if not snapshot.is_file():
        raise PortRefused(
            f"the snapshot {snapshot} of the interrupted port is gone: cannot resume; "
            "port into a new empty database"
        )
    return snapshot, progress


def _copy_table(
    snapshot: Any,
    connection: Any,
    table: PortTable,
    state: dict[str, Any],
    batch: int,
    tick: Callable[[str, int], None],
) -> None:
    """Copy the rows of ``table`` after its recorded last key, batch by batch."""
    after, copied = state.get("last_key"), state.get("rows", 0)
    while True:
        rows = source.rows_after(snapshot, table, after, batch)
        done = len(rows) < batch
        copied += len(rows)
        try:
            target.copy_batch(connection, table, rows, copied, done)
        except psycopg.DataError as e:  # a value the checks did not foresee
            first = table.key_of(rows[0])
            raise PortRefused(
                f"table {table.name}: PostgreSQL refused a value in the rows from key "
                f"{first!r} ({str(e).strip().splitlines()[0]}); fix it in the source, then "
                "port into a new empty database"
            ) from None
        tick(table.name, len(rows))
        if done:
            return
        after = table.key_of(rows[-1])


def port(
    source_url: str,
    target_url: str,
    batch: int = DEFAULT_BATCH,
    on_event: Event | None = None,
) -> dict[str, Any]:
    """Copy the SQLite database ``source_url`` into ``target_url``; the verified report.

    ``on_event`` receives dicts with an ``event`` key: ``snapshot``, ``schema``,
    ``start`` (``total``, ``done``: rows already copied by an interrupted run),
    ``progress`` (``table``, ``done``, ``total``, ``rate`` rows/s), ``finish``
    (sequences and full-text index), ``verified``.
    """
    if batch < 1:
        raise ValueError(f"batch must be a positive number of rows, got {batch!r}")
    emit = on_event or (lambda event: None)
    path = source_file(source_url)
    check_target_url(target_url)
    with target.connect(target_url) as connection:
        resumed = target.has_state(connection)
        if resumed:
            snapshot, progress = _resume(path, connection)
    if not resumed:
        snapshot, progress = _start(path, target_url, emit), {}
    with source.open_read_only(snapshot) as snap, target.connect(target_url) as connection:
        tables = port_tables(source_schemas(snap))
        totals = {t.name: source.count_rows(snap, t) for t in tables}
        total = sum(totals.values())
        done = sum(p["rows"] for p in progress.values())
        emit({"event": "start", "total": total, "done": done, "resumed": resumed})
        started, first = time.monotonic(), done
        target.drop_derived(connection)

        def tick(name: str, count: int) -> None:
            nonlocal done
            done += count
            elapsed = max(time.monotonic() - started, 1e-9)
            rate = (done - first) / elapsed
            emit({"event": "progress", "table": name, "done": done, "total": total, "rate": rate})

        for table in tables:
            state = progress.get(table.name, {})
            if not state.get("done"):
                _copy_table(snap, connection, table, state, batch, tick)
        copy_seconds = time.monotonic() - started
        sequences = target.fix_sequences(connection, tables)
        target.rebuild_derived(connection, snap)
        finish_seconds = time.monotonic() - started - copy_seconds
        emit({"event": "finish", "sequences": len(sequences), "full_text": "rebuilt"})
        report = verify.compare(snap, connection, tables)
        verify_seconds = time.monotonic() - started - copy_seconds - finish_seconds
        if not all(row["equal"] for row in report):
            raise PortUnverified(report)
        target.drop_state(connection)
    snapshot.unlink(missing_ok=True)
    result = {
        "source": str(path),
        "target": engines.safe_url(target_url),
        "resumed": resumed,
        "rows": total,
        "copied_now": total - first,
        "copy_seconds": copy_seconds,
        "finish_seconds": finish_seconds,  # sequences and full-text index
        "verify_seconds": verify_seconds,
        "seconds": time.monotonic() - started,
        "sequences": sequences,
        "tables": report,
        "verified": True,
    }
    emit({"event": "verified", "tables": len(report), "rows": total})
    return result
