"""Errors of the adoption of a Libervia 0.9 database (the file is left untouched)."""

from __future__ import annotations

from sat_storage.exceptions import StorageError, UnknownDatabaseError

__all__ = ["AdoptionError", "BackupError", "ProfilePasswordError", "UnknownRevisionError"]


class AdoptionError(StorageError):
    """The Libervia database could not be adopted; it was left as it was."""


class BackupError(AdoptionError):
    """The copy made before the first write could not be made (space, permissions)."""


class UnknownRevisionError(UnknownDatabaseError):
    """The database is stamped with a revision neither this package nor Libervia 0.9 has."""


class ProfilePasswordError(StorageError):
    """A profile password is needed to decrypt stored credentials, or it is wrong."""
