"""Sync state of cached nodes and synchronisation leases (one synchroniser per node).

A lease is held in the node's row (``sync_owner``, ``sync_lease_expires``), so it
works across processes sharing the database: claimed by an atomic compare-and-set,
renewed while synchronising (with each page written), released with the final state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from twisted.words.xish import domish

from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubItem, PubsubNode, SyncState
from sat_storage.storage.base import as_deferred, check_type
from sat_storage.storage.checks import check_node, check_number, check_sync_states, check_text
from sat_storage.storage.page_cache import dropping_pages
from sat_storage.storage.pubsub_filters import in_filters
from sat_storage.storage.pubsub_items import PubsubItemsStore

__all__ = ["PubsubLeasesStore"]


def _check_owner(name: str, owner: object) -> None:
    check_text(name, owner)
    if not owner:
        raise ValueError(f"{name} must not be empty")


def _lease_now(owner: object, lease_seconds: object, now: object) -> float:
    """Check a lease's owner and duration; the time of the call (``now`` or the clock)."""
    _check_owner("owner", owner)
    check_number("lease_seconds", lease_seconds)
    check_number("now", now, optional=True)
    if lease_seconds <= 0:  # type: ignore[operator]
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
    return time.time() if now is None else float(now)  # type: ignore[arg-type]


def _state_values(
    state: SyncState | None, updated: float, owner: str | None = None, expires: float | None = None
) -> dict[str, Any]:
    """Column values of a sync state change (no owner: the lease is cleared)."""
    return {
        "sync_state": state,
        "sync_state_updated": updated,
        "sync_owner": owner,
        "sync_lease_expires": expires,
    }


def _set_state(
    node: PubsubNode,
    state: SyncState | None,
    updated: float,
    owner: str | None = None,
    expires: float | None = None,
) -> None:
    """Reflect a sync state change on the caller's ``node`` object."""
    for name, value in _state_values(state, updated, owner, expires).items():
        setattr(node, name, value)


