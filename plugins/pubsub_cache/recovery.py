"""Synchronisations interrupted and resumed.

A run that ended with nodes IN_PROGRESS (a crash) leaves them half-written: at start
they are reset (:meth:`Recovery.reset_interrupted`), unless another live process
holds them. A synchronisation stopped by the loss of the client's connection, and the
reset ones, are resumed at the profile's next connection (:meth:`Recovery.resume`).
"""

from __future__ import annotations

import logging
from typing import Any

from sat_storage.plugins.pubsub_cache import LOGGER, lease
from sat_storage.plugins.pubsub_cache.keys import NodeKey, key_of, profile_names
from sat_storage.plugins.pubsub_cache.lease import SyncLease, SyncOwnedElsewhere
from sat_storage.plugins.pubsub_cache.runner import SYNC_WANTED, Interruptions, SyncRunner
from sat_storage.plugins.pubsub_cache.sync import SyncManager, SyncsClosed
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid

from sat_storage.exceptions import NotFound
from sat_storage.models import SyncState

log = logging.getLogger(f"{LOGGER}.recovery")


class Recovery:
    """Resets what a previous run left half-synchronised; resumes what was interrupted."""

    def __init__(
        self,
        storage: Any,
        sync_lease: SyncLease,
        syncs: SyncManager,
        runner: SyncRunner,
        interruptions: Interruptions,
    ) -> None:
        self.storage = storage
        self.lease = sync_lease
        self.syncs = syncs
        self.runner = runner
        self.interruptions = interruptions

    async def reset_interrupted(self) -> None:
        """Nodes left IN_PROGRESS by a run that ended (a crash): items removed, state None.

        Only nodes nobody holds: no owner, an expired lease, or an owner that is a
        process of this host that no longer runs. A live lease of another process
        (or cache instance) is left alone. The nodes reset are synchronised again when
        their profile connects (:meth:`resume`), or on next request.
        """
        nodes = await self.storage.get_pubsub_nodes(sync_states=[SyncState.IN_PROGRESS])
        names = profile_names(self.storage)
        for node in nodes:
            key = key_of(node, names)
            holder = self.lease.holder(node, include_dead=True)
            if holder is not None and not lease.owner_gone(holder.owner):
                log.info("%s is being synchronised by %s: left alone", key.label, holder.describe())
                continue
            try:
                claimed = await self.lease.claim_and_reset(node, holder)
            except NotFound:
                continue
            if claimed:
                log.warning(
                    "%s was left half-synchronised by %s: resetting it",
                    key.label,
                    "an interrupted run" if holder is None else f"{holder.describe()} (gone)",
                )
                self.interruptions.add(key)

    async def resume(self, client: Any) -> None:
        """Resume the interrupted synchronisations of ``client``'s profile that are
        still wanted (see ``PubsubCache.profile_connected``)."""
        for service, name in self.interruptions.pop(client.profile):
            label = NodeKey(client.profile, service, name).label
            try:
                node = await self.storage.get_pubsub_node(client, jid.JID(service), name)
            except Exception:
                log.exception("%s: can't resume its synchronisation", label)
                continue
            if node is None or node.sync_state not in SYNC_WANTED:
                state = "gone" if node is None else node.sync_state
                log.info("%s: synchronisation not resumed (%s meanwhile)", label, state)
                continue
            holder = self.lease.holder(node)
            if holder is not None:
                log.info("%s: synchronisation left to %s", label, holder.describe())
                continue
            log.info("%s: synchronisation resumed", label)
            d = self.runner.start(client, node, SYNC_WANTED)
            d.addErrback(self._resync_failed, label)

    @staticmethod
    def _resync_failed(failure: Failure, label: str) -> None:
        if failure.check(SyncOwnedElsewhere, SyncsClosed):
            log.info("resync: %s", failure.value)
        else:
            log.error("resync of %s: %s", label, failure)

    def interrupt_profile(self, client: Any) -> defer.Deferred[Any]:
        """Stop the synchronisations of a profile that lost its connection; they are
        resumed at its next connection."""
        keys = [NodeKey(*key) for key in self.syncs.keys() if key[0] == client.profile]
        for key in keys:
            self.interruptions.add(key)
        stopping = [self.syncs.stop(key) for key in keys]
        return defer.gatherResults([d for d in stopping if d is not None], consumeErrors=True)


__all__ = ["Recovery"]
