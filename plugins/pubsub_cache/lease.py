"""Who synchronises a node, across processes sharing the database.

Each running cache instance has an *owner token*, ``HOST:PID:RANDOM`` (the host name
and process id are for people, and for telling a dead owner of this host). The
storage keeps, per node, the owner of its synchronisation and the end of its lease;
this module makes the tokens and tells when their owner surely no longer runs.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

#: tokens of the cache instances running in this process (registered until stopped)
_live: set[str] = set()


def new_owner() -> str:
    """A new owner token for this process, registered as live (see :func:`unregister`)."""
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    _live.add(token)
    return token


def unregister(token: str) -> None:
    """The instance owning ``token`` stopped: it owns nothing any more."""
    _live.discard(token)


@dataclass(frozen=True)
class Holder:
    """The owner of a node's synchronisation, and the end of its lease."""

    owner: str
    lease_expires: float | None

    @property
    def host(self) -> str:
        """Host name of the owner's machine ('' if the token has none)."""
        host, _pid = _parse(self.owner)
        return host

    @property
    def pid(self) -> int | None:
        """Process id of the owner (None if the token has none)."""
        return _parse(self.owner)[1]

    def describe(self) -> str:
        """The owner for people: ``process 1234 on host-a``."""
        host, pid = _parse(self.owner)
        if pid is None:
            return f"owner {self.owner!r}"
        return f"process {pid} on {host}"

    def lease_end(self) -> str:
        """End of the lease for people (UTC, ISO 8601)."""
        if self.lease_expires is None:
            return "no lease"
        return datetime.fromtimestamp(self.lease_expires, UTC).isoformat(timespec="seconds")

    def as_dict(self) -> dict[str, object]:
        """JSON-serialisable form: ``owner``, ``host``, ``pid``, ``lease_expires``."""
        return {
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "lease_expires": self.lease_expires,
        }


def _parse(token: str) -> tuple[str, int | None]:
    """(host, pid) of a token; pid None when the token is not ``HOST:PID:RANDOM``."""
    parts = token.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return "", None
    return parts[0], int(parts[1])


def owner_gone(token: str) -> bool:
    """True when the owner of ``token`` surely no longer runs.

    That is known only on this host: a process that has exited, or an instance of
    this process that has stopped. The owner of another host (or of a token of
    another form) is never taken for gone: its lease has to expire.
    """
    host, pid = _parse(token)
    if pid is None or host != socket.gethostname() or os.name != "posix":
        return False
    if pid == os.getpid():
        return token not in _live
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: it runs
        return False
    return False


class SyncOwnedElsewhere(Exception):
    """Another process (or cache instance) synchronises the node: this one does not."""

    def __init__(self, label: str, holder: Holder) -> None:
        self.holder = holder
        super().__init__(
            f"{label} is being synchronised by {holder.describe()} "
            f"(its lease ends at {holder.lease_end()} unless renewed)"
        )


class SyncLeaseLost(Exception):
    """This instance no longer holds the node it was synchronising (taken over after
    its lease expired, state set by an administrator, node deleted): it stops."""


__all__ = [
    "Holder",
    "SyncLeaseLost",
    "SyncOwnedElsewhere",
    "new_owner",
    "owner_gone",
    "unregister",
]
