"""File metadata (the file sharing plugins' records)."""

from __future__ import annotations

from sat_storage.storage.base import StorageBase


class FilesStore(StorageBase):
    """File metadata (the file sharing plugins' records)."""
