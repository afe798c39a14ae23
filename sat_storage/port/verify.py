"""The end of a port: row counts and a checksum of each table's content on both sides.

A table's checksum is the sum (modulo 2**256) of the SHA-256 of each row in a
canonical, engine-independent form (:func:`sat_storage.port.tables.canonical`): it
does not depend on the order the engines give rows in (their collations differ), and
any changed, missing or extra row changes it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

from sat_storage.port import source
from sat_storage.port.tables import PortTable, canonical

MODULUS = 2**256


def checksum(table: PortTable, rows: Iterable[tuple[Any, ...]]) -> tuple[int, str]:
    """``(row count, checksum)`` of ``rows`` of ``table``."""
    total = 0
    count = 0
    for row in rows:
        values = tuple(canonical(k, v) for k, v in zip(table.kinds, row, strict=True))
        total += int.from_bytes(hashlib.sha256(repr(values).encode()).digest(), "big")
        count += 1
    return count, f"{total % MODULUS:064x}"


def target_rows(connection: psycopg.Connection[Any], table: PortTable) -> Iterable[tuple[Any, ...]]:
    """Every row of ``table`` on the target (a server-side cursor)."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
    query = sql.SQL("SELECT {} FROM {}").format(columns, sql.Identifier(table.name))
    with connection.transaction(), connection.cursor(name=f"verify_{table.name}") as cursor:
        # jsonb as its text, like SQLite's: a JSON string is not mistaken for JSON text
        cursor.adapters.register_loader("jsonb", TextLoader)
        cursor.itersize = 10_000
        cursor.execute(query)
        yield from cursor


def compare(
    snapshot: sqlite3.Connection, target: psycopg.Connection[Any], tables: list[PortTable]
) -> list[dict[str, Any]]:
    """Per table: rows and checksum on both sides, and whether they are equal."""
    report = []
    for table in tables:
        rows, digest = checksum(table, source.all_rows(snapshot, table))
        target_count, target_digest = checksum(table, target_rows(target, table))
        report.append(
            {
                "table": table.name,
                "rows": rows,
                "target_rows": target_count,
                "checksum": digest,
                "target_checksum": target_digest,
                "equal": (rows, digest) == (target_count, target_digest),
            }
        )
    return report
