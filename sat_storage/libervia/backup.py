"""The copy of a Libervia database made before its first write."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from sat_storage.libervia.errors import BackupError

__all__ = ["SUFFIX", "backup_path", "make_backup"]

log = logging.getLogger(__name__)
SUFFIX = ".libervia-0.9.bak"


def backup_path(path: Path) -> Path:
    """``NAME.libervia-0.9.bak`` next to ``path``; ``….bak.1``, ``.2``… if taken."""
    candidate = path.with_name(path.name + SUFFIX)
    n = 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}{SUFFIX}.{n}")
    return candidate


def make_backup(path: Path) -> Path:
    """Copy the database ``path`` (consistent, with ``VACUUM INTO``); return the copy.

    Raise :class:`BackupError` naming both files when it cannot be made (no space,
    no permission); a partial copy is removed and ``path`` is not changed.
    """
    target = backup_path(path)
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        connection.execute("VACUUM INTO ?", (str(target),))
    except sqlite3.Error as e:
        target.unlink(missing_ok=True)
        raise BackupError(
            f"cannot back up the Libervia database {path} to {target}: {e}; "
            "nothing was changed (free some space or fix the permissions, then start again)"
        ) from None
    finally:
        connection.close()
    target.chmod(path.stat().st_mode & 0o777)
    log.info("Libervia database %s backed up to %s", path, target)
    return target
