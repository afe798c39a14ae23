"""Pubsub nodes, subscriptions and cached items (Libervia 0.9's storage API).

Items are cached with one bulk upsert per call (Core, not the ORM unit of work) and
read back with keyset paging on the ``pubsub_items(node_id, id)`` and
``(node_id, updated, id)`` indexes (XEP-0059 semantics, see :meth:`get_items`).
Every argument is checked in the caller's thread before the database is touched.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select, case, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from twisted.internet import defer
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage import engines
from sat_storage.exceptions import NotFound
from sat_storage.fts import item_text
from sat_storage.models import (
    PubsubItem,
    PubsubNode,
    PubsubSub,
    SubscriptionState,
    SyncState,
    utcnow,
)
from sat_storage.storage.base import StorageBase, check_type
from sat_storage.storage.checks import batched
from sat_storage.xml_tools import to_xml

MAX_ITEMS_BATCH = 10_000  # items per cache_pubsub_items call (and item_ids per get_items)
ORDER_CREATION = "creation"
ORDER_MODIFICATION = "modification"
# order_by value -> PubsubItem attributes of its keyset (ending with the unique id)
ORDER_KEYS = {ORDER_CREATION: ("id",), ORDER_MODIFICATION: ("updated", "id")}
DEFAULT_ORDER = (ORDER_MODIFICATION,)  # Libervia's default
NODE_SETTINGS = ("analyser", "type_", "subtype", "subscribed")
ITEM_KEY = ("node_id", "name")
ITEM_KEPT_ON_UPDATE = ("node_id", "name", "created")  # the id is never written

__all__ = [
    "MAX_ITEMS_BATCH",
    "ORDER_CREATION",
    "ORDER_MODIFICATION",
    "ItemFilters",
    "PubsubStore",
    "build_item_rows",
    "order_keys",
]


# --- helpers --------------------------------------------------------------------


Filters = list[tuple[Any, list[Any] | None]]  # (column, values or None = no filter)


def _in_filters(filters: Filters) -> Iterator[list[ColumnElement[bool]]]:
    """WHERE clauses for ``column IN values`` filters, chunked.

    Yields one list of clauses per combination of chunks: together they select
    what the unchunked filters select, and (values being made unique) no row is
    selected by two of them. ``None`` filters are left out; a ``None`` inside a list
    of values matches SQL NULL.
    """
    active = [
        (column, list(dict.fromkeys(values))) for column, values in filters if values is not None
    ]
    # an empty list still gives one (empty) chunk: its clause matches nothing
    per_filter = [
        [(column, chunk) for chunk in list(batched(values)) or [values]]
        for column, values in active
    ]
    for combination in itertools.product(*per_filter):
        clauses = []
        for column, chunk in combination:
            present = [value for value in chunk if value is not None]
            clause = column.in_(present)
            if len(present) != len(chunk):
                clause = sa.or_(clause, column.is_(None))
            clauses.append(clause)
        yield clauses


@dataclass(frozen=True)
class ItemFilters:
    """Checked filters of cached items: node filters, then dates (purge and count)."""

    nodes: Filters  # (PubsubNode column, values or None)
    created_before: datetime | None = None
    updated_before: datetime | None = None

    @property
    def matches_nothing(self) -> bool:
        """True when a node filter is an empty list."""
        return any(values == [] for _, values in self.nodes)

    def clauses(self) -> Iterator[list[ColumnElement[bool]]]:
        """WHERE clauses on ``pubsub_items``, one list per chunk of the node filters.

        The lists select disjoint sets of items which, together, are the matching ones.
        """
        dates = []
        if self.created_before is not None:
            dates.append(PubsubItem.created < self.created_before)
        if self.updated_before is not None:
            dates.append(PubsubItem.updated < self.updated_before)
        if all(values is None for _, values in self.nodes):
            yield dates
            return
        for node_clauses in _in_filters(self.nodes):
            nodes = select(PubsubNode.id).where(*node_clauses)
            yield [PubsubItem.node_id.in_(nodes), *dates]


def _none_first(values: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    """Sort key of a tuple of optional strings: None before any string."""
    return tuple((value is not None, value or "") for value in values)


def _byte_length(dialect: str, column: Any) -> ColumnElement[int]:
    """Size in bytes of a text column (SQLite before 3.43 has no ``octet_length``)."""
    if dialect == "postgresql":
        return func.octet_length(column)
    return func.length(sa.cast(column, sa.LargeBinary))


def _str_list(
    name: str, values: object, allow_none: bool = False, allow_empty: bool = True
) -> list[Any] | None:
    """``values`` (a list, tuple or set of str, or None) as a list; TypeError naming it."""
    if values is None:
        return None
    check_type(name, values, list, tuple, set, frozenset)
    result = list(values)  # type: ignore[call-overload]
    for index, value in enumerate(result):
        if value is None and allow_none:
            continue
        if not isinstance(value, str):
            raise TypeError(f"{name}[{index}] must be str, got {type(value).__name__}: {value!r}")
        if not allow_empty and not value:
            raise ValueError(f"{name}[{index}] must not be empty")
    return result


def _optional_str(name: str, value: object) -> None:
    if value is not None:
        check_type(name, value, str)


def _count(name: str, value: object) -> None:
    """Check an optional non-negative integer argument."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int or None, got {type(value).__name__}: {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_node(node: object) -> PubsubNode:
    check_type("node", node, PubsubNode)
    assert isinstance(node, PubsubNode)
    if not isinstance(node.id, int):
        raise ValueError(f"node {node.name!r} was never stored (it has no id)")
    return node


