"""Which database is this: Libervia 0.9's, this package's, newer, or unknown.

Detection only reads (a read-only SQLite connection): nothing is written before
the backup.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from sat_storage.exceptions import DatabaseNewerError, StorageError
from sat_storage.libervia.errors import UnknownRevisionError

__all__ = ["HEAD", "REVISIONS", "is_libervia", "read_revision", "unknown_revision_error"]

#: Libervia 0.9's Alembic revisions, oldest first
REVISIONS = ("602caf848068", "8974efc51d22", "129ac51807e4", "79e5f3313fa4", "4b002773cf92")
HEAD = REVISIONS[-1]
# this package numbers its revisions 0001, 0002, … (``NNNN`` or ``NNNN_slug``)
_OWN_REVISION = re.compile(r"(\d{4})(_\w+)?")


def is_libervia(revision: str | None) -> bool:
    """True when ``revision`` is one of Libervia 0.9's."""
    return revision in REVISIONS


def read_revision(path: Path) -> str | None:
    """The ``alembic_version`` of the SQLite file ``path`` (None: none, or no such table).

    Opened read-only: the file is not changed (not even its journal mode).
    """
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise
        return None if row is None else str(row[0])
    finally:
        connection.close()


def unknown_revision_error(current: str, head: str) -> StorageError:
    """The refusal of a revision this code does not know.

    One of this package's (``NNNN``) after ``head`` is a newer version's
    (:class:`DatabaseNewerError`); anything else is an unknown revision.
    """
    own = _OWN_REVISION.fullmatch(current)
    if own is not None and own.group(1) > head[:4]:
        return DatabaseNewerError(
            f"the database is at revision {current!r}, which this code does not know "
            f"(its newest revision is {head!r}): it was migrated by a newer version; "
            "upgrade sat_storage, the database was left untouched"
        )
    return UnknownRevisionError(
        f"the database is at revision {current!r}, which is neither one of sat_storage's "
        f"(newest {head!r}) nor one of Libervia 0.9's ({', '.join(REVISIONS)}): "
        "unknown database, left untouched"
    )
