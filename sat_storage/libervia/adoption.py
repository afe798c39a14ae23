"""Adoption at start: detect a Libervia 0.9 file, back it up, upgrade it in place.

:func:`adopt` is what :meth:`sat_storage.Storage.initialise` and ``sat-storage db
upgrade`` call before opening the database the usual way (which switches the file to
WAL: a write, so it must come after the backup).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from sat_storage import engines, migration
from sat_storage.gateway import Gateway
from sat_storage.libervia import detect
from sat_storage.libervia.backup import make_backup
from sat_storage.libervia.errors import AdoptionError
from sat_storage.libervia.upgrade import upgrade_connection

__all__ = ["Adoption", "adopt", "libervia_file"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adoption:
    """What :func:`adopt` did."""

    path: Path
    revision: str  # Libervia's
    backup: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def row_count(self) -> int:
        """Rows copied, every table together."""
        return sum(self.rows.values())


def libervia_file(db_url: str) -> tuple[Path, str] | None:
    """The SQLite file of ``db_url`` and its Libervia revision, if it is Libervia's.

    A file stamped with a revision neither this package nor Libervia 0.9 has is
    refused here, before anything opens it for writing (``DatabaseNewerError`` or
    :class:`~sat_storage.libervia.errors.UnknownRevisionError`).
    """
    url = engines.parse_url(db_url)
    if not engines.is_sqlite(url):
        return None
    path = engines.sqlite_path(url)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return None
    revision = detect.read_revision(path)
    if revision is None or revision in {str(r["revision"]) for r in migration.history()}:
        return None
    if not detect.is_libervia(revision):
        raise detect.unknown_revision_error(revision, migration.head_revision())
    return path, revision


def _engine(path: Path) -> Engine:
    """An engine for the upgrade: rollback journal kept, foreign keys off, one transaction."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {engines.SQLITE_BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA foreign_keys = OFF")

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _upgrade(connection: Connection, path: Path) -> dict[str, int]:
    with connection.begin():
        rows = upgrade_connection(connection)
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise AdoptionError(
                f"dangling references after the upgrade of {path} (table, rowid, parent): "
                f"{[tuple(p)[:3] for p in problems[:5]]}; the database was left untouched"
            )
    return rows


def _backup_and_upgrade(connection: Connection, path: Path) -> tuple[Path, dict[str, int]]:
    """The backup, then the upgrade (DB thread); a failed upgrade removes its backup."""
    backup = make_backup(path)
    return backup, _checked_upgrade(connection, path, backup)


def _checked_upgrade(connection: Connection, path: Path, backup: Path) -> dict[str, int]:
    try:
        return _upgrade(connection, path)
    except AdoptionError:
        backup.unlink(missing_ok=True)
        raise
    except sa.exc.DBAPIError as e:
        backup.unlink(missing_ok=True)
        raise AdoptionError(
            f"the upgrade of the Libervia database {path} failed: {e.orig}; "
            "it was rolled back, the database was left untouched"
        ) from None


async def adopt(db_url: str, reactor: Any = None) -> Adoption | None:
    """Adopt the database of ``db_url`` if it is a Libervia 0.9 one; None otherwise.

    Backup first (``NAME.libervia-0.9.bak``, logged), then the in-place upgrade in one
    transaction. :class:`~sat_storage.libervia.errors.BackupError` or
    :class:`~sat_storage.libervia.errors.AdoptionError` leave the file untouched.
    """
    found = libervia_file(db_url)
    if found is None:
        return None
    path, revision = found
    for target in (path, path.parent):
        if not os.access(target, os.W_OK):
            raise AdoptionError(
                f"the Libervia database {path} cannot be upgraded in place: {target} is "
                "read-only; nothing was changed"
            )
    log.info("%s is a Libervia 0.9 database (revision %s): adopting it", path, revision)
    started = time.perf_counter()
    gateway = Gateway(_engine(path), reactor)
    try:
        backup, rows = await gateway.run_with_connection(_backup_and_upgrade, path)
    finally:
        await gateway.close()
    adoption = Adoption(path, revision, backup, rows, time.perf_counter() - started)
    log.info(
        "Libervia database %s adopted: %d rows in %.1fs, backup at %s",
        path,
        adoption.row_count,
        adoption.seconds,
        backup,
    )
    return adoption
