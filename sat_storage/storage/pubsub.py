"""Pubsub nodes, subscriptions and cached items."""

from __future__ import annotations

from sat_storage.storage.base import StorageBase


class PubsubStore(StorageBase):
    """Pubsub nodes, subscriptions and cached items."""
