"""Libervia databases that are not adopted: clear error, file untouched, no debris."""

from __future__ import annotations

import hashlib
from pathlib import Path

from twisted.trial.unittest import TestCase

from sat_storage import Storage
from sat_storage.exceptions import DatabaseNewerError
from sat_storage.libervia import AdoptionError, BackupError, UnknownRevisionError
from sat_storage.libervia.values import PickleRefused, unpickle
from twisted_tests.libervia.fixture import (
    FIXTURE,
    execute,
    fixture_copy,
    mount_tmpfs,
    remount_read_only,
    url_of,
)

# protocol 0: os.system("true")
SYSTEM_PICKLE = b"cos\nsystem\n(Vtrue\ntR."


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RefusalTests(TestCase):
    def siblings(self, path: Path) -> list[str]:
        return sorted(p.name for p in path.parent.iterdir() if p != path)

    async def refused(self, path: Path, error: type[Exception]) -> Exception:
        """initialise() on ``path`` fails with ``error``; the file is byte for byte the same."""
        before = digest(path)
        storage = Storage(url_of(path))
        with self.assertRaises(error) as caught:
            await storage.initialise()
        self.assertEqual(digest(path), before)
        return caught.exception

    async def test_forbidden_global(self) -> None:
        """A pickle naming os.system: the error names the row and the global; rolled back."""
        path = fixture_copy(self)
        execute(path, "UPDATE private_gen_bin SET value = ? WHERE key = 'nested'", SYSTEM_PICKLE)
        error = await self.refused(path, AdoptionError)
        self.assertIn("private_gen_bin row namespace='misc_bin', key='nested'", str(error))
        self.assertIn("os.system", str(error))
        self.assertEqual(self.siblings(path), [])  # the backup of a failed attempt is removed

    async def test_forbidden_global_in_history(self) -> None:
        """A forbidden pickle in history.extra names the message's uid."""
        path = fixture_copy(self)
        execute(path, "UPDATE history SET extra = ? WHERE uid = 'uid-3'", SYSTEM_PICKLE)
        error = await self.refused(path, AdoptionError)
        self.assertIn("history row uid='uid-3'", str(error))

    def test_unpickler_refuses_reduce_of_builtins(self) -> None:
        """Only the listed globals pass: builtins.eval is refused before anything runs."""
        with self.assertRaises(PickleRefused) as caught:
            unpickle(b"c__builtin__\neval\n(V1+1\ntR.")
        self.assertIn("__builtin__.eval", str(caught.exception))

    async def test_unknown_revision(self) -> None:
        """A revision neither Libervia's nor this package's: 'unknown', not 'newer'."""
        path = fixture_copy(self)
        execute(path, "UPDATE alembic_version SET version_num = 'abcdef123456'")
        error = await self.refused(path, UnknownRevisionError)
        self.assertIn("'abcdef123456'", str(error))
        self.assertIn("neither one of sat_storage's", str(error))
        self.assertNotIsInstance(error, DatabaseNewerError)

    async def test_newer_own_revision(self) -> None:
        """One of this package's revisions after its head is still 'newer'."""
        path = fixture_copy(self)
        execute(path, "UPDATE alembic_version SET version_num = '9999'")
        error = await self.refused(path, DatabaseNewerError)
        self.assertIn("newer version", str(error))

    async def test_read_only_file(self) -> None:
        """On a read-only file system: a clear error before any write, no backup."""
        directory = mount_tmpfs(self, 4 * FIXTURE.stat().st_size // 1024)
        path = fixture_copy(self, directory)
        remount_read_only(directory)
        error = await self.refused(path, AdoptionError)
        self.assertIn("read-only", str(error))
        self.assertEqual(self.siblings(path), [])

    async def test_no_space_for_backup(self) -> None:
        """A file system too small for the copy: BackupError naming it, nothing left."""
        size_kb = FIXTURE.stat().st_size // 1024
        directory = mount_tmpfs(self, size_kb + size_kb // 4)
        path = fixture_copy(self, directory)
        error = await self.refused(path, BackupError)
        self.assertIn(str(path) + ".libervia-0.9.bak", str(error))
        self.assertEqual(self.siblings(path), [])
