"""Cached pubsub nodes and their subscriptions (Libervia 0.9's storage API)."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session, selectinload
from twisted.internet import defer
from twisted.words.protocols.jabber import jid

from sat_storage import engines
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubNode, PubsubSub, SubscriptionState, SyncState
from sat_storage.storage.base import StorageBase, as_deferred, check_type
from sat_storage.storage.checks import check_node, check_sync_states, check_text
from sat_storage.storage.page_cache import dropping_pages
from sat_storage.storage.pubsub_filters import Filters, in_filters, matches_nothing, node_filters

NODE_SETTINGS = ("analyser", "type_", "subtype", "subscribed")

__all__ = ["NODE_SETTINGS", "PubsubNodesStore"]


def _check_node_settings(settings: dict[str, Any]) -> None:
    for key in ("analyser", "type_", "subtype"):
        check_text(key, settings.get(key), optional=True)
    check_type("subscribed", settings.get("subscribed", False), bool)


def _node_values(settings: dict[str, Any]) -> dict[str, Any]:
    """Column values of ``set_pubsub_node`` settings (``type_`` is column ``type``)."""
    return {
        "analyser": settings.get("analyser"),
        "type": settings.get("type_"),
        "subtype": settings.get("subtype"),
        "subscribed": settings.get("subscribed", False),
    }


def select_node(
    profile_id: int,
    service: str,
    name: str,
    with_items: bool = False,
    with_subscriptions: bool = False,
) -> Select[tuple[PubsubNode]]:
    """The node ``(profile_id, service, name)``, with the relationships asked for."""
    stmt = select(PubsubNode).where(
        PubsubNode.profile_id == profile_id,
        PubsubNode.service == service,
        PubsubNode.name == name,
    )
    if with_items:
        stmt = stmt.options(selectinload(PubsubNode.items))
    if with_subscriptions:
        stmt = stmt.options(selectinload(PubsubNode.subscriptions))
    return stmt


class PubsubNodesStore(StorageBase):
    """Cached pubsub nodes (look-up, creation, settings, deletion) and subscriptions."""

    def node_identity(self, client: Any, service: object, name: object) -> tuple[int, str]:
        """Checked ``(profile id, service text)`` of a node of ``client``'s profile."""
        profile_id = self.client_profile_id(client)
        check_type("service", service, jid.JID)
        check_text("name", name)
        assert isinstance(service, jid.JID)
        return profile_id, service.full()

    def get_pubsub_node_txn(
        self,
        session: Session,
        profile_id: int,
        service: str,
        name: str,
        with_items: bool = False,
        with_subscriptions: bool = False,
        create_settings: dict[str, Any] | None = None,
    ) -> PubsubNode | None:
        """The node, or None; created first (unless it exists) when ``create_settings``."""
        if create_settings is not None:
            # ON CONFLICT DO NOTHING: a node created meanwhile by another caller is kept
            session.execute(
                engines.insert_ignore(
                    self.dialect, PubsubNode.__table__, ("profile_id", "service", "name")
                ).values(
                    profile_id=profile_id,
                    service=service,
                    name=name,
                    sync_state_updated=time.time(),
                    **_node_values(create_settings),
                )
            )
        stmt = select_node(profile_id, service, name, with_items, with_subscriptions)
        return session.scalars(stmt).one_or_none()

    @as_deferred
    def get_pubsub_node(
        self,
        client: Any,
        service: jid.JID,
        name: str,
        with_items: bool = False,
        with_subscriptions: bool = False,
        create: bool = False,
        create_kwargs: dict[str, Any] | None = None,
    ) -> defer.Deferred[PubsubNode | None]:
        """The cached node ``name`` of ``service`` for ``client``'s profile, or None.

        ``with_items``/``with_subscriptions`` load those relationships. ``create``:
        create the node when missing, with ``create_kwargs`` (the settings of
        :meth:`set_pubsub_node`); a node created concurrently by another caller is
        returned as it is.
        """
        profile_id, service_text = self.node_identity(client, service, name)
        check_type("with_items", with_items, bool)
        check_type("with_subscriptions", with_subscriptions, bool)
        check_type("create", create, bool)
        if create_kwargs is not None:
            check_type("create_kwargs", create_kwargs, dict)
            unknown = sorted(set(create_kwargs) - set(NODE_SETTINGS))
            if unknown:
                raise ValueError(
                    f"unknown create_kwargs key(s) {unknown}: allowed are {list(NODE_SETTINGS)}"
                )
            _check_node_settings(create_kwargs)
        create_settings = (create_kwargs or {}) if create else None
        return self.db.run(
            self.get_pubsub_node_txn,
            profile_id,
            service_text,
            name,
            with_items,
            with_subscriptions,
            create_settings,
        )

    def set_pubsub_node_txn(
        self, session: Session, profile_id: int, service: str, name: str, settings: dict[str, Any]
    ) -> PubsubNode:
        """Create the node or update its settings; the stored node."""
        values = _node_values(settings)
        stmt = engines.upsert(
            self.dialect,
            PubsubNode.__table__,
            ("profile_id", "service", "name"),
            list(values),
        ).values(
            profile_id=profile_id,
            service=service,
            name=name,
            sync_state_updated=time.time(),
            **values,
        )
        session.execute(stmt)
        return session.scalars(select_node(profile_id, service, name)).one()

    @staticmethod
    def update_pubsub_node_extra_txn(
        session: Session, node_id: int, values: dict[str, Any]
    ) -> dict[str, Any]:
        node = session.get(PubsubNode, node_id)
        if node is None:
            raise NotFound(f"pubsub node #{node_id} does not exist (any more)")
        extra = dict(node.extra or {})
        for key, value in values.items():
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
        node.extra = extra or None
        return extra

    @as_deferred
    async def update_pubsub_node_extra(
        self, node: PubsubNode, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge ``values`` into the node's ``extra`` (a None value removes its key),
        also on ``node``; returns the new ``extra``. ``NotFound`` when the node is gone.

        What the cache knows of a node besides its items lives there (when it was
        last known in step with its service, how the service orders items...).
        """
        node = check_node(node)
        check_type("values", values, dict)
        if not all(isinstance(key, str) for key in values):
            raise ValueError(f"values keys must be strings, got {list(values)!r}")
        json.dumps(values, allow_nan=False)  # ValueError/TypeError before the database
        extra = await self.db.run(self.update_pubsub_node_extra_txn, node.id, values)
        node.extra = extra or None
        return extra

    @as_deferred
    def set_pubsub_node(
        self,
        client: Any,
        service: jid.JID,
        name: str,
        analyser: str | None = None,
        type_: str | None = None,
        subtype: str | None = None,
        subscribed: bool = False,
    ) -> defer.Deferred[PubsubNode]:
        """Create (or update the settings of) a cached node; the stored node.

        An existing node keeps its id, items and sync state; its analyser, type,
        subtype and subscribed flag are replaced.
        """
        profile_id, service_text = self.node_identity(client, service, name)
        settings = {"analyser": analyser, "type_": type_, "subtype": subtype}
        settings["subscribed"] = subscribed
        _check_node_settings(settings)
        return self.db.run(self.set_pubsub_node_txn, profile_id, service_text, name, settings)

    @staticmethod
    def get_pubsub_nodes_txn(session: Session, filters: Filters) -> list[PubsubNode]:
        found: dict[int, PubsubNode] = {}
        for clauses in in_filters(filters):
            for node in session.scalars(select(PubsubNode).where(*clauses)):
                found[node.id] = node
        return [found[node_id] for node_id in sorted(found)]

    @as_deferred
    def get_pubsub_nodes(
        self,
        profiles: list[str] | None = None,
        services: list[jid.JID] | None = None,
        names: list[str] | None = None,
        types: list[str | None] | None = None,
        subtypes: list[str | None] | None = None,
        sync_states: list[SyncState | None] | None = None,
    ) -> defer.Deferred[list[PubsubNode]]:
        """The cached nodes matching every filter, oldest first (items not loaded).

        Filters as in :meth:`purge_pubsub_items` (None: no filter; a None in
        ``types``, ``subtypes`` or ``sync_states`` matches nodes without one).
        """
        states = None if sync_states is None else check_sync_states(sync_states, "sync_states")
        filters = node_filters(self.get_profile_id, profiles, services, names, types, subtypes)
        filters.append((PubsubNode.sync_state, states))
        if matches_nothing(filters):
            return defer.succeed([])
        return self.db.run(self.get_pubsub_nodes_txn, filters)

    @staticmethod
    def delete_pubsub_node_txn(session: Session, filters: Filters) -> int:
        deleted = 0
        for clauses in in_filters(filters):
            deleted += session.execute(delete(PubsubNode).where(*clauses)).rowcount
        return deleted

    @as_deferred
    def delete_pubsub_node(
        self,
        profiles: list[str] | None,
        services: list[jid.JID] | None,
        names: list[str] | None,
    ) -> defer.Deferred[int]:
        """Delete the nodes (with their items) matching every filter; their number.

        Each filter is a list (an empty list matches nothing) or None (no filter):
        ``delete_pubsub_node(None, None, None)`` deletes every cached node.
        """
        filters = node_filters(self.get_profile_id, profiles, services, names)
        if matches_nothing(filters):
            return defer.succeed(0)
        return self.db.run(self.delete_pubsub_node_txn, filters).addBoth(dropping_pages(self))

    # --- subscriptions ---

    def set_pubsub_subscription_txn(
        self, session: Session, node_id: int, subscriber: str, state: SubscriptionState | None
    ) -> None:
        session.execute(
            engines.upsert(
                self.dialect, PubsubSub.__table__, ("node_id", "subscriber"), ["state"]
            ).values(node_id=node_id, subscriber=subscriber, state=state)
        )

    @as_deferred
    def set_pubsub_subscription(
        self, node: PubsubNode, subscriber: jid.JID, state: SubscriptionState | None
    ) -> defer.Deferred[None]:
        """Record (or change) ``subscriber``'s subscription to the cached ``node``.

        Loaded with ``get_pubsub_node(..., with_subscriptions=True)``.
        """
        node = check_node(node)
        check_type("subscriber", subscriber, jid.JID)
        if state is not None:
            check_type("state", state, SubscriptionState)
        return self.db.run(self.set_pubsub_subscription_txn, node.id, subscriber.full(), state)

    @staticmethod
    def delete_pubsub_subscription_txn(session: Session, node_id: int, subscriber: str) -> int:
        stmt = delete(PubsubSub).where(
            PubsubSub.node_id == node_id, PubsubSub.subscriber == subscriber
        )
        return session.execute(stmt).rowcount

    @as_deferred
    def delete_pubsub_subscription(
        self, node: PubsubNode, subscriber: jid.JID
    ) -> defer.Deferred[int]:
        """Forget ``subscriber``'s subscription to ``node``; 1 if there was one, else 0."""
        node = check_node(node)
        check_type("subscriber", subscriber, jid.JID)
        return self.db.run(self.delete_pubsub_subscription_txn, node.id, subscriber.full())
