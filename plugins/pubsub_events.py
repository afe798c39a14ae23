"""Pubsub notifications: managed nodes and the per-client handler of the XEP-0060 plugin.

Managed nodes: :meth:`XEP_0060.add_managed_node` registers callbacks for the
events of every node whose name starts with a prefix (``""`` = all nodes):
``items_cb(client, event)`` gets a :class:`wokkel.pubsub.ItemsEvent` whose
``items`` are the ``<item/>`` and ``<retract/>`` elements of the notification,
``delete_cb(client, event)`` a :class:`wokkel.pubsub.DeleteEvent`,
``purge_cb(client, event)`` a :class:`wokkel.pubsub.PurgeEvent`. Callbacks may
be plain functions, coroutine functions or return Deferreds; for one client,
events are dispatched one at a time in arrival order, and the callbacks of an
event run one after the other by priority (highest first, then registration
order); a failing callback is logged and does not stop the others.

Malformed notifications (no ``from``, an ``<event/>`` without a known action, an
action without ``node``, an ``<item/>``/``<retract/>`` without ``id``, an
unknown child in ``<items/>``) are logged as warnings and ignored as a whole,
so that a half-understood event is never half-applied.
"""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (must run before any wokkel import)

# isort: split
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish
from wokkel import pubsub, shim

from sat_storage.deferreds import as_deferred

if TYPE_CHECKING:
    from sat_storage.plugins.plugin_xep_0060 import XEP_0060

#: a child of the plugin's logger, so that its logging configuration covers events too
log = logging.getLogger("sat_storage.plugins.plugin_xep_0060.events")

NS_PUBSUB_EVENT = pubsub.NS_PUBSUB_EVENT
#: Event kinds of managed nodes, and the keyword of their callback.
EVENT_KINDS = ("items", "delete", "purge")
#: Notifications that are valid but not dispatched (logged at debug level).
IGNORED_EVENTS = ("configuration", "subscription", "collection")

EventCallback = Callable[[Any, pubsub.PubSubEvent], Any]


class ManagedNodes:
    """Callbacks for the events of nodes, by node-name prefix."""

    def __init__(self) -> None:
        # prefix -> kind -> [(priority, sequence, callback)]
        self._node_cb: dict[str, dict[str, list[tuple[int, int, EventCallback]]]] = {}
        self._sequence = 0

    def add(
        self,
        node: str,
        items_cb: EventCallback | None = None,
        delete_cb: EventCallback | None = None,
        purge_cb: EventCallback | None = None,
        priority: int = 0,
    ) -> None:
        """Call the given callbacks for events of every node whose name starts with ``node``.

        ``""`` matches every node; several callbacks may be registered per prefix.
        """
        if not isinstance(node, str):
            raise TypeError(f"node prefix must be a str, not {node!r}")
        given = {"items": items_cb, "delete": delete_cb, "purge": purge_cb}
        if all(cb is None for cb in given.values()):
            raise ValueError("add_managed_node needs at least one of items_cb, delete_cb, purge_cb")
        for kind, cb in given.items():
            if cb is None:
                continue
            if not callable(cb):
                raise TypeError(f"{kind}_cb must be callable, not {cb!r}")
            self._sequence += 1
            self._node_cb.setdefault(node, {}).setdefault(kind, []).append(
                (priority, self._sequence, cb)
            )

    def remove(self, node: str, *callbacks: EventCallback) -> None:
        """Remove ``callbacks`` (every kind) from prefix ``node``; all of them if none given."""
        kinds = self._node_cb.get(node, {})
        for kind in list(kinds):
            kinds[kind] = [e for e in kinds[kind] if callbacks and e[2] not in callbacks]
            if not kinds[kind]:
                del kinds[kind]
        if not kinds:
            self._node_cb.pop(node, None)

    def callbacks(self, node: str, kind: str) -> list[EventCallback]:
        """Callbacks of ``kind`` whose prefix matches ``node``, in calling order."""
        entries = [
            entry
            for prefix, kinds in self._node_cb.items()
            if node.startswith(prefix)
            for entry in kinds.get(kind, ())
        ]
        entries.sort(key=lambda e: (-e[0], e[1]))
        return [e[2] for e in entries]

    async def dispatch(self, client: Any, kind: str, event: pubsub.PubSubEvent) -> None:
        """Run the managed-node callbacks of ``kind`` for ``event``, one after the other."""
        for cb in self.callbacks(event.nodeIdentifier, kind):
            try:
                await as_deferred(cb, client, event)
            except Exception:
                log.exception(
                    "%s callback %r failed on node %r of %s",
                    kind,
                    cb,
                    event.nodeIdentifier,
                    event.sender.full(),
                )


