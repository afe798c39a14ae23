"""What every table-family module of the storage shares."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from twisted.internet import defer

from sat_storage.exceptions import ProfileUnknownError
from sat_storage.gateway import Gateway

P = ParamSpec("P")
T = TypeVar("T")


def check_type(name: str, value: object, *types: type) -> None:
    """Raise ``TypeError`` naming the argument when ``value`` is not of ``types``."""
    if not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in types)
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}: {value!r}")


def as_deferred(
    method: Callable[P, defer.Deferred[T] | Coroutine[Any, Any, T] | T],
) -> Callable[P, defer.Deferred[T]]:
    """Make ``method`` return a Deferred whatever it does (``defer.maybeDeferred``).

    A refused argument then comes as a failed Deferred, never raised at the call,
    as from Libervia's ``async def`` methods; ``method`` may also be ``async def``.
    One public storage method is one decorated method: checks, then ``self.db.run``.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> defer.Deferred[T]:
        return defer.maybeDeferred(method, *args, **kwargs)  # type: ignore[arg-type]

    return wrapper


class StorageBase:
    """State shared by the table families: the gateway and the profile cache.

    Each family is a mixin of :class:`sat_storage.Storage`; its public methods return
    Deferreds and delegate to synchronous ``*_txn`` twins that run in a database
    thread (so several operations can share one transaction).
    """

    db: Gateway
    profiles: dict[str, int]  # profile name -> id, kept in step with the database
    components: dict[int, str]  # profile id -> entry point

    @property
    def dialect(self) -> str:
        """Name of the SQLAlchemy dialect in use (``sqlite`` or ``postgresql``)."""
        return self.db.dialect_name

    def get_profile_id(self, profile: str) -> int:
        """Id of ``profile``; ``ProfileUnknownError`` when it does not exist."""
        check_type("profile", profile, str)
        try:
            return self.profiles[profile]
        except KeyError:
            raise ProfileUnknownError(profile) from None

    def client_profile_id(self, client: Any) -> int:
        """Id of the profile of ``client`` (an object with a ``profile`` attribute)."""
        profile = getattr(client, "profile", None)
        if profile is None:
            raise TypeError(f"client must have a 'profile' attribute, got {client!r}")
        return self.get_profile_id(profile)