def _check_owner(name: str, owner: object) -> None:
    check_type(name, owner, str)
    if not owner:
        raise ValueError(f"{name} must not be empty")


def _sync_states(states: object, name: str = "states") -> list[SyncState | None]:
    """``states`` (a collection of SyncState or None) as a list; TypeError naming it."""
    check_type(name, states, list, tuple, set, frozenset)
    result = list(states)  # type: ignore[call-overload]
    for index, state in enumerate(result):
        if state is not None:
            check_type(f"{name}[{index}]", state, SyncState)
    return result


def _lease_now(owner: object, lease_seconds: object, now: object) -> float:
    """Check a lease's owner and duration; the time of the call (``now`` or the clock)."""
    _check_owner("owner", owner)
    for name, value in (("lease_seconds", lease_seconds), ("now", now)):
        if value is None and name == "now":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
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


def order_keys(order_by: Sequence[str] | None) -> tuple[str, ...]:
    """Keyset (PubsubItem attribute names) of an ``order_by`` list; ValueError if unknown.

    The first kinds lead; ``id`` (unique) always ends the key, so the order is total.
    """
    if order_by is None:
        order_by = DEFAULT_ORDER
    check_type("order_by", order_by, list, tuple)
    keys: list[str] = []
    for kind in order_by or DEFAULT_ORDER:
        if kind not in ORDER_KEYS:
            raise ValueError(
                f"unknown order_by value {kind!r}: use {ORDER_CREATION!r} or {ORDER_MODIFICATION!r}"
            )
        keys.extend(k for k in ORDER_KEYS[kind] if k not in keys)
        if "id" in keys:  # unique: later kinds cannot change the order
            break
    return tuple(keys)


def build_item_rows(
    node_id: int,
    items: Sequence[domish.Element],
    parsed_items: Sequence[dict[str, Any] | None],
    now: Any,
) -> list[dict[str, Any]]:
    """Rows of ``pubsub_items`` to upsert for checked ``items`` (XML and JSON as text).

    ``now`` is the database form of the time stamp of the call. When an id comes
    twice, the row takes the place of the first and the content of the last.
    ``ValueError`` names the index of an item that cannot be serialised.
    Extra keys added here are written, and updated on conflict, by
    :meth:`PubsubStore.cache_pubsub_items_txn`.
    """
    rows: dict[str, dict[str, Any]] = {}
    dumps = json.JSONEncoder(allow_nan=False, ensure_ascii=False).encode
    for index, (item, parsed) in enumerate(zip(items, parsed_items, strict=True)):
        try:
            data = to_xml(item)
        except (TypeError, AttributeError) as e:
            raise ValueError(f"items[{index}] cannot be serialised as XML: {e}") from None
        if parsed is not None:
            try:
                parsed = dumps(parsed)
            except (TypeError, ValueError) as e:
                raise ValueError(f"parsed_items[{index}] is not JSON-serialisable: {e}") from None
        name = item["id"]
        rows[name] = {
            "node_id": node_id,
            "name": name,
            "data": data,
            "parsed": parsed,
            "fts_text": item_text(item),
            "created": now,
            "updated": now,
        }
    return list(rows.values())


def _bulk_bind(dialect: str, column: str) -> Any:
    """Bind parameter of a pre-processed item column for bulk upserts.

    SQLite takes the text as is (no per-row type processing: twice as fast);
    PostgreSQL needs typed parameters (JSON text cast to JSONB).
    """
    if column == "node_id":
        return sa.bindparam(column, type_=sa.Integer())
    if dialect == "postgresql":
        if column == "parsed":
            return sa.cast(sa.bindparam(column, type_=sa.Text()), JSONB)
        if column in ("created", "updated"):
            return sa.bindparam(column, type_=sa.DateTime(timezone=True))
    return sa.bindparam(column, type_=sa.Text())


