"""Storage and pubsub cache layer for Libervia-style Twisted XMPP backends."""

from pathlib import Path

from sat_storage import _layout

_layout.install(Path(__file__).resolve().parent)

from sat_storage.storage import ItemsQuery, Storage  # noqa: E402

__all__ = ["ItemsQuery", "Storage"]
__version__ = "0.1.0"
