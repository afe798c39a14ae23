"""Which database the suite runs on, and storages for tests.

One variable picks the engine for the whole suite: ``SAT_STORAGE_TEST_DB`` is
``sqlite`` (default: a file in the test's temporary directory) or ``postgresql``
(a fresh database per test, copied from a migrated template; see pg_server.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.trial.unittest import SkipTest, TestCase

from sat_storage import Storage, engines, migration

ENV_TEST_DB = "SAT_STORAGE_TEST_DB"
F = TypeVar("F", bound=Callable[..., Any])


def test_dialect() -> str:
    """``sqlite`` or ``postgresql``, as chosen by ``$SAT_STORAGE_TEST_DB``."""
    value = os.environ.get(ENV_TEST_DB, "sqlite").lower()
    if value not in ("sqlite", "postgresql"):
        raise RuntimeError(f"{ENV_TEST_DB} must be sqlite or postgresql, not {value!r}")
    return value


def migrate(url: str) -> None:
    """Build the schema of a template database with the storage's own runner."""
    engine = engines.create_engine(url)
    try:
        with engine.connect() as connection:
            migration.initialise_schema(connection)
    finally:
        engine.dispose()


def sqlite_url(testcase: TestCase, name: str = "db.sqlite") -> str:
    """URL of a new SQLite file in the test's temporary directory."""
    directory = testcase.mktemp()
    os.makedirs(directory)
    return f"sqlite:///{os.path.abspath(os.path.join(directory, name))}"


def database_url(testcase: TestCase, migrated: bool = True) -> str:
    """URL of a new database for ``testcase`` on the suite's engine.

    ``migrated=False`` gives an empty PostgreSQL database (SQLite files start empty).
    """
    if test_dialect() == "postgresql":
        from twisted_tests.pg_server import fresh_database

        return fresh_database(testcase, migrate if migrated else _empty)
    return sqlite_url(testcase)


def _empty(url: str) -> None:
    """Template builder of an empty database."""


async def make_storage(testcase: TestCase, url: str | None = None) -> Storage:
    """An initialised storage on the suite's engine, closed at the test's cleanup."""
    storage = Storage(url or database_url(testcase))
    await storage.initialise()
    testcase.addCleanup(storage.close)
    return storage


async def storage_with_profiles(testcase: TestCase, *profiles: str) -> Storage:
    """An initialised storage with ``profiles`` created."""
    storage = await make_storage(testcase)
    for profile in profiles:
        await storage.create_profile(profile)
    return storage


def only_on(dialect: str) -> Callable[[F], F]:
    """Skip the decorated test unless the suite runs on ``dialect``."""

    def decorator(fn: F) -> F:
        if test_dialect() != dialect:
            fn.skip = f"runs only on {dialect} ({ENV_TEST_DB}={dialect})"  # type: ignore[attr-defined]
        return fn

    return decorator


__all__ = [
    "SkipTest",
    "database_url",
    "make_storage",
    "only_on",
    "sqlite_url",
    "storage_with_profiles",
    "test_dialect",
]
