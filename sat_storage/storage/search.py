"""Search of cached pubsub items (full text and parsed data)."""

from __future__ import annotations

from sat_storage.storage.base import StorageBase


class SearchStore(StorageBase):
    """Search of cached pubsub items (full text and parsed data)."""
