"""The SQLite side of a port: a consistent snapshot, its rows in key order, bad values.

The port never reads the live file: it first takes a snapshot with SQLite's online
backup API, which is consistent even while a host writes to the source (its writes
after the snapshot are not ported). The snapshot lives beside the source until the
port is verified, so an interrupted port resumes from the same data.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sat_storage.port.tables import BYTES, FLOAT, INT, INT32, JSON, TEXT, PortTable

SNAPSHOT_SUFFIX = ".port-snapshot"
INT32_RANGE = (-(2**31), 2**31 - 1)


def quote(name: str) -> str:
    """An identifier of the schema (never a user value) quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def snapshot_path(source: Path) -> Path:
    """Where the snapshot of ``source`` is kept while a port runs."""
    return source.with_name(source.name + SNAPSHOT_SUFFIX)


def take_snapshot(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` consistently (SQLite backup API), mode 0600."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    partial.replace(target)


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite file ``path``."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def count_rows(connection: sqlite3.Connection, table: PortTable) -> int:
    """Rows of ``table``."""
    return connection.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()[0]


def rows_after(
    connection: sqlite3.Connection, table: PortTable, after: list[Any] | None, limit: int
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows of ``table`` in key order, after the key ``after``."""
    columns = ", ".join(quote(c) for c in table.columns)
    key = ", ".join(quote(c) for c in table.key)
    where = ""
    params: list[Any] = []
    if after is not None:
        marks = ", ".join("?" for _ in table.key)
        where = f" WHERE ({key}) > ({marks})"
        params = list(after)
    sql = f"SELECT {columns} FROM {quote(table.name)}{where} ORDER BY {key} LIMIT ?"
    return connection.execute(sql, [*params, limit]).fetchall()


def all_rows(
    connection: sqlite3.Connection, table: PortTable, batch: int = 10_000
) -> Iterator[tuple[Any, ...]]:
    """Every row of ``table``, in key order, read in batches."""
    after = None
    while True:
        rows = rows_after(connection, table, after, batch)
        yield from rows
        if len(rows) < batch:
            return
        after = table.key_of(rows[-1])


@dataclass(frozen=True)
class BadValue:
    """A value SQLite holds and PostgreSQL refuses."""

    table: str
    key: dict[str, Any]
    column: str
    reason: str

    def __str__(self) -> str:
        key = ", ".join(f"{name}={value!r}" for name, value in self.key.items())
        return f"table {self.table}, row {key}, column {self.column}: {self.reason}"


def _problems(column: str, kind: str) -> list[tuple[str, str]]:
    """(SQL condition, reason) pairs finding values of ``column`` PostgreSQL refuses."""
    col = quote(column)
    checks: list[tuple[str, str]] = []
    if kind in (TEXT, JSON):
        checks.append((f"instr(CAST({col} AS BLOB), x'00') > 0", "contains a NUL character (0x00)"))
    if kind == TEXT:  # JSON columns hold bare numbers as a BLOB of their JSON text
        checks.append((f"typeof({col}) = 'blob'", "holds bytes, not text"))
    if kind == JSON:
        checks.append((f"instr({col}, '\\u0000') > 0", "JSON with a \\u0000 escape"))
    if kind in (INT32, INT):
        checks.append((f"typeof({col}) NOT IN ('integer', 'null')", "is not an integer"))
    if kind == INT32:
        low, high = INT32_RANGE
        checks.append(
            (f"({col} < {low} OR {col} > {high})", "is out of PostgreSQL's integer range")
        )
    if kind == FLOAT:
        checks.append((f"typeof({col}) NOT IN ('integer', 'real', 'null')", "is not a number"))
    if kind == BYTES:
        checks.append((f"typeof({col}) NOT IN ('blob', 'null')", "is not bytes"))
    return checks


def bad_values(
    connection: sqlite3.Connection, tables: list[PortTable], limit: int = 100
) -> list[BadValue]:
    """The values PostgreSQL would refuse (at most ``limit``), found by SQL on SQLite."""
    found: list[BadValue] = []
    for table in tables:
        key = ", ".join(quote(c) for c in table.key)
        for column, kind in zip(table.columns, table.kinds, strict=True):
            for condition, reason in _problems(column, kind):
                sql = (
                    f"SELECT {key} FROM {quote(table.name)} WHERE {condition} "
                    f"ORDER BY {key} LIMIT ?"
                )
                for row in connection.execute(sql, [limit - len(found)]):
                    found.append(
                        BadValue(table.name, dict(zip(table.key, row, strict=True)), column, reason)
                    )
                if len(found) >= limit:
                    return found
    return found
