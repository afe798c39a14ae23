"""General and per-profile parameters."""

from __future__ import annotations

from sat_storage.storage.base import StorageBase


class ParamsStore(StorageBase):
    """General and per-profile parameters."""
