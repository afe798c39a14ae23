"""SQLite databases locked by another connection, for tests of the busy handling."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from twisted.trial.unittest import TestCase


def locked_database(testcase: TestCase) -> tuple[str, sqlite3.Connection]:
    """A SQLite file whose write lock is held by a connection, closed at cleanup."""
    directory = Path(testcase.mktemp()).resolve()
    directory.mkdir()
    path = str(directory / "locked.sqlite")
    holder = sqlite3.connect(path, isolation_level=None)
    testcase.addCleanup(holder.close)
    holder.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")
    testcase.addCleanup(holder.execute, "ROLLBACK")
    return path, holder


def real_locked_error(testcase: TestCase) -> sqlite3.OperationalError:
    """A genuine ``database is locked`` error, from a database locked by another connection."""
    path, _ = locked_database(testcase)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    testcase.addCleanup(other.close)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        return e
    raise AssertionError("the database was not locked")
