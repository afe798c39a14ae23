"""Has a transaction committed to a SQLite WAL database since? Told without a query.

In WAL mode, SQLite keeps the *wal-index* in the ``-shm`` file beside the database,
shared (memory-mapped) by every connection of every process. Its header
(https://www.sqlite.org/walformat.html, "the wal-index header") is written by every
commit, whoever commits: ``iChange`` (a counter incremented by each write
transaction), ``mxFrame`` (the last valid frame of the WAL), the WAL's salts (new
ones at each restart of the WAL) and checksums. A writer writes the header's two
copies one after the other (the second copy first); readers take the header when
both copies are equal. New read transactions take their snapshot from this header,
so a transaction is visible to others exactly when it wrote the header.

Hence :meth:`WalChanges.token`: the header's bytes (its first copy, checked against
the second), read from a read-only mapping of the ``-shm`` file, about a
microsecond and no query. Two equal tokens, the first read *before* a database
read, mean that no transaction committed in between: what the read found is still
the database's content. A checkpoint, or the WAL restarting, may also change the
header without changing the content: that only makes a token differ (a miss).

:meth:`WalChanges.open` keeps its own connection to the database open until
:meth:`WalChanges.close`: while it is open (it holds SQLite's shared locks of a WAL
connection), no other connection can leave WAL mode, nor delete, truncate or
initialise the ``-shm`` file again (SQLite does that only as the first or last
connection). Any doubt gives no token (None), and the caller reads the database:
the header copies unequal (a writer between its two copies) or not the format
known (``iVersion`` 3007000, initialised), the ``-shm`` file no longer the one
mapped (deleted or replaced: another inode) or shorter than the header, a database
not in WAL mode or in memory (:meth:`open` gives None).
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import struct

__all__ = ["HEADER_SIZE", "WALINDEX_VERSION", "WalChanges"]

#: bytes of one copy of the wal-index header (two copies follow each other)
HEADER_SIZE = 48
#: ``iVersion`` of the wal-index format this module knows
WALINDEX_VERSION = 3007000
#: the header's two copies and the checkpoint information after them
_MAPPED = 136
_VERSION_AND_INIT = struct.Struct("=IIIB")  # iVersion, unused, iChange, isInit


class WalChanges:
    """The wal-index header of one SQLite database in WAL mode (see the module
    docstring); made by :meth:`open`, used in one thread at a time."""

    def __init__(
        self, connection: sqlite3.Connection, shm_path: str, shm: int, mapping: mmap.mmap
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self.shm_path = shm_path
        self._shm = shm
        self._mapping: mmap.mmap | None = mapping
        status = os.fstat(shm)
        self._identity = (status.st_dev, status.st_ino)

    @classmethod
    def open(cls, database: str) -> WalChanges | None:
        """Watch the SQLite file ``database`` (a path; blocking: call it in a database
        thread); None when it is not in WAL mode or its ``-shm`` file can't be mapped."""
        connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        try:
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            # the file name SQLite uses (the -shm file is named after it)
            listed = connection.execute("PRAGMA database_list").fetchall()
            files = [row[2] for row in listed if row[1] == "main"]
            if mode.lower() != "wal" or not files or not files[0]:
                connection.close()
                return None
            # a read opens the WAL and its -shm (held until the connection closes)
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            shm_path = files[0] + "-shm"
            shm = os.open(shm_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, sqlite3.Error):
            connection.close()
            return None
        try:
            if os.fstat(shm).st_size < _MAPPED:
                raise OSError(f"{shm_path}: shorter than the wal-index header")
            mapping = mmap.mmap(shm, _MAPPED, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            os.close(shm)
            connection.close()
            return None
        watch = cls(connection, shm_path, shm, mapping)
        if watch.token() is None:  # not a header this module knows
            watch.close()
            return None
        return watch

    def token(self) -> bytes | None:
        """The wal-index header now (equal tokens: no commit between them), or None
        when it can't be trusted (see the module docstring)."""
        mapping = self._mapping
        if mapping is None:
            return None
        try:
            status = os.stat(self.shm_path)
        except OSError:
            return None
        if (status.st_dev, status.st_ino) != self._identity or status.st_size < _MAPPED:
            return None
        header = mapping[: 2 * HEADER_SIZE]
        first = header[:HEADER_SIZE]
        if first != header[HEADER_SIZE:]:
            return None
        version, _unused, _change, initialised = _VERSION_AND_INIT.unpack_from(first)
        if version != WALINDEX_VERSION or initialised != 1:
            return None
        return first

    def close(self) -> None:
        """Stop watching: no more tokens; the mapping, then the connection, closed."""
        if self._mapping is not None:
            self._mapping.close()
            self._mapping = None
            os.close(self._shm)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
