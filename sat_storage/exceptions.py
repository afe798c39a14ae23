"""Errors raised by the storage, the host and the plugins (Libervia's names)."""

from __future__ import annotations

from typing import Any


class StorageError(Exception):
    """Base of the storage errors."""


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type, named in the message.

    A ``ValueError`` as DESIGN §7 asks of bad input, and a ``TypeError`` as the
    storage raised for a wrong type before, so callers catching either keep working.
    """


class ProfileUnknownError(StorageError, KeyError):
    """The profile named does not exist."""

    def __str__(self) -> str:
        return f"unknown profile: {self.args[0]!r}" if self.args else "unknown profile"


class ConflictError(StorageError):
    """The object already exists (a profile, an analyser, …)."""


class NotFound(StorageError, KeyError):
    """The requested object does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class DatabaseNewerError(StorageError):
    """The database was migrated by a newer version of the code: it is not touched."""


class UnknownDatabaseError(StorageError):
    """The database holds tables but no revision this package knows how to handle."""


class FeatureNotFound(Exception):
    """A service lacks features the caller needs (``host.check_features``)."""


class ProfileNotConnected(NotFound):
    """The profile has no connected client."""


class SchemaUnavailableError(StorageError):
    """A plugin schema's tables are not ready (its migration failed or was refused)."""


class SyncOwnedElsewhere(Exception):
    """Another process (or cache instance) synchronises the node: this one does not.

    ``holder`` (a ``pubsub_cache.lease.Holder``) tells who, and until when.
    """

    def __init__(self, label: str, holder: Any) -> None:
        self.holder = holder
        super().__init__(
            f"{label} is being synchronised by {holder.describe()} "
            f"(its lease ends at {holder.lease_end()} unless renewed)"
        )


class SyncLeaseLost(Exception):
    """This instance no longer holds the node it was synchronising (taken over after
    its lease expired, state set by an administrator, node deleted): it stops."""
