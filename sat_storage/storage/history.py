"""Message history."""

from __future__ import annotations

from sat_storage.storage.base import StorageBase


class HistoryStore(StorageBase):
    """Message history."""
