"""Generic access to mapped objects: get, add, delete."""

from __future__ import annotations

from sat_storage.storage.base import StorageBase


class GenericStore(StorageBase):
    """Generic access to mapped objects: get, add, delete."""