class PubSubClientHandler(pubsub.PubSubClient):
    """Per-client wokkel handler: validates notifications and dispatches them.

    Events of one client are dispatched one at a time, in arrival order
    (:attr:`last_dispatch` is their chain: it fires once all received so far are done).
    """

    def __init__(self, plugin: XEP_0060, client: Any) -> None:
        super().__init__()
        self.plugin = plugin
        self.client = client
        self.last_dispatch: defer.Deferred[None] = defer.succeed(None)

    def connectionInitialized(self) -> None:
        """Observe event messages with our own validating parser (not wokkel's)."""
        self.xmlstream.addObserver(
            f'/message/event[@xmlns="{NS_PUBSUB_EVENT}"]', self.on_event_message
        )

    def on_event_message(self, message: domish.Element) -> None:
        """Parse a notification; dispatch it, or log and ignore it when malformed."""
        if message.getAttribute("type") == "error":
            return
        try:
            event = self._parse_event(message)
        except ValueError as e:
            log.warning("ignoring malformed pubsub event (%s): %s", e, message.toXml())
            return
        message.handled = True
        if event is None:
            return
        kind, parsed = event

        def run(_: object) -> defer.Deferred[None]:
            return defer.ensureDeferred(self.plugin.dispatch_event(self.client, kind, parsed))

        def failed(failure: Failure) -> None:  # dispatch_event logs callback errors itself
            log.error("dispatch of a pubsub %s event failed: %s", kind, failure.getTraceback())

        self.last_dispatch.addCallback(run).addErrback(failed)

    def _parse_event(self, message: domish.Element) -> tuple[str, pubsub.PubSubEvent] | None:
        """``(kind, event)`` of a notification; None if valid but not dispatched.

        Raises ValueError naming what is malformed.
        """
        try:
            sender = jid.JID(message["from"])
        except KeyError:
            raise ValueError("no 'from'") from None
        except jid.InvalidFormat as e:
            raise ValueError(f"invalid 'from' ({e})") from None
        try:
            recipient = jid.JID(message["to"]) if message.hasAttribute("to") else self.client.jid
        except jid.InvalidFormat as e:
            raise ValueError(f"invalid 'to' ({e})") from None
        event_elt = next(message.elements(NS_PUBSUB_EVENT, "event"))
        actions = [c for c in event_elt.elements() if c.uri == NS_PUBSUB_EVENT]
        if len(actions) != 1:
            names = [f"<{c.name}/>" for c in event_elt.elements()]
            raise ValueError(f"<event/> must hold exactly one action, got {names or 'none'}")
        action = actions[0]
        if action.name in IGNORED_EVENTS:
            log.debug("pubsub %s notification from %s not handled", action.name, sender.full())
            return None
        if action.name not in EVENT_KINDS:
            raise ValueError(f"unknown event child <{action.name}/>")
        node = action.getAttribute("node")
        if not node:
            raise ValueError(f"<{action.name}/> without node")
        headers = shim.extractHeaders(message)
        if action.name == "items":
            items = list(action.elements())
            for item in items:
                if item.uri != NS_PUBSUB_EVENT or item.name not in ("item", "retract"):
                    raise ValueError(f"unknown child <{item.name}/> in <items/> of node {node!r}")
                if not item.getAttribute("id"):
                    raise ValueError(f"<{item.name}/> without id in node {node!r}")
            return "items", pubsub.ItemsEvent(sender, recipient, node, items, headers)
        if action.name == "delete":
            event = pubsub.DeleteEvent(sender, recipient, node, headers)
            redirect = next(action.elements(NS_PUBSUB_EVENT, "redirect"), None)
            if redirect is not None:
                event.redirectURI = redirect.getAttribute("uri")
            return "delete", event
        return "purge", pubsub.PurgeEvent(sender, recipient, node, headers)


__all__ = ["EVENT_KINDS", "IGNORED_EVENTS", "EventCallback", "ManagedNodes", "PubSubClientHandler"]
