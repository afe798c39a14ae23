"""WalChanges: SQLite's wal-index header tells every commit, of any connection.

Real SQLite files, real second connections and a real second process; the header
checks are also run on a file written here byte by byte (a header of the known
format, then broken ones).
"""

from __future__ import annotations

import mmap
import os
import shutil
import sqlite3
import struct
import sys

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from sat_storage.wal_changes import HEADER_SIZE, WALINDEX_VERSION, WalChanges

WRITER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("INSERT INTO t VALUES ('from another process')")
connection.close()
"""
_HEADER = struct.Struct("=IIIBBHII")  # iVersion, unused, iChange, isInit, bigEnd, szPage...


class WalTestCase(TestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "wal.sqlite")
        self.writer = self.connect()
        self.writer.execute("PRAGMA journal_mode = WAL")
        self.writer.execute("CREATE TABLE t (x TEXT)")
        changes = WalChanges.open(self.path)
        assert changes is not None
        self.changes = changes
        self.addCleanup(self.changes.close)

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        self.addCleanup(connection.close)
        return connection

    def token(self) -> bytes:
        token = self.changes.token()
        self.assertIsNotNone(token)
        assert token is not None
        return token


class TokenTests(WalTestCase):
    def test_commit_changes_token(self) -> None:
        """A commit of another connection gives another token."""
        before = self.token()
        self.writer.execute("INSERT INTO t VALUES ('a')")
        self.assertNotEqual(self.token(), before)

    def test_every_commit_changes_token(self) -> None:
        """Each of several commits gives a token not seen before."""
        seen = {self.token()}
        for n in range(5):
            self.writer.execute("INSERT INTO t VALUES (?)", (str(n),))
            seen.add(self.token())
        self.assertEqual(len(seen), 6)

    def test_reads_keep_token(self) -> None:
        """Reads, and a transaction rolled back, leave the token as it was."""
        before = self.token()
        reader = self.connect()
        reader.execute("SELECT * FROM t").fetchall()
        self.writer.execute("BEGIN IMMEDIATE")
        self.writer.execute("INSERT INTO t VALUES ('never')")
        self.writer.execute("ROLLBACK")
        self.assertEqual(self.token(), before)

    def test_uncommitted_keeps_token(self) -> None:
        """A write transaction not committed yet leaves the token; its commit changes it."""
        before = self.token()
        self.writer.execute("BEGIN IMMEDIATE")
        self.writer.execute("INSERT INTO t VALUES ('pending')")
        pending = self.token()
        self.writer.execute("COMMIT")
        self.assertEqual((pending == before, self.token() == before), (True, False))

    async def test_other_process(self) -> None:
        """A commit of another process gives another token."""
        before = self.token()
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable, ["-c", WRITER, self.path], env=os.environ
        )
        self.assertEqual(code, 0, err.decode())
        self.assertNotEqual(self.token(), before)

    def test_checkpoint_and_restart(self) -> None:
        """After a checkpoint truncating the WAL, a commit (the WAL restarted from its
        start, mxFrame lower than before) still gives a token not seen before."""
        self.writer.execute("INSERT INTO t VALUES ('a')")
        seen = {self.token()}
        self.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        seen.add(self.token())
        self.writer.execute("INSERT INTO t VALUES ('b')")
        self.assertNotIn(self.token(), seen)

    def test_closed(self) -> None:
        """A closed watch gives no token."""
        self.changes.close()
        self.assertIsNone(self.changes.token())


class HoldTests(WalTestCase):
    def test_wal_mode_kept(self) -> None:
        """While watched, another connection can't take the database out of WAL mode."""
        other = self.connect()
        with self.assertRaises(sqlite3.OperationalError):
            other.execute("PRAGMA journal_mode = DELETE").fetchall()

    def test_shm_kept_by_watch(self) -> None:
        """The other connections all closed and a new one writing: the -shm file is
        the one watched, and the new commit changes the token."""
        before = self.token()
        self.writer.close()
        self.assertTrue(os.path.exists(self.changes.shm_path))
        self.connect().execute("INSERT INTO t VALUES ('later')")
        self.assertNotEqual(self.token(), before)

    def test_shm_replaced(self) -> None:
        """A -shm file replaced by another file (another inode): no token."""
        copy = self.changes.shm_path + ".copy"
        shutil.copyfile(self.changes.shm_path, copy)
        os.replace(copy, self.changes.shm_path)
        self.assertIsNone(self.changes.token())


class OpenTests(TestCase):
    def test_not_wal(self) -> None:
        """A database in rollback-journal mode is not watched."""
        path = self.mktemp() + ".sqlite"
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("CREATE TABLE t (x)")
        connection.close()
        self.assertIsNone(WalChanges.open(path))

    def test_in_memory(self) -> None:
        """An in-memory database is not watched."""
        self.assertIsNone(WalChanges.open(":memory:"))


class HeaderTests(TestCase):
    """The header checks, on a file of 136 bytes written here."""

    def watch(self, first: bytes, second: bytes) -> WalChanges:
        path = self.mktemp()
        with open(path, "wb") as out:
            out.write(first + second + bytes(136 - 2 * HEADER_SIZE))
        shm = os.open(path, os.O_RDONLY)
        mapping = mmap.mmap(shm, 136, access=mmap.ACCESS_READ)
        changes = WalChanges(sqlite3.connect(":memory:"), path, shm, mapping)
        self.addCleanup(changes.close)
        return changes

    @staticmethod
    def header(version: int = WALINDEX_VERSION, change: int = 7, init: int = 1) -> bytes:
        return _HEADER.pack(version, 0, change, init, 0, 4096, 3, 2).ljust(HEADER_SIZE, b"\x01")

    def test_known_header(self) -> None:
        """Two equal copies of a header of the known format: that header is the token."""
        header = self.header()
        self.assertEqual(self.watch(header, header).token(), header)

    def test_copies_differ(self) -> None:
        """Copies that differ (a writer between them): no token."""
        self.assertIsNone(self.watch(self.header(change=8), self.header()).token())

    def test_unknown_version(self) -> None:
        """Another iVersion: no token."""
        header = self.header(version=WALINDEX_VERSION + 1)
        self.assertIsNone(self.watch(header, header).token())

    def test_not_initialised(self) -> None:
        """isInit not set: no token."""
        header = self.header(init=0)
        self.assertIsNone(self.watch(header, header).token())
