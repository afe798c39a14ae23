"""Helpers of the migration tests: databases at a revision, schema and data snapshots.

To test a new revision ``NNNN``, add to ``MigrationStepTests`` in
``twisted_tests/storage/test_migrations.py`` a method named ``test_step_NNNN`` that
calls :func:`check_step` with functions writing data in the old shape and checking it
after the upgrade and after the downgrade.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, inspect
from twisted.trial.unittest import TestCase

from sat_storage import engines, migration
from twisted_tests.db import database_url

Step = Callable[[Connection], None]


def connect(testcase: TestCase, url: str) -> Connection:
    """A connection (with this package's engine settings) closed at the test's cleanup."""
    engine = engines.create_engine(url)
    testcase.addCleanup(engine.dispose)
    connection = engine.connect()
    testcase.addCleanup(connection.close)
    return connection


def empty_database(testcase: TestCase) -> str:
    """URL of a new, empty database on the suite's engine."""
    return database_url(testcase, migrated=False)


def revision_before(revision: str) -> str | None:
    """The revision ``revision`` upgrades from (None: the empty database)."""
    down = migration.script_directory().get_revision(revision).down_revision
    if down is not None and not isinstance(down, str):
        raise AssertionError(f"revision {revision} merges {down}: test each branch")
    return down


def check_step(
    testcase: TestCase,
    revision: str,
    before_upgrade: Step | None = None,
    after_upgrade: Step | None = None,
    after_downgrade: Step | None = None,
) -> None:
    """Upgrade one step to ``revision`` and downgrade one step back, with data.

    On a new database brought (by the runner) to the revision before ``revision``:
    ``before_upgrade`` writes data in the old shape; the runner upgrades to
    ``revision``; ``after_upgrade`` checks the data was kept (and the new shape); the
    runner downgrades one step; ``after_downgrade`` checks the old shape and data.
    Each function runs in its own committed transaction.
    """
    previous = revision_before(revision)
    connection = connect(testcase, empty_database(testcase))
    if previous is not None:
        migration.upgrade(connection, previous)
    testcase.assertEqual(migration.current_revision(connection), previous)
    _in_transaction(connection, before_upgrade)
    migration.upgrade(connection, revision)
    testcase.assertEqual(migration.current_revision(connection), revision)
    _in_transaction(connection, after_upgrade)
    migration.downgrade(connection, previous or "base")
    testcase.assertEqual(migration.current_revision(connection), previous)
    _in_transaction(connection, after_downgrade)


def _in_transaction(connection: Connection, step: Step | None) -> None:
    if step is not None:
        with connection.begin():
            step(connection)


def set_revision(url: str, revision: str) -> None:
    """Stamp the database at ``url`` with ``revision`` behind the runner's back."""
    engine = engines.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        engine.dispose()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(connection: Connection) -> dict[str, tuple[list[str], list[str]]]:
    """Every table's column names and rows (as sorted text), to prove nothing changed."""
    result = {}
    for name in sorted(inspect(connection).get_table_names()):
        columns = [c["name"] for c in inspect(connection).get_columns(name)]
        table = sa.table(name, *(sa.column(c) for c in columns))
        rows = connection.execute(sa.select(table)).all()
        result[name] = (columns, sorted(repr(tuple(row)) for row in rows))
    connection.rollback()
    return result


def _type(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> str:
    if isinstance(type_, sa.types.NullType):  # e.g. the columns of an FTS5 table
        return "(no type)"
    return type_.compile(dialect=dialect)


def _text(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value)).strip() if value is not None else ""


def schema_of(connection: Connection) -> dict[str, Any]:
    """The reflected schema: tables (columns, keys, indexes, constraints) and triggers.

    Column order is left out (a migration adds columns at the end); SQL text is
    compared with its white space normalised.
    """
    insp = inspect(connection)
    dialect = connection.dialect
    tables = {}
    for name in sorted(insp.get_table_names()):
        columns = sorted(
            (
                c["name"],
                _type(c["type"], dialect),
                c["nullable"],
                _text(c.get("default")),
                _text((c.get("computed") or {}).get("sqltext")),
            )
            for c in insp.get_columns(name)
        )
        pk = insp.get_pk_constraint(name)
        tables[name] = {
            "columns": columns,
            "primary key": (pk.get("name"), tuple(pk["constrained_columns"])),
            "foreign keys": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    sorted(fk.get("options", {}).items()),
                )
                for fk in insp.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (i["name"], tuple(map(str, i["column_names"])), bool(i["unique"]))
                for i in insp.get_indexes(name)
            ),
            "unique constraints": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(name)
            ),
            "check constraints": sorted(
                (c["name"], _text(c["sqltext"])) for c in insp.get_check_constraints(name)
            ),
        }
    schema: dict[str, Any] = {"tables": tables}
    if dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('trigger', 'view')"
        )
    else:
        rows = connection.exec_driver_sql(
            "SELECT 'trigger', tgname, tgrelid::regclass::text FROM pg_trigger "
            "WHERE NOT tgisinternal UNION ALL "
            "SELECT 'function', p.proname, '' FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        )
    schema["other"] = sorted(tuple(row) for row in rows)
    connection.rollback()
    return schema
