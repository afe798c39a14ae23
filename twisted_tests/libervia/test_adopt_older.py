"""A database at Libervia's first revision (made by its own downgrade) is adopted too."""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.trial.unittest import TestCase

from sat_storage import Storage, migration
from sat_storage.libervia import detect
from twisted_tests.libervia.fixture import (
    OLD_EXPECTED,
    OLD_FIXTURE,
    OLD_REVISION,
    expected,
    fixture_copy,
    url_of,
)
from twisted_tests.libervia.test_adopt import jsonable


class OlderRevisionTests(TestCase):
    async def setUp(self) -> None:
        self.path = fixture_copy(self, fixture=OLD_FIXTURE)
        self.expected = expected(OLD_EXPECTED)
        connection = sqlite3.connect(self.path)
        self.counts = {
            name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
            )
        }
        connection.close()
        self.storage = Storage(url_of(self.path))
        await self.storage.initialise()
        self.addCleanup(self.storage.close)

    def test_detected(self) -> None:
        """The first Libervia revision is recognised and brought to this package's head."""
        self.assertEqual(OLD_REVISION, detect.REVISIONS[0])
        self.assertEqual(self.storage.adoption.revision, OLD_REVISION)
        self.assertEqual(detect.read_revision(self.path), migration.head_revision())

    def test_every_row_kept(self) -> None:
        """Each table present at that revision keeps its row count (no pubsub tables yet)."""
        self.assertEqual(self.storage.adoption.rows, self.counts)
        self.assertNotIn("pubsub_nodes", self.counts)

    async def test_private_values(self) -> None:
        """Binary private values read back as the reference read them before its downgrade."""
        for where, values in self.expected["privates"].items():
            namespace, binary, profile = where.split("|")
            got = await self.storage.get_privates(
                namespace, binary=bool(int(binary)), profile=profile or None
            )
            self.assertEqual(got, values, where)

    async def test_history(self) -> None:
        """Messages read back as before the downgrade, less origin_id (a later column)."""
        for profile, rows in self.expected["history"].items():
            want: list[Any] = [
                [*row[:7], {k: v for k, v in row[7].items() if k != "origin_id"}] for row in rows
            ]
            got = await self.storage.history_get(None, None, profile=profile)
            self.assertEqual(jsonable([list(r) for r in got]), want, profile)
