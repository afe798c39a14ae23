"""PUBSUB_CACHE: a local cache of pubsub nodes, answering XEP-0060 items requests.

How it works (DESIGN.md §7):

- plugins register *analysers* (:meth:`PubsubCache.register_analyser`) telling which
  nodes hold what, whether to synchronise them and how to parse their items;
- on the ``XEP-0060_getItems`` trigger, a node whose cache is COMPLETED is answered
  from the database, in the same ``(items, metadata)`` shape as the network; an unknown
  node is analysed, recorded and, when its analyser says ``to_sync``, synchronised in
  the background while the request goes to the network;
- a synchronisation subscribes first (no event is missed), then fetches the items page
  by page (XEP-0059 RSM; one request when the service has no RSM) and stores them with
  their parsed data; states go IN_PROGRESS -> COMPLETED, ERROR (items removed) or
  NO_SYNC (the node cannot be kept in sync); one synchronisation per (profile,
  service, node) at a time, cancelled and retried past a deadline (the node stays
  claimed between the attempts); a synchronisation stopped by the loss of the
  client's connection (or a crash) is resumed when the profile connects again;
- that holds across processes sharing the database (the backend, an administrator's
  command, other hosts on PostgreSQL): a synchronisation is owned through a lease in
  the database (:mod:`.pubsub_cache.lease`), claimed atomically, renewed while it
  runs (a heartbeat, and with each page written) and released at its end. A process
  that cannot claim a node does not synchronise it (its requests go to the network);
  at start, only nodes whose lease has expired, or whose owner is a process of this
  host that no longer runs, are reset;
- pubsub events keep the cache in step (new items, retractions, purge, deletion).

Configuration (``[pubsub_cache]`` section): ``strategy`` (``no_cache`` disables the
cache; Libervia's ``pubsub_cache_strategy`` in ``[DEFAULT]`` works too),
``cache_limit`` (items kept per node, default 5000), ``page_size`` (RSM page size,
default 100), ``sync_deadline`` (seconds, default 3600), ``sync_attempts`` (default
3), ``error_retry_delay`` (seconds before a failed node is tried again, default 600),
``sync_lease`` (seconds a synchronisation is owned without renewal, default 300),
``sync_lease_renewal`` (seconds between renewals, default 60; shorter than the lease).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.plugin_xep_0060 import NS_PUBSUB, get_node_uri
from sat_storage.plugins.pubsub_cache import lease, reads
from sat_storage.plugins.pubsub_cache.analysers import AnalyserRegistry, parser_of
from sat_storage.plugins.pubsub_cache.flight import KeyedLock, SingleFlight, as_deferred
from sat_storage.plugins.pubsub_cache.lease import Holder, SyncLeaseLost, SyncOwnedElsewhere
from sat_storage.plugins.pubsub_cache.sync import (
    Pager,
    RepeatedItemsError,
    SyncExpired,
    SyncManager,
    SyncTask,
)
from twisted.internet import defer
from twisted.internet import error as internet_error
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubItem, PubsubNode, SyncState

log = logging.getLogger(__name__)

PLUGIN_INFO = {
    "name": "PubSub Cache",
    "import_name": "PUBSUB_CACHE",
    "type": "PUBSUB",
    "modes": ["client", "component"],
    "dependencies": ["XEP-0059", "XEP-0060"],
    "recommendations": [],
    "main": "PubsubCache",
    "handler": "no",
    "description": "Local cache of pubsub nodes: reads answered from the database",
}

CONFIG_SECTION = "pubsub_cache"
NO_CACHE = "no_cache"
STRATEGIES = ("cache", NO_CACHE)
#: extra key of XEP-0060 get_items: False sends the request to the network
KEY_USE_CACHE = "use_cache"
#: option name -> (default, type, minimum)
SETTINGS: dict[str, tuple[float, type, float]] = {
    "cache_limit": (5000, int, 1),
    "page_size": (100, int, 1),
    "sync_deadline": (3600.0, float, 0.001),
    "sync_attempts": (3, int, 1),
    "error_retry_delay": (600.0, float, 0),
    "sync_lease": (300.0, float, 0.001),
    "sync_lease_renewal": (60.0, float, 0.001),
}
PURGE_FILTERS = (
    "services",
    "nodes",
    "types",
    "subtypes",
    "profiles",
    "created_before",
    "updated_before",
)
#: states in which a node's cache follows the events
CACHING_STATES = (SyncState.COMPLETED, SyncState.IN_PROGRESS)
#: the client's connection ended: a synchronisation stops, to be done again later
CONNECTION_ENDED = (internet_error.ConnectionLost, internet_error.ConnectionDone)
#: failures of a synchronisation logged without traceback (the service's or network's)
EXPECTED_SYNC_ERRORS = (jabber_error.StanzaError, NotFound, SyncExpired, defer.TimeoutError)
NO_NETWORK = {KEY_USE_CACHE: False}
#: claims of a node before giving up (it changes hands between the tries)
CLAIM_TRIES = 3
#: sync states of a node that a request synchronises, or that is resumed after an
#: interruption (another process may have completed it since it was read: then it is
#: not synchronised again)
SYNC_WANTED = [None, SyncState.ERROR, SyncState.IN_PROGRESS]
#: the same for ``synchronise(resync=False)``: anything not COMPLETED
NOT_COMPLETED = [*SYNC_WANTED, SyncState.NO_SYNC]

Key = tuple[str, str, str]  # (profile, service JID, node name)


def _key(profile: str, service: jid.JID | str, node: str) -> Key:
    return (profile, service.full() if isinstance(service, jid.JID) else service, node)


def _node_id(key: Key) -> tuple[jid.JID, str]:
    """(service, node name) of a key, as the storage takes them."""
    return jid.JID(key[1]), key[2]


def _label(key: Key) -> str:
    profile, service, node = key
    return f"node {node!r} at {service} [{profile}]"


def as_pubsub_item(element: domish.Element) -> domish.Element:
    """``element`` as a ``<item/>`` of the pubsub namespace (event items are copied)."""
    if element.uri == NS_PUBSUB:
        return element
    item = domish.Element((NS_PUBSUB, "item"), defaultUri=NS_PUBSUB)
    item.attributes = dict(element.attributes)
    item.children = list(element.children)
    return item


class _ProfileClient:
    """What the storage needs of a client: the profile (for another profile's cache)."""

    def __init__(self, profile: str) -> None:
        self.profile = profile


class PubsubCache:
    """Plugin object (``host.plugins["PUBSUB_CACHE"]``)."""

    def __init__(self, host: Any, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.host = host
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.use_cache = self._read_strategy()
        settings = {name: self._read_setting(name) for name in SETTINGS}
        self.cache_limit = int(settings["cache_limit"])
        self.page_size = int(settings["page_size"])
        self.error_retry_delay = float(settings["error_retry_delay"])
        self.lease = float(settings["sync_lease"])
        self.lease_renewal = float(settings["sync_lease_renewal"])
        if self.lease_renewal >= self.lease:
            raise ValueError(
                f"[{CONFIG_SECTION}] sync_lease_renewal ({self.lease_renewal:g}) must be "
                f"shorter than sync_lease ({self.lease:g})"
            )
        self.analysers = AnalyserRegistry()
        self.syncs = SyncManager(
            self.clock,
            float(settings["sync_deadline"]),
            int(settings["sync_attempts"]),
            quiet=(SyncOwnedElsewhere,),
        )
        #: this instance's token in the nodes it synchronises (host, pid, random part)
        self.owner = lease.new_owner()
        self._preparing = SingleFlight()
        self._locks = KeyedLock()
        self._failed: dict[Key, float] = {}
        #: profile -> (service, node) of the synchronisations to resume at its connection
        self._interrupted: dict[str, set[tuple[str, str]]] = {}
        self._p = host.plugins["XEP-0060"]
        if not self.use_cache:
            log.info("pubsub cache disabled by the configuration (strategy = %s)", NO_CACHE)
        host.trigger.add("XEP-0060_getItems", self._get_items_trigger)
        self._p.add_managed_node(
            "",
            items_cb=self.on_items_event,
            delete_cb=self.on_delete_event,
            purge_cb=self.on_purge_event,
        )
        #: fires once synchronisations interrupted by a previous run have been reset
        self.initialised: defer.Deferred[None] = defer.ensureDeferred(self._reset_interrupted())
        self.initialised.addErrback(self._init_failed)

    # --- configuration ---

    def _config(self, name: str, default: Any = None) -> Any:
        return self.host.memory.config_get(CONFIG_SECTION, name, default)

    def _read_strategy(self) -> bool:
        strategy = self._config("strategy")
        option = f"[{CONFIG_SECTION}] strategy"
        if strategy is None:
            strategy = self.host.memory.config_get(None, "pubsub_cache_strategy", None)
            option = "pubsub_cache_strategy"
        if strategy is None:
            return True
        strategy = str(strategy).strip().lower()
        if strategy not in STRATEGIES:
            raise ValueError(f"{option} must be one of {STRATEGIES}, got {strategy!r}")
        return strategy != NO_CACHE

    def _read_setting(self, name: str) -> float:
        default, type_, minimum = SETTINGS[name]
        raw = self._config(name, default)
        try:
            value = type_(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"[{CONFIG_SECTION}] {name} must be a {type_.__name__}, got {raw!r}"
            ) from None
        if value < minimum:
            raise ValueError(f"[{CONFIG_SECTION}] {name} must be at least {minimum}, got {raw!r}")
        return value

    # --- start and stop ---

    @staticmethod
    def _init_failed(failure: Any) -> None:
        log.error("pubsub cache: resetting interrupted synchronisations failed: %s", failure)

    def _profile_names(self) -> dict[int, str]:
        return {id_: name for name, id_ in self.host.memory.storage.profiles.items()}

    async def _reset_interrupted(self) -> None:
        """Nodes left IN_PROGRESS by a run that ended (a crash): items removed, state None.

        Only nodes nobody holds: no owner, an expired lease, or an owner that is a
        process of this host that no longer runs. A live lease of another process
        (or cache instance) is left alone. The nodes reset are synchronised again when
        their profile connects (:meth:`profile_connected`), or on next request.
        """
        storage = self.host.memory.storage
        nodes = await storage.get_pubsub_nodes(sync_states=[SyncState.IN_PROGRESS])
        names = self._profile_names()
        for node in nodes:
            label = _label(_key(names[node.profile_id], node.service, node.name))
            holder = self._holder(node, dead_too=True)
            if holder is not None and not lease.owner_gone(holder.owner):
                log.info("%s is being synchronised by %s: left alone", label, holder.describe())
                continue
            try:
                claimed = await self._claim_and_reset(node, holder)
            except NotFound:
                continue
            if claimed:
                log.warning(
                    "%s was left half-synchronised by %s: resetting it",
                    label,
                    "an interrupted run" if holder is None else f"{holder.describe()} (gone)",
                )
                self._interrupt(_key(names[node.profile_id], node.service, node.name))

    async def _claim_and_reset(self, node: PubsubNode, dead: Holder | None) -> bool:
        """Take an abandoned node (from its ``dead`` owner) and clear it; False if taken."""
        storage = self.host.memory.storage
        claimed = await storage.claim_pubsub_node_sync(
            node,
            self.owner,
            self.lease,
            now=self.clock.seconds(),
            take_from=None if dead is None else dead.owner,
            delete_items=True,
        )
        if claimed:
            await storage.release_pubsub_node_sync(node, self.owner, None)
        return claimed

    def _holder(self, node: PubsubNode, dead_too: bool = False) -> Holder | None:
        """Who else holds a live lease on ``node`` (None: it may be claimed).

        An owner that is a process of this host that no longer runs holds nothing,
        unless ``dead_too``.
        """
        if node.sync_state is not SyncState.IN_PROGRESS or node.sync_owner in (None, self.owner):
            return None
        expires = node.sync_lease_expires
        if expires is None or expires <= self.clock.seconds():
            return None
        if not dead_too and lease.owner_gone(node.sync_owner):
            return None
        return Holder(node.sync_owner, expires)

    def _interrupt(self, key: Key) -> None:
        """Remember an interrupted synchronisation, to resume at its profile's connection."""
        self._interrupted.setdefault(key[0], set()).add(key[1:])

    async def profile_connected(self, client: Any) -> None:
        """Resume this profile's synchronisations that were interrupted, by the loss of
        its connection or by a previous run that ended (crash).

        Only those still wanted: a node deleted, COMPLETED or NO_SYNC meanwhile is left
        as it is, one another process has taken is left to it (an ERROR node, maybe
        failed for want of a connection, is resumed). Returns once they have started.
        """
        await self.initialised
        storage = self.host.memory.storage
        for service, name in sorted(self._interrupted.pop(client.profile, ())):
            label = _label(_key(client.profile, service, name))
            try:
                node = await storage.get_pubsub_node(client, jid.JID(service), name)
            except Exception:
                log.exception("%s: can't resume its synchronisation", label)
                continue
            if node is None or node.sync_state not in SYNC_WANTED:
                state = "gone" if node is None else node.sync_state
                log.info("%s: synchronisation not resumed (%s meanwhile)", label, state)
                continue
            holder = self._holder(node)
            if holder is not None:
                log.info("%s: synchronisation left to %s", label, holder.describe())
                continue
            log.info("%s: synchronisation resumed", label)
            d = self._start_sync(client, node, SYNC_WANTED)
            d.addErrback(self._resync_failed, label)

    @staticmethod
    def _resync_failed(failure: Failure, label: str) -> None:
        if failure.check(SyncOwnedElsewhere):
            log.info("resync: %s", failure.value)
        else:
            log.error("resync of %s: %s", label, failure)

    def profile_disconnected(self, client: Any) -> defer.Deferred[Any]:
        """Stop the synchronisations of a profile that lost its connection; they are
        resumed at its next connection (:meth:`profile_connected`)."""
        keys = [key for key in self.syncs.keys() if key[0] == client.profile]
        for key in keys:
            self._interrupt(key)
        stopping = [self.syncs.stop(key) for key in keys]
        return defer.gatherResults([d for d in stopping if d is not None], consumeErrors=True)

    async def stop(self) -> None:
        """Stop every synchronisation (host shutdown)."""
        self.host.trigger.remove("XEP-0060_getItems", self._get_items_trigger)
        self._p.remove_managed_node(
            "", self.on_items_event, self.on_delete_event, self.on_purge_event
        )
        await self.syncs.stop_all()
        lease.unregister(self.owner)

    # --- analysers ---

    def register_analyser(self, analyser: dict[str, Any]) -> None:
        """Register a node analyser (keys in :mod:`.pubsub_cache.analysers`).

        ``ValueError`` names a missing or invalid key; ``ConflictError`` if an analyser
        with the same (normalised) name exists. Analysers are tried in registration
        order. The caller's dict is not modified.
        """
        checked = self.analysers.register(analyser)
        log.info("pubsub cache: analyser %r registered (type %r)", checked["name"], checked["type"])

    async def analyse_node(
        self,
        client: Any,
        service: jid.JID,
        node: str,
        pubsub_node: PubsubNode | None = None,
    ) -> dict[str, Any]:
        """What ``node`` holds, from the registered analysers.

        Returns the *analyse*: ``service``, ``node``, and when found ``namespace`` (of
        the node's last item), ``conf`` (the node configuration form), then the keys of
        the matching analyser (``name``, ``type``, ``subtype``, ``to_sync``,
        ``parser``), possibly edited by its ``match_cb``. When ``pubsub_node`` (the
        cached node) is given, nothing is asked to the network. Failed look-ups are
        logged and leave their key out.
        """
        analyse: dict[str, Any] = {"service": service, "node": node}
        if pubsub_node is None:
            lookups = [defer.ensureDeferred(self._node_configuration(client, service, node))]
            if self.analysers.needs_namespace(node):
                lookups.append(defer.ensureDeferred(self._last_namespace(client, service, node)))
            for found in await defer.gatherResults(lookups, consumeErrors=True):
                analyse.update(found)
        analyser = self.analysers.apply(analyse)
        if analyser is None:
            log.debug("%s matches no analyser", _label(_key(client.profile, service, node)))
        elif "match_cb" in analyser:
            try:
                await as_deferred(analyser["match_cb"], client, analyse)
            except Exception:
                log.exception("match_cb of analyser %r failed on node %r", analyser["name"], node)
        return analyse

    async def _last_namespace(self, client: Any, service: jid.JID, node: str) -> dict[str, Any]:
        """``{"namespace": …}`` of the payload of the node's last item, or ``{}``."""
        try:
            items, _ = await self._p.get_items(client, service, node, 1, extra=dict(NO_NETWORK))
        except NotFound:
            return {}
        except Exception as e:
            log.warning("can't get the last item of node %r at %s: %s", node, service.full(), e)
            return {}
        payload = items[-1].firstChildElement() if items else None
        return {} if payload is None or not payload.uri else {"namespace": payload.uri}

    async def _node_configuration(self, client: Any, service: jid.JID, node: str) -> dict[str, Any]:
        """``{"conf": form}`` when the service gives the node configuration, else ``{}``."""
        try:
            return {"conf": await self._p.get_configuration(client, service, node)}
        except (jabber_error.StanzaError, NotFound) as e:
            log.info("configuration of node %r at %s unavailable: %s", node, service.full(), e)
        except Exception as e:
            log.warning("can't get the configuration of node %r at %s: %s", node, service, e)
        return {}

    # --- items: parsing and writing ---

    async def _parse(
        self, client: Any, node: PubsubNode, items: list[domish.Element]
    ) -> list[dict[str, Any] | None]:
        """Parsed data of ``items`` (None for each item the parser fails on, logged)."""
        parser = parser_of(self.analysers, node.analyser)
        if parser is None:
            return [None] * len(items)
        service = jid.JID(node.service)
        parsed: list[dict[str, Any] | None] = []
        for item in items:
            try:
                data = parser(client, item, service, node.name)
                if isinstance(data, defer.Deferred) or hasattr(data, "__await__"):
                    data = await data
                if not isinstance(data, dict):
                    raise TypeError(f"the parser returned {type(data).__name__}, not a dict")
                json.dumps(data, allow_nan=False)
            except Exception as e:
                log.warning(
                    "parser of analyser %r failed on item %r of node %r (item kept raw): %s",
                    node.analyser,
                    item.getAttribute("id"),
                    node.name,
                    e,
                    exc_info=not isinstance(e, TypeError | ValueError),
                )
                data = None
            parsed.append(data)
        return parsed

    @staticmethod
    def _valid_items(items: Any, where: str) -> list[domish.Element]:
        """The ``<item/>`` elements with an id (others logged and left out)."""
        if not isinstance(items, list | tuple):
            raise TypeError(f"items must be a list of <item/> elements, got {items!r}")
        valid = []
        for item in items:
            if not isinstance(item, domish.Element) or item.name != "item":
                log.warning("%s: ignoring %r (not an <item/> element)", where, item)
            elif not item.getAttribute("id"):
                log.warning("%s: ignoring an item without id: %s", where, item.toXml()[:300])
            else:
                valid.append(as_pubsub_item(item))
        return valid

    async def cache_items(
        self, client: Any, pubsub_node: PubsubNode, items: list[domish.Element]
    ) -> None:
        """Parse ``items`` with the node's analyser and store them (upsert).

        Items without id, or that are not ``<item/>`` elements, are logged and left
        out; a parser failure stores the item with no parsed data. During a
        synchronisation of the node, the write is kept and done after the last page.
        """
        key = _key(client.profile, pubsub_node.service, pubsub_node.name)
        items = self._valid_items(items, _label(key))
        if not items:
            return
        parsed = await self._parse(client, pubsub_node, items)
        storage = self.host.memory.storage
        await self._change(key, storage.cache_pubsub_items, client, pubsub_node, items, parsed)

    def _change(self, key: Key, write: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """Apply an event's change to a node's cache, in order with everything else.

        Under the node's lock: while a synchronisation pages the node, the change is
        kept and replayed after the last page (see :meth:`_complete`); otherwise it
        is written now.
        """

        def apply() -> Any:
            task = self.syncs.task(key)
            if task is not None and not task.finished:
                task.pending.append(lambda: write(*args))
                return None
            return write(*args)

        return self._locks.run(key, apply)

    async def _complete(self, key: Key, node: PubsubNode, task: SyncTask) -> None:
        """End of paging (under the node's lock): replay the events, mark COMPLETED.

        ``SyncLeaseLost`` if the node is no longer this instance's to complete.
        """
        for change in task.pending:
            await as_deferred(change)
        task.pending.clear()
        storage = self.host.memory.storage
        if not await storage.release_pubsub_node_sync(node, self.owner, SyncState.COMPLETED):
            raise SyncLeaseLost(f"{_label(key)} is no longer ours to complete")
        task.finished = True

    # --- reading the cache ---

    async def get_items_from_cache(
        self,
        client: Any,
        node: PubsubNode,
        max_items: int | None = None,
        item_ids: list[str] | None = None,
        sub_id: str | None = None,
        rsm_request: RSMRequest | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[list[PubsubItem], dict[str, Any]]:
        """Cached items of ``node``, with the arguments of a XEP-0060 items request.

        ``max_items`` alone: the newest items (all when None), oldest first; RSM
        ``after``/``before``/``before=""``/``index`` pages; ``item_ids``;
        ``extra["order_by"]`` (``creation`` or ``modification``). Metadata:
        ``{"rsm": {"first", "last", "index", "count"}, "complete"}``. ``NotFound``
        for an RSM cursor that is not a cached item id.
        """
        if reads.network_only(extra):
            raise ValueError(f"extra[{reads.network_only(extra)!r}] can't be answered from cache")
        args = reads.get_items_args(max_items, item_ids, rsm_request, extra)
        return await self.host.memory.storage.get_items(node, **args)

    async def _answer_from_cache(
        self,
        client: Any,
        service: jid.JID,
        node: PubsubNode,
        max_items: int | None,
        item_ids: list[str] | None,
        sub_id: str | None,
        rsm_request: RSMRequest | None,
        extra: dict[str, Any],
    ) -> tuple[list[domish.Element], dict[str, Any]]:
        """The answer of XEP-0060 ``get_items``, in the shape of the network's.

        Metadata: ``service``, ``node``, ``uri``, and always ``rsm`` and ``complete``
        (what a service paging with RSM gives; Prosody, without RSM, gives neither).
        """
        items, cache_metadata = await self.get_items_from_cache(
            client, node, max_items, item_ids, sub_id, rsm_request, extra
        )
        metadata = {
            "service": service,
            "node": node.name,
            "uri": get_node_uri(service, node.name),
            # as from a service answering with <set/> (cursors are item ids)
            "rsm": cache_metadata["rsm"],
            "complete": cache_metadata["complete"],
        }
        return [item.data for item in items], metadata

    # --- the XEP-0060_getItems trigger ---

    async def _get_items_trigger(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        max_items: int | None,
        item_ids: list[str] | None,
        sub_id: str | None,
        rsm_request: RSMRequest | None,
        extra: dict[str, Any],
    ) -> tuple[bool, Any]:
        """Answer from the cache when the node is synchronised; else prepare it."""
        if not self.use_cache or (extra or {}).get(KEY_USE_CACHE) is False:
            return True, None
        if reads.network_only(extra):
            log.debug("%r requests are not cached: network", reads.network_only(extra))
            return True, None
        reads.get_items_args(max_items, item_ids, rsm_request, extra)  # bad input: raise
        if service is None:
            service = client.jid.userhostJID()
        key = _key(client.profile, service, node)
        try:
            await self.initialised
            storage = self.host.memory.storage
            pubsub_node = await storage.get_pubsub_node(client, service, node)
            if pubsub_node is not None and pubsub_node.sync_state is SyncState.COMPLETED:
                try:
                    return False, await self._answer_from_cache(
                        client,
                        service,
                        pubsub_node,
                        max_items,
                        item_ids,
                        sub_id,
                        rsm_request,
                        extra,
                    )
                except NotFound as e:  # e.g. a cursor given by the service before the sync
                    log.debug("%s: not answerable from cache (%s): network", _label(key), e)
                    return True, None
            if pubsub_node is None or self._wants_sync(key, pubsub_node):
                await self._preparing.run(key, self._prepare, client, service, node)
        except Exception:
            log.exception("pubsub cache failed on %s: the request goes to the network", _label(key))
        return True, None

    def _wants_sync(self, key: Key, node: PubsubNode) -> bool:
        """True when a synchronisation of this known node should start now."""
        state = node.sync_state
        if state is None:
            return True
        if self.syncs.running(key) or state in (SyncState.COMPLETED, SyncState.NO_SYNC):
            return False
        if state is SyncState.IN_PROGRESS:  # not here: interrupted, unless held elsewhere
            return self._holder(node) is None
        failed = self._failed.get(key)
        return failed is None or self.clock.seconds() - failed >= self.error_retry_delay

    async def _prepare(self, client: Any, service: jid.JID, node: str) -> PubsubNode:
        """Analyse and record an unknown node; start its synchronisation when wanted."""
        key = _key(client.profile, service, node)
        storage = self.host.memory.storage
        pubsub_node = await storage.get_pubsub_node(client, service, node)
        if pubsub_node is None:
            analyse = await self.analyse_node(client, service, node)
            pubsub_node = await storage.get_pubsub_node(
                client,
                service,
                node,
                create=True,
                create_kwargs={
                    "analyser": analyse.get("name"),
                    "type_": analyse.get("type"),
                    "subtype": analyse.get("subtype"),
                },
            )
            if not analyse.get("to_sync"):
                log.debug("%s is not to be synchronised", _label(key))
                await storage.update_pubsub_node_sync_state(pubsub_node, SyncState.NO_SYNC)
                return pubsub_node
        elif not self._wants_sync(key, pubsub_node):
            return pubsub_node
        self._start_sync(client, pubsub_node, SYNC_WANTED).addErrback(self._owned_elsewhere)
        return pubsub_node

    @staticmethod
    def _owned_elsewhere(failure: Failure) -> None:
        """Errback: another process synchronises the node (its requests go on as usual)."""
        failure.trap(SyncOwnedElsewhere)
        log.debug("%s", failure.value)

    # --- synchronisation ---

    def _start_sync(
        self, client: Any, node: PubsubNode, states: list[SyncState | None] | None = None
    ) -> defer.Deferred[SyncState | None]:
        """Start (or join) the synchronisation of ``node``; fires with its final state.

        ``states``: synchronise only if the node is (still) in one of them.
        """
        key = _key(client.profile, node.service, node.name)
        return self.syncs.start(key, lambda task: self._sync_attempt(client, node, task, states))

    def cache_node(self, client: Any, pubsub_node: PubsubNode) -> defer.Deferred[Any]:
        """Synchronise ``pubsub_node`` in the background (Libervia's name).

        Returns a Deferred firing with the final state; a running synchronisation of
        the node is joined, never doubled. It fails with ``SyncOwnedElsewhere`` when
        another process (or cache instance) synchronises the node.
        """
        return self._start_sync(client, pubsub_node)

    def sync_progress(self, client: Any, service: jid.JID, node: str) -> dict[str, Any] | None:
        """Progress of the running synchronisation of a node, or None if none runs.

        Keys: ``cached`` (items stored so far), ``total`` (items to cache, None until
        known), ``attempt``, ``started`` (clock time), ``rsm`` (service pages with RSM).
        """
        task = self.syncs.task(_key(client.profile, service, node))
        return None if task is None else task.progress()

    async def sync_holder(self, client: Any, service: jid.JID, node: str) -> dict[str, Any] | None:
        """Who else is synchronising a node (a live lease), or None.

        Keys: ``owner`` (token), ``host``, ``pid``, ``lease_expires`` (epoch seconds),
        ``description`` (for people). None also when this instance synchronises it
        (see :meth:`sync_progress`) or nobody does.
        """
        pubsub_node = await self.host.memory.storage.get_pubsub_node(client, service, node)
        holder = None if pubsub_node is None else self._holder(pubsub_node)
        if holder is None:
            return None
        return dict(holder.as_dict(), description=str(self._owned_error(pubsub_node, holder)))

    def _owned_error(self, node: PubsubNode, holder: Holder) -> SyncOwnedElsewhere:
        profile = self._profile_names().get(node.profile_id, "?")
        return SyncOwnedElsewhere(_label(_key(profile, node.service, node.name)), holder)

    async def _subscribe(self, client: Any, node: PubsubNode, label: str) -> bool:
        """Subscribe to the node (once); False when the service refuses."""
        if node.subscribed:
            return True
        try:
            subscription = await self._p.subscribe(client, jid.JID(node.service), node.name)
        except jabber_error.StanzaError as e:
            log.warning("%s: subscription refused (%s): it can't be kept in sync", label, e)
            return False
        if getattr(subscription, "state", "subscribed") != "subscribed":
            log.warning(
                "%s: subscription is %r, not 'subscribed': it can't be kept in sync",
                label,
                subscription.state,
            )
            return False
        node.subscribed = True
        await self.host.memory.storage.set_pubsub_node(
            client,
            jid.JID(node.service),
            node.name,
            analyser=node.analyser,
            type_=node.type_,
            subtype=node.subtype,
            subscribed=True,
        )
        return True

    async def _fetch(
        self, client: Any, node: PubsubNode, request: dict[str, Any] | None
    ) -> tuple[list[domish.Element], dict[str, Any] | None]:
        """One items request to the service (never the cache)."""
        rsm_request = None
        if request is not None:
            rsm_request = RSMRequest(
                request.get("max"), request.get("after"), request.get("before")
            )
        items, metadata = await self._p.get_items(
            client,
            jid.JID(node.service),
            node.name,
            rsm_request=rsm_request,
            extra=dict(NO_NETWORK),
        )
        return items, metadata.get("rsm")

    async def _write_page(
        self, client: Any, node: PubsubNode, task: SyncTask, items: list[domish.Element]
    ) -> None:
        """Store one page of the synchronisation (unless the node was purged meanwhile)."""
        parsed = await self._parse(client, node, items)
        key = _key(client.profile, node.service, node.name)
        if not (task.purged or task.dropped):
            write = self.host.memory.storage.cache_pubsub_sync_page
            now = self.clock.seconds()
            args = (client, node, items, parsed, self.owner, self.lease, now)
            if not await self._locks.run(key, write, *args):
                raise SyncLeaseLost(f"{_label(key)}: lease lost before a page was written")

    async def _claim(
        self, key: Key, node: PubsubNode, states: list[SyncState | None] | None
    ) -> PubsubNode | None:
        """Own the node's synchronisation (IN_PROGRESS, emptied): None, or raise.

        A node this instance holds (its previous attempt expired) is claimed again: its
        lease renewed. The node as stored, when it is no longer in one of ``states``
        (synchronised meanwhile by another process): there is nothing to do.
        ``SyncOwnedElsewhere`` when another live owner holds it; ``NotFound`` when the
        node is gone. An owner of this host that no longer runs is taken over.
        """
        storage = self.host.memory.storage
        take_from = holder = None
        for _ in range(CLAIM_TRIES):
            args = (node, self.owner, self.lease, self.clock.seconds(), take_from, True, states)
            # state first: a node being emptied is never answered from the cache
            if await self._locks.run(key, storage.claim_pubsub_node_sync, *args):
                return None
            current = await storage.get_pubsub_node(_ProfileClient(key[0]), *_node_id(key))
            if current is None:
                raise NotFound(f"{_label(key)} is gone")
            if states is not None and current.sync_state not in states:
                return current
            holder = self._holder(current, dead_too=True)
            if holder is not None and not lease.owner_gone(holder.owner):
                break
            if holder is not None:
                log.warning("%s: taking it over from %s (gone)", _label(key), holder.describe())
            take_from = None if holder is None else holder.owner  # None: freed meanwhile
        if holder is None:  # changing hands at every try
            holder = Holder(current.sync_owner or "unknown", current.sync_lease_expires)
        raise self._owned_error(current, holder)

    async def _renew(self, key: Key, node: PubsubNode, task: SyncTask) -> None:
        """Heartbeat of a running synchronisation: extend its lease, or stop it if lost."""
        storage = self.host.memory.storage
        try:
            renewed = await storage.renew_pubsub_node_sync(
                node, self.owner, self.lease, self.clock.seconds()
            )
        except Exception as e:  # the next beat tries again
            log.warning("%s: can't renew the synchronisation lease: %s", _label(key), e)
            return
        if not renewed and self.syncs.task(key) is task and not task.stopped:
            log.warning(
                "%s: synchronisation lease lost (taken over, or changed by another "
                "process): stopping",
                _label(key),
            )
            stopping = self.syncs.stop(key)
            if stopping is not None:
                stopping.addErrback(lambda _: None)

    async def _sync_attempt(
        self,
        client: Any,
        node: PubsubNode,
        task: SyncTask,
        states: list[SyncState | None] | None = None,
    ) -> SyncState | None:
        """One attempt at synchronising ``node``; returns the final state (None: dropped).

        ``SyncOwnedElsewhere`` when another process holds the node's synchronisation;
        the node's state when it is no longer in ``states`` (done elsewhere meanwhile);
        IN_PROGRESS when it expired and another attempt follows (the node kept).
        """
        key = _key(client.profile, node.service, node.name)
        log.info("%s: synchronisation starts (attempt %d)", _label(key), task.attempt)
        try:
            done = await self._claim(key, node, states)
        except NotFound:
            return None
        if done is not None:
            log.info("%s: %s meanwhile, nothing to do", _label(key), done.sync_state)
            return done.sync_state
        heartbeat = LoopingCall(self._renew, key, node, task)
        heartbeat.clock = self.clock
        heartbeat.start(self.lease_renewal, now=False)
        try:
            return await self._sync_owned(client, node, task)
        finally:
            heartbeat.stop()

    async def _sync_owned(self, client: Any, node: PubsubNode, task: SyncTask) -> SyncState | None:
        """The attempt, once the node is claimed: subscribe, page, complete."""
        key = _key(client.profile, node.service, node.name)
        label = _label(key)
        try:
            if not await self._subscribe(client, node, label):
                return await self._sync_failed(key, node, SyncState.NO_SYNC)
            pager = Pager(
                task,
                lambda request: self._fetch(client, node, request),
                lambda items: self._write_page(client, node, task, items),
                self.cache_limit,
                self.page_size,
                label,
            )
            await pager.run()
            task.check()
            if task.dropped:
                return None
            await self._locks.run(key, self._complete, key, node, task)
        except RepeatedItemsError as e:
            log.warning("%s can't be cached: %s (please report it to the service)", label, e)
            return await self._sync_failed(key, node, SyncState.NO_SYNC)
        except SyncLeaseLost as e:
            log.warning("%s: stopped: %s", label, e)
            return None
        except Exception as e:
            if task.dropped:
                return None
            if task.stopped or isinstance(e, CONNECTION_ENDED):
                # profile disconnected, host stopping: synchronised again later
                log.info("%s: synchronisation stopped (%s)", label, e)
                if isinstance(e, CONNECTION_ENDED):  # maybe before profile_disconnected
                    self._interrupt(key)
                return await self._sync_failed(key, node, None)
            if task.will_retry:
                # past the deadline: the node is not released, so no other process takes
                # it before the next attempt, whose claim (ours) renews the lease and
                # removes the items written so far
                log.info(
                    "%s: attempt %d cut at its deadline (%s); the node stays claimed for "
                    "the next one",
                    label,
                    task.attempt,
                    e,
                )
                return SyncState.IN_PROGRESS
            expected = isinstance(e, EXPECTED_SYNC_ERRORS)
            log.error("%s: synchronisation failed: %s", label, e, exc_info=not expected)
            return await self._sync_failed(key, node, SyncState.ERROR)
        self._failed.pop(key, None)
        log.info("%s: synchronised (%d items cached)", label, task.cached)
        return SyncState.COMPLETED

    async def _sync_failed(
        self, key: Key, node: PubsubNode, state: SyncState | None
    ) -> SyncState | None:
        """Remove the partial items, record ``state`` and release the node.

        None when the node is no longer this instance's (gone, or taken over).
        """
        storage = self.host.memory.storage
        if state is SyncState.ERROR:
            self._failed[key] = self.clock.seconds()
        release = storage.release_pubsub_node_sync
        try:
            if not await self._locks.run(key, release, node, self.owner, state, True):
                log.info("%s: no longer ours, left as it is", _label(key))
                return None
        except Exception:
            log.exception("%s: can't record the failed synchronisation", _label(key))
        return state

    async def synchronise(
        self, client: Any, service: jid.JID, node: str, resync: bool = True
    ) -> SyncState | None:
        """Synchronise a node now, whatever its analyser says; returns the final state.

        ``resync``: a node already synchronised is fetched again (its items replaced);
        otherwise a COMPLETED node is left as is. A running synchronisation of the node
        is joined (not doubled). The node is subscribed. ``SyncOwnedElsewhere`` (with
        the ``holder``) when another process or cache instance is synchronising it.
        """
        await self.initialised
        key = _key(client.profile, service, node)
        running = self.syncs.join(key)
        if running is not None:
            return await running
        storage = self.host.memory.storage
        pubsub_node = await storage.get_pubsub_node(client, service, node)
        if pubsub_node is not None:
            if not resync and pubsub_node.sync_state is SyncState.COMPLETED:
                return SyncState.COMPLETED
            holder = self._holder(pubsub_node)
            if holder is not None:
                raise self._owned_error(pubsub_node, holder)
        analyse = await self.analyse_node(client, service, node)
        pubsub_node = await storage.set_pubsub_node(
            client,
            service,
            node,
            analyser=analyse.get("name"),
            type_=analyse.get("type"),
            subtype=analyse.get("subtype"),
            subscribed=pubsub_node.subscribed if pubsub_node is not None else False,
        )
        log.info("%s: (re)synchronisation requested", _label(key))
        return await self._start_sync(client, pubsub_node, None if resync else NOT_COMPLETED)

    # --- events ---

    async def _nodes_everywhere(self, service: jid.JID, name: str) -> list[tuple[Key, PubsubNode]]:
        """Every profile's cached copy of a node that follows events."""
        nodes = await self.host.memory.storage.get_pubsub_nodes(services=[service], names=[name])
        names = self._profile_names()
        return [
            (_key(names[n.profile_id], n.service, n.name), n)
            for n in nodes
            if n.sync_state in CACHING_STATES
        ]

    async def on_items_event(self, client: Any, event: Any) -> None:
        """New items are stored (parsed too), retracted ones deleted, for every profile
        caching the node (a profile whose own notification is late, or lost while it
        was offline, is kept up to date too)."""
        await self.initialised
        service, name = event.sender, event.nodeIdentifier
        nodes = await self._nodes_everywhere(service, name)
        if not nodes:
            log.debug("items event for node %r at %s: not cached", name, service.full())
            return
        label = f"items event of node {name!r} at {service.full()}"
        items = self._valid_items([e for e in event.items if e.name == "item"], label)
        retracted = [e.getAttribute("id") for e in event.items if e.name == "retract"]
        retracted = [item_id for item_id in retracted if item_id]
        storage = self.host.memory.storage
        parsed: dict[str | None, list[dict[str, Any] | None]] = {}
        for key, pubsub_node in nodes:
            if items:
                if pubsub_node.analyser not in parsed:
                    parsed[pubsub_node.analyser] = await self._parse(client, pubsub_node, items)
                owner = client if key[0] == client.profile else _ProfileClient(key[0])
                write = storage.cache_pubsub_items
                args = (owner, pubsub_node, items, parsed[pubsub_node.analyser])
                try:
                    await self._change(key, write, *args)
                except NotFound:  # deleted meanwhile (e.g. another profile's event)
                    log.debug("%s: the node is gone", _label(key))
            if retracted:
                await self._change(key, storage.delete_pubsub_items, pubsub_node, retracted)

    async def on_purge_event(self, client: Any, event: Any) -> None:
        """The node was emptied: its cached items are removed, for every profile."""
        await self.initialised
        for key, pubsub_node in await self._nodes_everywhere(event.sender, event.nodeIdentifier):
            log.info("%s purged by its service", _label(key))
            task = self.syncs.task(key)
            if task is not None:
                task.purged = True  # pages fetched before are stale: stop paging
            await self._change(key, self.host.memory.storage.delete_pubsub_items, pubsub_node)

    async def on_delete_event(self, client: Any, event: Any) -> None:
        """The node was deleted: it is dropped from the cache, for every profile."""
        await self.initialised
        service, name = event.sender, event.nodeIdentifier
        for key in [k for k in self.syncs.keys() if k[1:] == (service.full(), name)]:
            stopping = self.syncs.stop(key, dropped=True)
            if stopping is not None:
                await stopping
        deleted = await self.host.memory.storage.delete_pubsub_node(None, [service], [name])
        if deleted:
            log.info("node %r at %s deleted by its service: dropped", name, service.full())

    # --- administration ---

    async def purge(self, purge_filters: dict[str, Any]) -> int:
        """Remove cached items matching every filter; returns how many.

        Filters (all optional): ``services`` (JIDs), ``nodes``, ``types``, ``subtypes``,
        ``profiles`` (lists; None = no filter), ``created_before``, ``updated_before``
        (datetimes). A node that loses items is no longer answered from the cache: its
        sync state is cleared, and it is synchronised again when next requested.
        """
        if not isinstance(purge_filters, dict):
            raise TypeError(f"purge filters must be a dict, got {purge_filters!r}")
        unknown = [k for k in purge_filters if k not in PURGE_FILTERS]
        if unknown:
            raise ValueError(f"unknown purge filter {unknown[0]!r} (known: {PURGE_FILTERS})")
        for name in ("created_before", "updated_before"):
            value = purge_filters.get(name)
            if value is not None and not isinstance(value, datetime):
                raise TypeError(f"{name} must be a datetime, got {value!r}")
        await self.initialised
        storage = self.host.memory.storage
        nodes = await storage.get_pubsub_nodes(
            profiles=purge_filters.get("profiles"),
            services=purge_filters.get("services"),
            names=purge_filters.get("nodes"),
            types=purge_filters.get("types"),
            subtypes=purge_filters.get("subtypes"),
        )
        names = self._profile_names()
        total = 0
        for node in nodes:
            key = _key(names[node.profile_id], node.service, node.name)
            stopping = self.syncs.stop(key, dropped=True)
            if stopping is not None:
                await stopping
            deleted = await self._locks.run(
                key,
                storage.purge_pubsub_items,
                [jid.JID(node.service)],
                [node.name],
                None,
                None,
                [key[0]],
                purge_filters.get("created_before"),
                purge_filters.get("updated_before"),
            )
            if deleted or stopping is not None:
                await storage.update_pubsub_node_sync_state(node, None)
            total += deleted
        log.info("pubsub cache purge: %d items removed from %d nodes", total, len(nodes))
        return total

    async def reset(self) -> None:
        """Remove every cached node and item; the cache fills again as if new."""
        await self.initialised
        await self.syncs.stop_all(dropped=True)
        self._failed.clear()
        await self.host.memory.storage.delete_pubsub_node(None, None, None)
        log.info("pubsub cache reset")

    def search(self, query: dict[str, Any], all_profiles: bool = False) -> defer.Deferred[Any]:
        """Cached items matching ``query`` (the storage's ``search_pubsub_items``).

        ``query["profiles"]`` scopes the search; ``all_profiles=True`` is the explicit
        admin call. Bad queries raise ``ValueError`` naming the culprit.
        """
        return self.host.memory.storage.search_pubsub_items(query, all_profiles=all_profiles)

    async def serialisable_search(
        self, query: dict[str, Any], all_profiles: bool = False
    ) -> list[dict[str, Any]]:
        """:meth:`search` as JSON-serialisable dicts: the parsed data of each item plus
        ``pubsub_service``, ``pubsub_node``, ``pubsub_item`` (item id), ``node_profile``,
        and ``item_payload`` (the item XML) when ``query["with_payload"]`` is true.
        The caller's query is not modified.
        """
        if not isinstance(query, dict):
            raise ValueError(f"the search query must be a dict, got {type(query).__name__}")
        query = dict(query)
        with_payload = bool(query.pop("with_payload", False))
        items = await self.search(query, all_profiles=all_profiles)
        names = self._profile_names()
        results = []
        for item in items:
            data = dict(item.parsed or {})
            data.update(
                pubsub_service=str(item.node.service),
                pubsub_node=item.node.name,
                pubsub_item=item.name,
                node_profile=names.get(item.node.profile_id),
            )
            if with_payload:
                data["item_payload"] = item.data.toXml()
            results.append(data)
        return results


__all__ = ["PLUGIN_INFO", "PubsubCache", "as_pubsub_item"]
