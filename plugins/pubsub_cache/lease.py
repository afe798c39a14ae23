"""Who synchronises a node, across processes sharing the database.

Each running cache instance has an *owner token*, ``HOST:PID:RANDOM`` (the host name
and process id are for people, and for telling a dead owner of this host). The
storage keeps, per node, the owner of its synchronisation and the end of its lease;
this module makes the tokens, tells when their owner surely no longer runs, and
(:class:`SyncLease`) claims, renews and releases the nodes of one cache instance.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sat_storage.plugins.pubsub_cache import LOGGER
from sat_storage.plugins.pubsub_cache.keys import NodeKey, ProfileClient, profile_names
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from sat_storage.deferreds import KeyedLock
from sat_storage.exceptions import NotFound, SyncLeaseLost, SyncOwnedElsewhere
from sat_storage.models import PubsubNode, SyncState

log = logging.getLogger(f"{LOGGER}.lease")

#: claims of a node before giving up (it changes hands between the tries)
CLAIM_TRIES = 3

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


class SyncLease:
    """The leases of one cache instance on the nodes it synchronises.

    Synapse's ``Lock`` style, for every node of an owner: :meth:`claim` a node
    (atomically, in the storage), keep it with :meth:`renewing` (``async with``: a
    renewal every ``renewal`` seconds while the block runs) and :meth:`release` it
    with its final state. ``locks`` are the cache's node locks (claims are taken under
    them, so they are ordered with the node's writes).
    """

    def __init__(
        self,
        storage: Any,
        clock: IReactorTime,
        locks: KeyedLock,
        duration: float,
        renewal: float,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.locks = locks
        #: seconds a claim is owned without renewal
        self.duration = duration
        #: seconds between renewals while a synchronisation runs
        self.renewal = renewal
        #: this instance's token in the nodes it synchronises (host, pid, random part)
        self.owner = new_owner()

    def holder(self, node: PubsubNode, include_dead: bool = False) -> Holder | None:
        """Who else holds a live lease on ``node`` (None: it may be claimed).

        An owner that is a process of this host that no longer runs holds nothing,
        unless ``include_dead``.
        """
        if node.sync_state is not SyncState.IN_PROGRESS or node.sync_owner in (None, self.owner):
            return None
        expires = node.sync_lease_expires
        if expires is None or expires <= self.clock.seconds():
            return None
        if not include_dead and owner_gone(node.sync_owner):
            return None
        return Holder(node.sync_owner, expires)

    def owned_error(self, node: PubsubNode, holder: Holder) -> SyncOwnedElsewhere:
        """The error telling that ``holder`` synchronises ``node``."""
        profile = profile_names(self.storage).get(node.profile_id, "?")
        return SyncOwnedElsewhere(NodeKey.of(profile, node.service, node.name).label, holder)

    async def claim(
        self, key: NodeKey, node: PubsubNode, states: list[SyncState | None] | None
    ) -> PubsubNode | None:
        """Own the node's synchronisation (IN_PROGRESS, emptied): None, or raise.

        A node this instance holds (its previous attempt expired) is claimed again: its
        lease renewed. The node as stored, when it is no longer in one of ``states``
        (synchronised meanwhile by another process): there is nothing to do.
        ``SyncOwnedElsewhere`` when another live owner holds it; ``NotFound`` when the
        node is gone. An owner of this host that no longer runs is taken over.
        """
        storage = self.storage
        take_from = holder = None
        for _ in range(CLAIM_TRIES):
            args = (node, self.owner, self.duration, self.clock.seconds(), take_from, True, states)
            # state first: a node being emptied is never answered from the cache
            if await self.locks.run(key, storage.claim_pubsub_node_sync, *args):
                return None
            current = await storage.get_pubsub_node(
                ProfileClient(key.profile), key.service_jid, key.node
            )
            if current is None:
                raise NotFound(f"{key.label} is gone")
            if states is not None and current.sync_state not in states:
                return current
            holder = self.holder(current, include_dead=True)
            if holder is not None and not owner_gone(holder.owner):
                break
            if holder is not None:
                log.warning("%s: taking it over from %s (gone)", key.label, holder.describe())
            take_from = None if holder is None else holder.owner  # None: freed meanwhile
        if holder is None:  # changing hands at every try
            holder = Holder(current.sync_owner or "unknown", current.sync_lease_expires)
        raise self.owned_error(current, holder)

    async def claim_and_reset(self, node: PubsubNode, dead: Holder | None) -> bool:
        """Take an abandoned node (from its ``dead`` owner) and clear it; False if taken."""
        claimed = await self.storage.claim_pubsub_node_sync(
            node,
            self.owner,
            self.duration,
            now=self.clock.seconds(),
            take_from=None if dead is None else dead.owner,
            delete_items=True,
        )
        if claimed:
            await self.storage.release_pubsub_node_sync(node, self.owner, None)
        return claimed

    @asynccontextmanager
    async def renewing(
        self, key: NodeKey, node: PubsubNode, lost: Callable[[], None]
    ) -> AsyncIterator[None]:
        """Renew the lease of a claimed node while the block runs; ``lost()`` is called
        when a renewal finds the node no longer this instance's."""
        heartbeat = LoopingCall(self.renew, key, node, lost)
        heartbeat.clock = self.clock
        heartbeat.start(self.renewal, now=False)
        try:
            yield
        finally:
            heartbeat.stop()

    async def renew(self, key: NodeKey, node: PubsubNode, lost: Callable[[], None]) -> None:
        """Heartbeat of a running synchronisation: extend its lease, or tell it is lost."""
        try:
            renewed = await self.storage.renew_pubsub_node_sync(
                node, self.owner, self.duration, self.clock.seconds()
            )
        except Exception as e:  # the next beat tries again
            log.warning("%s: can't renew the synchronisation lease: %s", key.label, e)
            return
        if not renewed:
            lost()

    def release(
        self, node: PubsubNode, state: SyncState | None, delete_items: bool = False
    ) -> defer.Deferred[bool]:
        """Give the node up with its final ``state``; False when it was no longer ours.

        Not under the node's lock: callers take it (or already hold it).
        """
        return self.storage.release_pubsub_node_sync(node, self.owner, state, delete_items)

    def stop(self) -> None:
        """This instance stopped: its token owns nothing any more."""
        unregister(self.owner)


__all__ = [
    "CLAIM_TRIES",
    "Holder",
    "SyncLease",
    "SyncLeaseLost",
    "SyncOwnedElsewhere",
    "new_owner",
    "owner_gone",
    "unregister",
]