def _db_value(dialect: sa.Dialect, column: sa.Column[Any], value: Any) -> Any:
    """``value`` converted by ``column``'s type as it would be when bound."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)


# --- the store ------------------------------------------------------------------


class PubsubStore(StorageBase):
    """Pubsub nodes, subscriptions and cached items."""

    _items_upserts: dict[tuple[str, tuple[str, ...]], sa.Insert] = {}

    # --- nodes ---

    def _node_identity(self, client: Any, service: object, name: object) -> tuple[int, str]:
        profile_id = self.client_profile_id(client)
        check_type("service", service, jid.JID)
        check_type("name", name, str)
        assert isinstance(service, jid.JID)
        return profile_id, service.full()

    @staticmethod
    def _check_node_settings(settings: dict[str, Any]) -> None:
        for key in ("analyser", "type_", "subtype"):
            _optional_str(key, settings.get(key))
        check_type("subscribed", settings.get("subscribed", False), bool)

    @staticmethod
    def _node_values(settings: dict[str, Any]) -> dict[str, Any]:
        """Column values of ``set_pubsub_node`` settings (``type_`` is column ``type``)."""
        return {
            "analyser": settings.get("analyser"),
            "type": settings.get("type_"),
            "subtype": settings.get("subtype"),
            "subscribed": settings.get("subscribed", False),
        }

    @staticmethod
    def _select_node(
        profile_id: int, service: str, name: str, with_items: bool, with_subscriptions: bool
    ) -> Select[tuple[PubsubNode]]:
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
                    **self._node_values(create_settings),
                )
            )
        stmt = self._select_node(profile_id, service, name, with_items, with_subscriptions)
        return session.scalars(stmt).one_or_none()

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
        return defer.maybeDeferred(
            self._get_pubsub_node,
            client,
            service,
            name,
            with_items,
            with_subscriptions,
            create,
            create_kwargs,
        )

    def _get_pubsub_node(
        self,
        client: Any,
        service: jid.JID,
        name: str,
        with_items: bool,
        with_subscriptions: bool,
        create: bool,
        create_kwargs: dict[str, Any] | None,
    ) -> defer.Deferred[PubsubNode | None]:
        profile_id, service_text = self._node_identity(client, service, name)
        check_type("with_items", with_items, bool)
        check_type("with_subscriptions", with_subscriptions, bool)
        check_type("create", create, bool)
        create_settings = None
        if create_kwargs is not None:
            check_type("create_kwargs", create_kwargs, dict)
            unknown = sorted(set(create_kwargs) - set(NODE_SETTINGS))
            if unknown:
                raise ValueError(
                    f"unknown create_kwargs key(s) {unknown}: allowed are {list(NODE_SETTINGS)}"
                )
            self._check_node_settings(create_kwargs)
        if create:
            create_settings = create_kwargs or {}
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
        values = self._node_values(settings)
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
        return session.scalars(self._select_node(profile_id, service, name, False, False)).one()

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
        return defer.maybeDeferred(
            self._set_pubsub_node, client, service, name, analyser, type_, subtype, subscribed
        )

    def _set_pubsub_node(
        self,
        client: Any,
        service: jid.JID,
        name: str,
        analyser: str | None,
        type_: str | None,
        subtype: str | None,
        subscribed: bool,
    ) -> defer.Deferred[PubsubNode]:
        profile_id, service_text = self._node_identity(client, service, name)
        settings = {"analyser": analyser, "type_": type_, "subtype": subtype}
        settings["subscribed"] = subscribed
        self._check_node_settings(settings)
        return self.db.run(self.set_pubsub_node_txn, profile_id, service_text, name, settings)

    @staticmethod
    def update_pubsub_node_sync_state_txn(
        session: Session, node_id: int, state: SyncState, updated: float
    ) -> None:
        result = session.execute(
            update(PubsubNode).where(PubsubNode.id == node_id).values(_state_values(state, updated))
        )
        if result.rowcount == 0:
            raise NotFound(f"pubsub node #{node_id} does not exist (any more)")

    @defer.inlineCallbacks
    def update_pubsub_node_sync_state(
        self, node: PubsubNode, state: SyncState | None
    ) -> defer.Deferred[None]:
        """Set the node's sync state (and ``sync_state_updated`` to now), also on ``node``.

        ``None`` means never synchronised (as a new node). ``NotFound`` when the node
        was deleted meanwhile. Whoever held the node's synchronisation lease loses it
        (see :meth:`claim_pubsub_node_sync`): the state is set by force.
        """
        node = _check_node(node)
        if state is not None:
            check_type("state", state, SyncState)
        updated = time.time()
        yield self.db.run(self.update_pubsub_node_sync_state_txn, node.id, state, updated)
        _set_state(node, state, updated)

    # --- synchronisation leases (one synchroniser per node, across processes) ---

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
            (in_states,) = next(_in_filters([(PubsubNode.sync_state, states)]))
            stmt = stmt.where(in_states)
        if session.execute(stmt.values(values)).rowcount == 0:
            if session.get(PubsubNode, node_id) is None:
                raise NotFound(f"pubsub node #{node_id} does not exist (any more)")
            return False
        if delete_items:
            session.execute(delete(PubsubItem).where(PubsubItem.node_id == node_id))
        return True

    @defer.inlineCallbacks
    def claim_pubsub_node_sync(
        self,
        node: PubsubNode,
        owner: str,
        lease_seconds: float,
        now: float | None = None,
        take_from: str | None = None,
        delete_items: bool = False,
        states: Sequence[SyncState | None] | None = None,
    ) -> defer.Deferred[bool]:
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
        node = _check_node(node)
        now = _lease_now(owner, lease_seconds, now)
        if take_from is not None:
            _check_owner("take_from", take_from)
        check_type("delete_items", delete_items, bool)
        if states is not None:
            states = _sync_states(states)
            if not states:
                return False
        expires = now + lease_seconds
        claimed = yield self.db.run(
            self.claim_pubsub_node_sync_txn,
            node.id,
            owner,
            expires,
            now,
            take_from,
            delete_items,
            states,
        )
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

    @defer.inlineCallbacks
    def renew_pubsub_node_sync(
        self, node: PubsubNode, owner: str, lease_seconds: float, now: float | None = None
    ) -> defer.Deferred[bool]:
        """Extend ``owner``'s lease on ``node`` to ``now + lease_seconds``.

        False when ``owner`` no longer holds the node (taken over after its lease
        expired, state set by force, node deleted): it must stop synchronising.
        """
        node = _check_node(node)
        now = _lease_now(owner, lease_seconds, now)
        expires = now + lease_seconds
        renewed = yield self.db.run(self.renew_pubsub_node_sync_txn, node.id, owner, expires)
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

    @defer.inlineCallbacks
    def release_pubsub_node_sync(
        self,
        node: PubsubNode,
        owner: str,
        state: SyncState | None,
        delete_items: bool = False,
    ) -> defer.Deferred[bool]:
        """End ``owner``'s synchronisation of ``node`` with ``state`` (lease cleared).

        Only if ``owner`` still holds the node: False (nothing changed) otherwise.
        ``delete_items``: empty the node in the same transaction (a failed sync).
        """
        node = _check_node(node)
        _check_owner("owner", owner)
        if state is not None:
            check_type("state", state, SyncState)
        check_type("delete_items", delete_items, bool)
        updated = time.time()
        released = yield self.db.run(
            self.release_pubsub_node_sync_txn, node.id, owner, state, updated, delete_items
        )
        if released:
            _set_state(node, state, updated)
        return released

    @staticmethod
    def get_pubsub_nodes_txn(session: Session, filters: Filters) -> list[PubsubNode]:
        found: dict[int, PubsubNode] = {}
        for clauses in _in_filters(filters):
            for node in session.scalars(select(PubsubNode).where(*clauses)):
                found[node.id] = node
        return [found[node_id] for node_id in sorted(found)]

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
        return defer.maybeDeferred(
            self._get_pubsub_nodes, profiles, services, names, types, subtypes, sync_states
        )

    def _get_pubsub_nodes(
        self,
        profiles: object,
        services: object,
        names: object,
        types: object,
        subtypes: object,
        sync_states: object,
    ) -> defer.Deferred[list[PubsubNode]]:
        if sync_states is not None:
            sync_states = _sync_states(sync_states, "sync_states")
        filters = self._node_filters(profiles, services, names, types, subtypes)
        filters.append((PubsubNode.sync_state, sync_states))
        if any(values == [] for _, values in filters):
            return defer.succeed([])
        return self.db.run(self.get_pubsub_nodes_txn, filters)

    @staticmethod
    def delete_pubsub_node_txn(session: Session, filters: Filters) -> int:
        deleted = 0
        for clauses in _in_filters(filters):
            deleted += session.execute(delete(PubsubNode).where(*clauses)).rowcount
        return deleted

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
        return defer.maybeDeferred(self._delete_pubsub_node, profiles, services, names)

    def _node_filters(
        self,
        profiles: object,
        services: object,
        names: object,
        types: object = None,
        subtypes: object = None,
    ) -> Filters:
        """Checked node filters (None: no filter; a None in types/subtypes: nodes without)."""
        return [
            (PubsubNode.profile_id, self._profile_ids(profiles)),
            (PubsubNode.service, self._services(services)),
            (PubsubNode.name, _str_list("names", names)),
            (PubsubNode.type_, _str_list("types", types, allow_none=True)),
            (PubsubNode.subtype, _str_list("subtypes", subtypes, allow_none=True)),
        ]

    def _profile_ids(self, profiles: object) -> list[int] | None:
        names = _str_list("profiles", profiles)
        return None if names is None else [self.get_profile_id(name) for name in names]

    @staticmethod
    def _services(services: object) -> list[str] | None:
        if services is None:
            return None
        check_type("services", services, list, tuple, set, frozenset)
        result = []
        for index, service in enumerate(services):  # type: ignore[arg-type]
            check_type(f"services[{index}]", service, jid.JID)
            result.append(service.full())
        return result

    def _delete_pubsub_node(
        self, profiles: object, services: object, names: object
    ) -> defer.Deferred[int]:
        filters = self._node_filters(profiles, services, names)
        if any(values == [] for _, values in filters):
            return defer.succeed(0)
        return self.db.run(self.delete_pubsub_node_txn, filters)

    # --- subscriptions ---

    def set_pubsub_subscription_txn(
        self, session: Session, node_id: int, subscriber: str, state: SubscriptionState | None
    ) -> None:
        session.execute(
            engines.upsert(
                self.dialect, PubsubSub.__table__, ("node_id", "subscriber"), ["state"]
            ).values(node_id=node_id, subscriber=subscriber, state=state)
        )

    def set_pubsub_subscription(
        self, node: PubsubNode, subscriber: jid.JID, state: SubscriptionState | None
    ) -> defer.Deferred[None]:
        """Record (or change) ``subscriber``'s subscription to the cached ``node``.

        Loaded with ``get_pubsub_node(..., with_subscriptions=True)``.
        """
        return defer.maybeDeferred(self._set_pubsub_subscription, node, subscriber, state)

    def _set_pubsub_subscription(
        self, node: PubsubNode, subscriber: jid.JID, state: SubscriptionState | None
    ) -> defer.Deferred[None]:
        node = _check_node(node)
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

    def delete_pubsub_subscription(
        self, node: PubsubNode, subscriber: jid.JID
    ) -> defer.Deferred[int]:
        """Forget ``subscriber``'s subscription to ``node``; 1 if there was one, else 0."""
        return defer.maybeDeferred(self._delete_pubsub_subscription, node, subscriber)

    def _delete_pubsub_subscription(
        self, node: PubsubNode, subscriber: jid.JID
    ) -> defer.Deferred[int]:
        node = _check_node(node)
        check_type("subscriber", subscriber, jid.JID)
        return self.db.run(self.delete_pubsub_subscription_txn, node.id, subscriber.full())

    # --- items: writing ---

    def _items_upsert(self, columns: tuple[str, ...]) -> sa.Insert:
        """The bulk upsert of item rows with ``columns`` (built once per shape)."""
        key = (self.dialect, columns)
        stmt = self._items_upserts.get(key)
        if stmt is None:
            updated = [c for c in columns if c not in ITEM_KEPT_ON_UPDATE]
            stmt = engines.upsert(self.dialect, PubsubItem.__table__, ITEM_KEY, updated)
            stmt = stmt.values({c: _bulk_bind(self.dialect, c) for c in columns})
            self._items_upserts[key] = stmt
        return stmt

    def cache_pubsub_items_txn(
        self,
        session: Session,
        node_id: int,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None],
    ) -> None:
        """Upsert checked ``items`` into node ``node_id``, in one bulk statement.

        ``NotFound`` when the node does not exist (deleted meanwhile).
        """
        table = PubsubItem.__table__
        now = _db_value(session.get_bind().dialect, table.c.created, utcnow())
        rows = build_item_rows(node_id, items, parsed_items, now)
        try:
            with session.begin_nested():  # a savepoint: the transaction stays usable
                session.execute(self._items_upsert(tuple(rows[0])), rows)
        except IntegrityError:
            # the conflict on (node_id, name) is handled: only node_id's foreign key is left
            if session.get(PubsubNode, node_id) is not None:
                raise
            raise NotFound(f"pubsub node #{node_id} does not exist (any more)") from None

    def cache_pubsub_items(
        self,
        client: Any,
        node: PubsubNode,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None] | None = None,
    ) -> defer.Deferred[None]:
        """Store (or update) ``items`` of ``node``, with their parsed data.

        ``items`` are ``<item/>`` elements with a non-empty ``id`` (at most
        ``MAX_ITEMS_BATCH``); ``parsed_items`` is None or a list aligned with them,
        of JSON-serialisable dicts or None. A new item is created (its creation
        order is the order it was first cached); a known one gets the new XML,
        parsed data and modification time. When an id comes twice in one call, the
        last one wins. One bulk statement per call.
        """
        return defer.maybeDeferred(self._cache_pubsub_items, client, node, items, parsed_items)

    def _cache_pubsub_items(
        self,
        client: Any,
        node: PubsubNode,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None] | None,
    ) -> defer.Deferred[None]:
        parsed_items = self._checked_items(client, node, items, parsed_items)
        if not items:
            return defer.succeed(None)
        return self.db.run(self.cache_pubsub_items_txn, node.id, items, parsed_items)

    def _checked_items(
        self,
        client: Any,
        node: PubsubNode,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None] | None,
    ) -> Sequence[dict[str, Any] | None]:
        """Check the arguments of :meth:`cache_pubsub_items`; the parsed data (aligned)."""
        profile_id = self.client_profile_id(client)
        node = _check_node(node)
        if node.profile_id != profile_id:
            raise ValueError(
                f"node {node.name!r} belongs to another profile than {client.profile!r}"
            )
        check_type("items", items, list, tuple)
        if len(items) > MAX_ITEMS_BATCH:
            raise ValueError(f"too many items: {len(items)} (at most {MAX_ITEMS_BATCH} per call)")
        for index, item in enumerate(items):
            if not isinstance(item, domish.Element) or item.name != "item":
                raise ValueError(f"items[{index}] is not an <item/> element: {item!r}")
            item_id = item.getAttribute("id")
            if not isinstance(item_id, str) or not item_id:
                raise ValueError(f"items[{index}] has no id")
        if parsed_items is None:
            parsed_items = [None] * len(items)
        else:
            check_type("parsed_items", parsed_items, list, tuple)
            if len(parsed_items) != len(items):
                raise ValueError(
                    f"parsed_items has {len(parsed_items)} entries for {len(items)} items"
                )
            for index, parsed in enumerate(parsed_items):
                if parsed is not None and not isinstance(parsed, dict):
                    raise ValueError(
                        f"parsed_items[{index}] must be a dict or None, got {type(parsed).__name__}"
                    )
        return parsed_items

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

    @defer.inlineCallbacks
    def cache_pubsub_sync_page(
        self,
        client: Any,
        node: PubsubNode,
        items: Sequence[domish.Element],
        parsed_items: Sequence[dict[str, Any] | None] | None,
        owner: str,
        lease_seconds: float,
        now: float | None = None,
    ) -> defer.Deferred[bool]:
        """One page of ``owner``'s synchronisation: lease renewed and items stored.

        In one transaction, as :meth:`renew_pubsub_node_sync` then
        :meth:`cache_pubsub_items`: nothing is written (False) when ``owner`` no
        longer holds the node.
        """
        parsed_items = self._checked_items(client, node, items, parsed_items)
        now = _lease_now(owner, lease_seconds, now)
        expires = now + lease_seconds
        written = yield self.db.run(
            self.cache_pubsub_sync_page_txn, node.id, items, parsed_items, owner, expires
        )
        if written:
            node.sync_lease_expires = expires
        return written

    @staticmethod
    def delete_pubsub_items_txn(
        session: Session, node_id: int, items_names: list[str] | None
    ) -> int:
        node_filter = PubsubItem.node_id == node_id
        if items_names is None:
            return session.execute(delete(PubsubItem).where(node_filter)).rowcount
        deleted = 0
        for chunk in batched(items_names):
            stmt = delete(PubsubItem).where(node_filter, PubsubItem.name.in_(chunk))
            deleted += session.execute(stmt).rowcount
        return deleted

    def delete_pubsub_items(
        self, node: PubsubNode, items_names: list[str] | None = None
    ) -> defer.Deferred[int]:
        """Delete the items of ``node`` named in ``items_names`` (None: every item).

        Returns how many were deleted; unknown names are ignored.
        """
        return defer.maybeDeferred(self._delete_pubsub_items, node, items_names)

    def _delete_pubsub_items(
        self, node: PubsubNode, items_names: list[str] | None
    ) -> defer.Deferred[int]:
        node = _check_node(node)
        names = _str_list("items_names", items_names)
        if names == []:
            return defer.succeed(0)
        if names is not None:
            names = list(dict.fromkeys(names))
        return self.db.run(self.delete_pubsub_items_txn, node.id, names)

    def _item_filters(
        self,
        services: object,
        names: object,
        types: object,
        subtypes: object,
        profiles: object,
        created_before: object,
        updated_before: object,
    ) -> ItemFilters:
        """Checked filters of :meth:`purge_pubsub_items` and :meth:`count_pubsub_items`."""
        nodes = self._node_filters(profiles, services, names, types, subtypes)
        for name, value in (("created_before", created_before), ("updated_before", updated_before)):
            if value is not None:
                check_type(name, value, datetime)
        return ItemFilters(nodes, created_before, updated_before)  # type: ignore[arg-type]

    @staticmethod
    def purge_pubsub_items_txn(session: Session, filters: ItemFilters) -> int:
        deleted = 0
        for clauses in filters.clauses():
            deleted += session.execute(delete(PubsubItem).where(*clauses)).rowcount
        return deleted

    def purge_pubsub_items(
        self,
        services: list[jid.JID] | None = None,
        names: list[str] | None = None,
        types: list[str | None] | None = None,
        subtypes: list[str | None] | None = None,
        profiles: list[str] | None = None,
        created_before: datetime | None = None,
        updated_before: datetime | None = None,
    ) -> defer.Deferred[int]:
        """Delete cached items matching every filter (nodes are kept); their number.

        List filters select nodes (None: no filter; a None in ``types`` or
        ``subtypes`` matches nodes without one). ``created_before`` and
        ``updated_before`` select items strictly older than a point in time: an aware
        datetime in any zone (a naive one is taken as UTC).
        """
        return defer.maybeDeferred(
            self._run_item_filters,
            self.purge_pubsub_items_txn,
            services,
            names,
            types,
            subtypes,
            profiles,
            created_before,
            updated_before,
        )

    @staticmethod
    def count_pubsub_items_txn(session: Session, filters: ItemFilters) -> int:
        count = 0
        for clauses in filters.clauses():
            count += session.execute(select(func.count(PubsubItem.id)).where(*clauses)).scalar_one()
        return count

    def count_pubsub_items(
        self,
        services: list[jid.JID] | None = None,
        names: list[str] | None = None,
        types: list[str | None] | None = None,
        subtypes: list[str | None] | None = None,
        profiles: list[str] | None = None,
        created_before: datetime | None = None,
        updated_before: datetime | None = None,
    ) -> defer.Deferred[int]:
        """How many cached items match every filter (read only).

        The filters are those of :meth:`purge_pubsub_items`: the count is what a
        purge with the same arguments would delete.
        """
        return defer.maybeDeferred(
            self._run_item_filters,
            self.count_pubsub_items_txn,
            services,
            names,
            types,
            subtypes,
            profiles,
            created_before,
            updated_before,
        )

    def _run_item_filters(self, txn: Any, *filters: object) -> defer.Deferred[int]:
        """Check the item ``filters``, then run ``txn(session, ItemFilters)`` (0 if none match)."""
        checked = self._item_filters(*filters)
        if checked.matches_nothing:
            return defer.succeed(0)
        return self.db.run(txn, checked)

    # --- statistics ---

    def get_pubsub_stats_txn(
        self, session: Session, profile_ids: list[int] | None
    ) -> dict[str, Any]:
        by_state: dict[SyncState | None, int] = {}
        by_type: dict[tuple[str | None, str | None], list[int]] = {}
        xml_size = func.coalesce(func.sum(_byte_length(self.dialect, PubsubItem.data)), 0)
        for clauses in _in_filters([(PubsubNode.profile_id, profile_ids)]):
            states = select(PubsubNode.sync_state, func.count()).where(*clauses)
            for state, count in session.execute(states.group_by(PubsubNode.sync_state)):
                by_state[state] = by_state.get(state, 0) + count
            types = (
                select(
                    PubsubNode.type_,
                    PubsubNode.subtype,
                    func.count(PubsubNode.id.distinct()),
                    func.count(PubsubItem.id),
                    xml_size,
                )
                .outerjoin(PubsubItem, PubsubItem.node_id == PubsubNode.id)
                .where(*clauses)
                .group_by(PubsubNode.type_, PubsubNode.subtype)
            )
            for type_, subtype, *figures in session.execute(types):
                totals = by_type.setdefault((type_, subtype), [0, 0, 0])
                for index, value in enumerate(figures):
                    totals[index] += int(value)
        rows = [
            {"type": t, "subtype": st, "nodes": nodes, "items": items, "size": size}
            for (t, st), (nodes, items, size) in sorted(
                by_type.items(), key=lambda entry: _none_first(entry[0])
            )
        ]
        return {
            "nodes": sum(by_state.values()),
            "items": sum(row["items"] for row in rows),
            "size": sum(row["size"] for row in rows),
            "by_state": by_state,
            "by_type": rows,
        }

    def get_pubsub_stats(self, profiles: list[str] | None = None) -> defer.Deferred[dict[str, Any]]:
        """Figures of the cache, for ``profiles`` (None: every profile).

        Returns ``nodes``, ``items`` and ``size`` (bytes of item XML) in all,
        ``by_state`` (``{SyncState or None: nodes}``, None = never synchronised) and
        ``by_type`` (a list of ``{"type", "subtype", "nodes", "items", "size"}``,
        ordered by type then subtype, None first).
        """
        return defer.maybeDeferred(self._get_pubsub_stats, profiles)

    def _get_pubsub_stats(self, profiles: object) -> defer.Deferred[dict[str, Any]]:
        return self.db.run(self.get_pubsub_stats_txn, self._profile_ids(profiles))

    # --- items: reading ---

    def get_items(
        self,
        node: PubsubNode,
        max_items: int | None = None,
        item_ids: list[str] | None = None,
        before: str | None = None,
        after: str | None = None,
        from_index: int | None = None,
        order_by: list[str] | None = None,
        desc: bool = True,
        force_rsm: bool = False,
    ) -> defer.Deferred[tuple[list[PubsubItem], dict[str, Any]]]:
        """A page of cached items of ``node``, with XEP-0059 (RSM) metadata.

        Items are ordered by ``order_by`` (a list of ``"creation"`` = order first
        cached, ``"modification"`` = last update; default modification), index 0
        being the oldest; a page is always returned oldest first.

        - ``after=ID``: the first ``max_items`` items after ``ID``;
        - ``before=ID``: the ``max_items`` items just before ``ID``;
          ``before=""``: the last page;
        - ``from_index=I``: ``max_items`` items from position ``I``;
        - none of them: the newest ``max_items`` items (``desc=False``: the oldest);
        - ``item_ids``: only those items (unknown ones are skipped), paged as above
          with ``max_items`` (they cannot be combined with a cursor).

        ``max_items`` None means no limit, 0 only counts. An unknown ``after`` or
        ``before`` id raises ``NotFound``. Metadata: ``{"rsm": {"first", "last",
        "index", "count"}, "complete"}``; ``complete`` is True when no item comes
        after the page. RSM metadata is always given, so ``force_rsm`` (Libervia's)
        changes nothing.
        """
        return defer.maybeDeferred(
            self._get_items,
            node,
            max_items,
            item_ids,
            before,
            after,
            from_index,
            order_by,
            desc,
            force_rsm,
        )

    def _get_items(
        self,
        node: PubsubNode,
        max_items: int | None,
        item_ids: list[str] | None,
        before: str | None,
        after: str | None,
        from_index: int | None,
        order_by: list[str] | None,
        desc: bool,
        force_rsm: bool,
    ) -> defer.Deferred[tuple[list[PubsubItem], dict[str, Any]]]:
        node = _check_node(node)
        _count("max_items", max_items)
        _count("from_index", from_index)
        _optional_str("before", before)
        _optional_str("after", after)
        check_type("desc", desc, bool)
        check_type("force_rsm", force_rsm, bool)
        if after == "":
            raise ValueError('after must be an item id, not ""')
        cursors = [
            name
            for name, value in (("before", before), ("after", after), ("from_index", from_index))
            if value is not None
        ]
        if len(cursors) > 1:
            raise ValueError(f"use at most one of before, after and from_index, got {cursors}")
        ids = _str_list("item_ids", item_ids, allow_empty=False)
        if ids is not None:
            if cursors:
                raise ValueError(f"item_ids cannot be combined with {cursors[0]}")
            ids = list(dict.fromkeys(ids))
            if len(ids) > MAX_ITEMS_BATCH:
                raise ValueError(f"too many item_ids: {len(ids)} (at most {MAX_ITEMS_BATCH})")
        keys = order_keys(order_by)
        if ids is not None:
            return self.db.run(self.get_items_by_ids_txn, node.id, ids, max_items, keys, desc)
        return self.db.run(
            self.get_items_txn, node.id, max_items, before, after, from_index, keys, desc
        )

    @staticmethod
    def _key_of(item: PubsubItem, keys: tuple[str, ...]) -> tuple[Any, ...]:
        return tuple(getattr(item, k) for k in keys)

    @staticmethod
    def _metadata(
        items: list[PubsubItem], index: int | None, count: int, complete: bool
    ) -> dict[str, Any]:
        return {
            "rsm": {
                "first": items[0].name if items else None,
                "last": items[-1].name if items else None,
                "index": index if items else None,
                "count": count,
            },
            "complete": complete,
        }

    @classmethod
    def get_items_txn(
        cls,
        session: Session,
        node_id: int,
        max_items: int | None,
        before: str | None,
        after: str | None,
        from_index: int | None,
        keys: tuple[str, ...],
        desc: bool,
    ) -> tuple[list[PubsubItem], dict[str, Any]]:
        """Keyset paging: a range scan of the order's index, then one COUNT on it."""
        key = tuple_(*(getattr(PubsubItem, k) for k in keys))
        node_filter = PubsubItem.node_id == node_id
        cursor = before or after
        cursor_key = None
        if cursor:
            row = session.execute(
                select(*key.clauses).where(node_filter, PubsubItem.name == cursor)
            ).one_or_none()
            if row is None:
                raise NotFound(f"item {cursor!r} is not in the cache of node #{node_id}")
            cursor_key = tuple(row)
        items: list[PubsubItem] = []
        if max_items != 0:
            items = cls._page(
                session, node_filter, key, max_items, before, after, from_index, cursor_key, desc
            )
        if items:
            first = cls._key_of(items[0], keys)
            count, index = session.execute(
                select(func.count(), func.count(case((key < first, 1)))).where(node_filter)
            ).one()
            complete = index + len(items) == count
        else:
            count = session.execute(select(func.count()).where(node_filter)).scalar_one()
            index = None
            # an empty page ends the node, except before the first item or when max is 0
            complete = count == 0 or (max_items != 0 and not before)
        return items, cls._metadata(items, index, count, complete)

    @staticmethod
    def _page(
        session: Session,
        node_filter: ColumnElement[bool],
        key: Any,
        max_items: int | None,
        before: str | None,
        after: str | None,
        from_index: int | None,
        cursor_key: tuple[Any, ...] | None,
        desc: bool,
    ) -> list[PubsubItem]:
        """Items of one page, oldest first, read from the order's index."""
        ascending = [c.asc() for c in key.clauses]
        descending = [c.desc() for c in key.clauses]
        stmt = select(PubsubItem).where(node_filter)
        backwards = False
        if after is not None:
            stmt = stmt.where(key > cursor_key).order_by(*ascending)
        elif before:
            stmt = stmt.where(key < cursor_key).order_by(*descending)
            backwards = True
        elif from_index is not None:
            # the key at that position, from the index alone; then a range scan
            start = session.execute(
                select(*key.clauses)
                .where(node_filter)
                .order_by(*ascending)
                .offset(from_index)
                .limit(1)
            ).one_or_none()
            if start is None:
                return []
            stmt = stmt.where(key >= tuple(start)).order_by(*ascending)
        elif before == "" or desc:
            stmt = stmt.order_by(*descending)
            backwards = True
        else:
            stmt = stmt.order_by(*ascending)
        if max_items is not None:
            stmt = stmt.limit(max_items)
        items = list(session.scalars(stmt))
        if backwards:
            items.reverse()
        return items

    @classmethod
    def get_items_by_ids_txn(
        cls,
        session: Session,
        node_id: int,
        item_ids: list[str],
        max_items: int | None,
        keys: tuple[str, ...],
        desc: bool,
    ) -> tuple[list[PubsubItem], dict[str, Any]]:
        """The items named ``item_ids`` (at most ``MAX_ITEMS_BATCH``), paged in memory."""
        found: list[PubsubItem] = []
        for chunk in batched(item_ids):
            stmt = select(PubsubItem).where(
                PubsubItem.node_id == node_id, PubsubItem.name.in_(chunk)
            )
            found.extend(session.scalars(stmt))
        found.sort(key=lambda item: cls._key_of(item, keys))
        count = len(found)
        if max_items is None or max_items >= count:
            items, index = found, 0
        elif desc:
            items, index = found[count - max_items :], count - max_items
        else:
            items, index = found[:max_items], 0
        complete = index + len(items) == count if items else count == 0
        return items, cls._metadata(items, index, count, complete)