class PubsubLeasesStore(PubsubItemsStore):
    """Sync state of cached nodes and the leases of their synchronisers."""

    @staticmethod
    def update_pubsub_node_sync_state_txn(
        session: Session, node_id: int, state: SyncState, updated: float
    ) -> None:
        result = session.execute(
            update(PubsubNode).where(PubsubNode.id == node_id).values(_state_values(state, updated))
        )
        if result.rowcount == 0:
            raise NotFound(f"pubsub node #{node_id} does not exist (any more)")

    @as_deferred
    async def update_pubsub_node_sync_state(
        self, node: PubsubNode, state: SyncState | None
    ) -> None:
        """Set the node's sync state (and ``sync_state_updated`` to now), also on ``node``.

        ``None`` means never synchronised (as a new node). ``NotFound`` when the node
        was deleted meanwhile. Whoever held the node's synchronisation lease loses it
        (see :meth:`claim_pubsub_node_sync`): the state is set by force.
        """
        node = check_node(node)
        if state is not None:
            check_type("state", state, SyncState)
        updated = time.time()
        d = self.db.run(self.update_pubsub_node_sync_state_txn, node.id, state, updated)
        await d.addBoth(dropping_pages(self, [node.id]))
        _set_state(node, state, updated)

    @staticmethod
    def claim_pubsub_node_sync_txn(
        session: Session,
        node_id: int,
        owner: str,
        expires: float,
        now: float,
        take_from: str | None,
        delete_items: bool,
        states: list[SyncState | None] | None = None,
    ) -> bool:
        lease = PubsubNode.sync_lease_expires
        claimable = [
            PubsubNode.sync_state.is_distinct_from(SyncState.IN_PROGRESS),
            PubsubNode.sync_owner.is_(None),
            lease.is_(None),
            lease <= now,
            PubsubNode.sync_owner == owner,
        ]
        if take_from is not None:
            claimable.append(PubsubNode.sync_owner == take_from)
        values = _state_values(SyncState.IN_PROGRESS, time.time(), owner, expires)
        stmt = update(PubsubNode).where(PubsubNode.id == node_id, sa.or_(*claimable))
        if states is not None:
            (in_states,) = next(in_filters([(PubsubNode.sync_state, states)]))
            stmt = stmt.where(in_states)
        if session.execute(stmt.values(values)).rowcount == 0:
            if session.get(PubsubNode, node_id) is None:
                raise NotFound(f"pubsub node #{node_id} does not exist (any more)")
            return False
        if delete_items:
            session.execute(delete(PubsubItem).where(PubsubItem.node_id == node_id))
        return True

    @as_deferred
    async def claim_pubsub_node_sync(
        self,
        node: PubsubNode,
        owner: str,
        lease_seconds: float,
        now: float | None = None,
        take_from: str | None = None,
        delete_items: bool = False,
        states: Sequence[SyncState | None] | None = None,
    ) -> bool:
        """Become the one synchroniser of ``node``: True if claimed, False if held.

        An atomic compare-and-set: the node becomes IN_PROGRESS, owned by ``owner``
        (a token unique to the caller) until ``now + lease_seconds`` (``now``: epoch
        seconds, default the current time), unless another owner holds a lease on it
        that has not expired at ``now``. ``owner`` may claim again what it holds;
        ``take_from``: also take the node from that owner (one known to be dead).
        ``states``: claim only a node in one of these sync states (e.g. not one
        another process has just COMPLETED; None: whatever its state).
        ``delete_items``: empty the node in the same transaction. ``NotFound`` when
        the node does not exist. On success ``node`` is updated too.
        """
        node = check_node(node)
        now = _lease_now(owner, lease_seconds, now)
        if take_from is not None:
            _check_owner("take_from", take_from)
        check_type("delete_items", delete_items, bool)
        checked_states = None if states is None else check_sync_states(states)
        if checked_states == []:
            return False
        expires = now + lease_seconds
        claimed = await self.db.run(
            self.claim_pubsub_node_sync_txn,
            node.id,
            owner,
            expires,
            now,
            take_from,
            delete_items,
            checked_states,
        ).addBoth(dropping_pages(self, [node.id]))
        if claimed:
            _set_state(node, SyncState.IN_PROGRESS, time.time(), owner, expires)
        return claimed

    @staticmethod
    def renew_pubsub_node_sync_txn(
        session: Session, node_id: int, owner: str, expires: float
    ) -> bool:
        stmt = update(PubsubNode).where(
            PubsubNode.id == node_id,
            PubsubNode.sync_owner == owner,
            PubsubNode.sync_state == SyncState.IN_PROGRESS,
        )
        return bool(session.execute(stmt.values(sync_lease_expires=expires)).rowcount)

    @as_deferred
    async def renew_pubsub_node_sync(
        self, node: PubsubNode, owner: str, lease_seconds: float, now: float | None = None
    ) -> bool:
        """Extend ``owner``'s lease on ``node`` to ``now + lease_seconds``.

        False when ``owner`` no longer holds the node (taken over after its lease
        expired, state set by force, node deleted): it must stop synchronising.
        """
        node = check_node(node)
        now = _lease_now(owner, lease_seconds, now)
        expires = now + lease_seconds
        renewed = await self.db.run(self.renew_pubsub_node_sync_txn, node.id, owner, expires)
        if renewed:
            node.sync_lease_expires = expires
        return renewed

    @staticmethod
    def release_pubsub_node_sync_txn(
        session: Session,
        node_id: int,
        owner: str,
        state: SyncState | None,
        updated: float,
        delete_items: bool,
    ) -> bool:
        stmt = update(PubsubNode).where(PubsubNode.id == node_id, PubsubNode.sync_owner == owner)
        if session.execute(stmt.values(_state_values(state, updated))).rowcount == 0:
            return False
        if delete_items:
            session.execute(delete(PubsubItem).where(PubsubItem.node_id == node_id))
        return True

    @as_deferred
    async def release_pubsub_node_sync(
        self,
        node: PubsubNode,
        owner: str,
        state: SyncState | None,
        delete_items: bool = False,
    ) -> bool:
        """End ``owner``'s synchronisation of ``node`` with ``state`` (lease cleared).

        Only if ``owner`` still holds the node: False (nothing changed) otherwise.
        ``delete_items``: empty the node in the same transaction (a failed sync).
        """
        node = check_node(node)
        _check_owner("owner", owner)
        if state is not None:
            check_type("state", state, SyncState)
        check_type("delete_items", delete_items, bool)
        updated = time.time()
        released = await self.db.run(
            self.release_pubsub_node_sync_txn, node.id, owner, state, updated, delete_items
        ).addBoth(dropping_pages(self, [node.id]))
        if released:
            _set_state(node, state, updated)
        return released

    def cache_pubsub_sync_page_txn(
        self,
        session: Session,
        node_id: int,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None],
        owner: str,
        expires: float,
    ) -> bool:
        if not self.renew_pubsub_node_sync_txn(session, node_id, owner, expires):
            return False
        if items:
            self.cache_pubsub_items_txn(session, node_id, items, parsed_items)
        return True

    @as_deferred
    async def cache_pubsub_sync_page(
        self,
        client: Any,
        node: PubsubNode,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None] | None,
        owner: str,
        lease_seconds: float,
        now: float | None = None,
    ) -> bool:
        """One page of ``owner``'s synchronisation: lease renewed and items stored.

        In one transaction, as :meth:`renew_pubsub_node_sync` then
        :meth:`cache_pubsub_items`: nothing is written (False) when ``owner`` no
        longer holds the node.
        """
        parsed_items = self.checked_items(client, node, items, parsed_items)
        now = _lease_now(owner, lease_seconds, now)
        expires = now + lease_seconds
        written = await self.db.run(
            self.cache_pubsub_sync_page_txn, node.id, items, parsed_items, owner, expires
        ).addBoth(dropping_pages(self, [node.id]))
        if written:
            node.sync_lease_expires = expires
        return written
