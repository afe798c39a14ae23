"""Private data (text and JSON values), general and per profile."""

from __future__ import annotations

from sat_storage.storage.base import StorageBase


class PrivateStore(StorageBase):
    """Private data (text and JSON values), general and per profile."""
