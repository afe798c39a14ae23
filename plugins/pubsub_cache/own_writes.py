"""The host's own changes of a node: read your writes.

When a profile of this host publishes to, retracts from, purges or deletes a node,
the service answers the request first; the cache changes when the notification
arrives, a moment later. Until then the cache would answer the node as it was, while
the service (and the user who just wrote) already see the change. So a node this
host is writing to is answered by the network from the moment the request is sent
until the notifications of the change have been handled (:meth:`OwnWrites.seen`),
or ``wait`` seconds have passed (a notification that never comes: the cache answers
again). A write to a node no profile's cache follows (no notification will come)
holds nothing once answered: a synchronisation reads it from the service. A
retraction asked without notification (Prosody then sends none) is applied to the
cache once the service has accepted it.

The read path asks before its database read (:mod:`.read_path`): a hold released
while a read runs says nothing of the page that read got.

Writes are told by the ``XEP-0060_writing`` and ``XEP-0060_written`` triggers of
:mod:`~sat_storage.plugins.plugin_xep_0060` (a :class:`PubsubWrite`).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sat_storage.plugins.pubsub_writes import PubsubWrite
from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import jid

#: seconds a write keeps its node answered by the network, at most
OWN_WRITE_WAIT = 30.0
#: what a purge or deletion notification clears, as an "id"
PURGED = "\0purge"
DELETED = "\0delete"

Where = tuple[str, str]  # (service, node)
#: ``retracted(service, node, ids)``: remove items from every profile's cache
Retracted = Callable[[jid.JID, str, list[str]], Awaitable[None]]
#: ``followed(service, node)``: whether a profile's cache follows the node's events
Followed = Callable[[jid.JID, str], Awaitable[bool]]
MARK = "pubsub_cache"


@dataclass
class _Pending:
    started: float
    ids: set[str]  # what the notifications must still show
    unnamed: bool  # items sent without id: the service names them in its answer
    answered: bool = False
    seen: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.answered and not self.ids


class OwnWrites:
    """Nodes this host's profiles are changing, until the change is in the cache."""

    def __init__(
        self,
        clock: IReactorTime,
        retracted: Retracted,
        followed: Followed,
        wait: float = OWN_WRITE_WAIT,
    ) -> None:
        self.clock = clock
        self.retracted = retracted
        self.followed = followed
        self.wait = wait
        self._pending: dict[Where, dict[int, _Pending]] = {}
        self._tokens = itertools.count()

    # --- the XEP-0060 write triggers ---

    def on_writing(self, client: Any, service: jid.JID | None, node: str, write: Any) -> bool:
        """``XEP-0060_writing``: the node is answered by the network from now on."""
        if not isinstance(write, PubsubWrite):
            return True
        shown: list[str | None] = {"purge": [PURGED], "delete": [DELETED]}.get(
            write.kind, list(write.ids)
        )
        if write.kind == "retract" and not write.notify:
            shown = []  # no notification to wait for: applied once answered
        write.marks[MARK] = self.writing(_where(client, service, node), shown)
        return True

    async def on_written(self, client: Any, service: jid.JID | None, node: str, write: Any) -> bool:
        """``XEP-0060_written``: the service answered (a retraction it was asked not
        to notify is applied to the cache now)."""
        token = write.marks.get(MARK) if isinstance(write, PubsubWrite) else None
        if token is None:
            return True
        where = _where(client, service, node)
        ids = [i for i in write.ids if i]
        if not await self.followed(jid.JID(where[0]), node):
            # no cache follows the node: no notification to wait for, and a
            # synchronisation starting now reads the change from the service
            self.forget(where, token)
            return True
        if write.kind == "retract" and not write.notify and not write.failed and ids:
            await self.retracted(jid.JID(where[0]), node, ids)
        self.answered(where, token, write.result)
        return True

    def seen_event(self, kind: str, event: Any) -> None:
        """A notification of ``kind`` (items, purge, delete) was handled."""
        where = (event.sender.full(), event.nodeIdentifier)
        if kind == "items":
            ids = [e.getAttribute("id") for e in event.items if e.getAttribute("id")]
        else:
            ids = [PURGED if kind == "purge" else DELETED]
        self.seen(where, ids)

    # --- pending writes ---

    def writing(self, where: Where, ids: list[str | None]) -> int:
        """A write of ``ids`` (None: an item without id) is sent; its token."""
        token = next(self._tokens)
        named = {i for i in ids if i is not None}
        pending = _Pending(self.clock.seconds(), named, unnamed=None in ids)
        self._pending.setdefault(where, {})[token] = pending
        return token

    def answered(self, where: Where, token: int, ids: list[str] | None = None) -> None:
        """The service accepted the write (``ids``: the items it named); a write that
        failed is kept until ``wait`` (some items may have been published)."""
        pending = self._pending.get(where, {}).get(token)
        if pending is None:
            return
        if ids is not None and pending.unnamed:
            pending.ids |= set(ids) - pending.seen
        pending.answered = True
        self._drop_done(where)

    def forget(self, where: Where, token: int) -> None:
        """The write holds the node no more."""
        writes = self._pending.get(where, {})
        writes.pop(token, None)
        if not writes:
            self._pending.pop(where, None)

    def seen(self, where: Where, ids: list[str]) -> None:
        """A notification of ``ids`` (or :data:`PURGED`, :data:`DELETED`) was handled."""
        writes = self._pending.get(where)
        if not writes:
            return
        for pending in writes.values():
            pending.ids -= set(ids)
            pending.seen.update(ids)
        self._drop_done(where)

    def __contains__(self, where: object) -> bool:
        """True while the host's own change of the node is not in the cache yet."""
        writes = self._pending.get(where)  # type: ignore[arg-type]
        if not writes:
            return False
        now = self.clock.seconds()
        for token in [t for t, p in writes.items() if now - p.started >= self.wait]:
            del writes[token]
        if not writes:
            del self._pending[where]  # type: ignore[arg-type]
        return bool(writes)

    def _drop_done(self, where: Where) -> None:
        writes = self._pending.get(where, {})
        for token in [t for t, p in writes.items() if p.done]:
            del writes[token]
        if not writes:
            self._pending.pop(where, None)


def _where(client: Any, service: jid.JID | None, node: str) -> Where:
    return (service or client.jid.userhostJID()).full(), node


__all__ = ["DELETED", "OWN_WRITE_WAIT", "OwnWrites", "PURGED"]
