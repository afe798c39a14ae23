"""XEP-0060 Publish-Subscribe plugin, on wokkel's ``PubSubClient``.

Requests (``get_items``, ``publish``, ``retract_items``, ``create_node``…) take the
``client`` first, Libervia style; ``service`` None means the client's own PEP
service (no ``to`` attribute is sent). Every request is an IQ with a timeout
(``client.timeout`` when the host sets it, else :attr:`XEP_0060.timeout`) after
which it fails with ``twisted.internet.defer.TimeoutError``; errors from the
service come back as Twisted ``StanzaError``, except ``item-not-found`` on
``get_items``, which becomes :class:`~sat_storage.exceptions.NotFound`.

``get_items`` checks its arguments once (:func:`~.pubsub_items.check_items_request`)
and consults the ``XEP-0060_getItems`` async return point before any network
request, with Libervia's arguments; their ``extra`` is a copy of the caller's that
carries the checked request (:func:`~.pubsub_items.request_of`). A trigger returning
``(False, (items, metadata))`` answers in its place (the pubsub cache does that).

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
from collections.abc import Callable, Iterable
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest, RSMResponse, find_set
from sat_storage.plugins.pubsub_items import (
    RequestExtra,
    check_items_request,
    get_node_uri,  # noqa: F401  (this module's too)
)
from sat_storage.plugins.pubsub_items import check_jid as _check_jid
from sat_storage.plugins.pubsub_items import check_node as _check_node
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.protocols.jabber.xmlstream import IQ
from twisted.words.xish import domish
from wokkel import data_form, pubsub, shim

from sat_storage.deferreds import as_deferred
from sat_storage.exceptions import NotFound

log = logging.getLogger(__name__)

NS_PUBSUB = pubsub.NS_PUBSUB
NS_PUBSUB_OWNER = pubsub.NS_PUBSUB_OWNER
NS_PUBSUB_EVENT = pubsub.NS_PUBSUB_EVENT
NS_PUBSUB_NODE_CONFIG = pubsub.NS_PUBSUB_NODE_CONFIG
NS_PUBSUB_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"

#: Event kinds of managed nodes, and the keyword of their callback.
EVENT_KINDS = ("items", "delete", "purge")
#: Notifications that are valid but not dispatched (logged at debug level).
IGNORED_EVENTS = ("configuration", "subscription", "collection")

PLUGIN_INFO = {
    "name": "Publish-Subscribe",
    "import_name": "XEP-0060",
    "type": "XEP",
    "modes": ["client", "component"],
    "dependencies": ["XEP-0059"],
    "recommendations": [],
    "main": "XEP_0060",
    "handler": "yes",
    "description": "XEP-0060 Publish-Subscribe: items (with RSM), publishing, nodes, events",
}

EventCallback = Callable[[Any, pubsub.PubSubEvent], Any]


def _submit_form(form_type: str, options: dict[str, Any]) -> data_form.Form:
    """A submit data form of ``form_type`` from ``options`` (bools as "1"/"0")."""
    form = data_form.Form(formType="submit", formNamespace=form_type)
    values = {k: ("1" if v else "0") if isinstance(v, bool) else v for k, v in options.items()}
    form.makeFields(values)
    return form


class XEP_0060:
    """Plugin object (``host.plugins["XEP-0060"]``)."""

    #: Seconds before an unanswered request fails, when the client has no ``timeout``.
    timeout: float = 30.0
    #: What times requests (None: the reactor); tests may put a ``task.Clock`` here.
    clock: IReactorTime | None = None

    def __init__(self, host: Any) -> None:
        self.host = host
        # prefix -> kind -> [(priority, sequence, callback)]
        self._node_cb: dict[str, dict[str, list[tuple[int, int, EventCallback]]]] = {}
        self._sequence = 0

    def get_handler(self, client: Any) -> PubSubClientHandler:
        """The wokkel handler for ``client``; also kept as ``client.pubsub_client``."""
        handler = PubSubClientHandler(self, client)
        client.pubsub_client = handler
        return handler

    # ---- managed nodes

    def add_managed_node(
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

    def remove_managed_node(self, node: str, *callbacks: EventCallback) -> None:
        """Remove ``callbacks`` (every kind) from prefix ``node``; all of them if none given."""
        kinds = self._node_cb.get(node, {})
        for kind in list(kinds):
            kinds[kind] = [e for e in kinds[kind] if callbacks and e[2] not in callbacks]
            if not kinds[kind]:
                del kinds[kind]
        if not kinds:
            self._node_cb.pop(node, None)

    def get_node_callbacks(self, node: str, kind: str) -> list[EventCallback]:
        """Callbacks of ``kind`` whose prefix matches ``node``, in calling order."""
        entries = [
            entry
            for prefix, kinds in self._node_cb.items()
            if node.startswith(prefix)
            for entry in kinds.get(kind, ())
        ]
        entries.sort(key=lambda e: (-e[0], e[1]))
        return [e[2] for e in entries]

    async def dispatch_event(self, client: Any, kind: str, event: pubsub.PubSubEvent) -> None:
        """Run the managed-node callbacks of ``kind`` for ``event``, one after the other."""
        for cb in self.get_node_callbacks(event.nodeIdentifier, kind):
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

    # ---- requests

    @staticmethod
    def _handler(client: Any) -> PubSubClientHandler:
        """The client's pubsub handler; a clear error when it has none."""
        handler = getattr(client, "pubsub_client", None)
        if handler is None or handler.xmlstream is None:
            raise RuntimeError(
                f"profile {getattr(client, 'profile', client)!r} is not connected "
                "(no XEP-0060 handler with a stream)"
            )
        return handler

    def _timeout(self, client: Any) -> float:
        """Seconds to wait for an answer to ``client``'s requests."""
        return getattr(client, "timeout", None) or self.timeout

    def _timed(self, client: Any, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """``d`` (an IQ answer), failing with ``defer.TimeoutError`` when late."""
        clock = self.clock
        if clock is None:
            from twisted.internet import reactor as clock  # the one the application installed
        return d.addTimeout(self._timeout(client), clock)

    def _send(self, client: Any, iq: IQ) -> defer.Deferred[domish.Element]:
        """Send ``iq``; its answer, or ``defer.TimeoutError`` (the IQ is then forgotten)."""
        xs = self._handler(client).xmlstream

        def forget(failure: Failure) -> Failure:
            if failure.check(defer.TimeoutError):
                xs.iqDeferreds.pop(iq["id"], None)
            return failure

        return self._timed(client, iq.send()).addErrback(forget)

    def _iq(
        self, client: Any, type_: str, service: jid.JID | None, ns: str = NS_PUBSUB
    ) -> tuple[IQ, domish.Element]:
        """A new pubsub IQ to ``service`` (None: own PEP) and its ``<pubsub/>`` child."""
        iq = IQ(self._handler(client).xmlstream, type_)
        if service is not None:
            iq["to"] = service.full()
        return iq, iq.addElement((ns, "pubsub"))

    async def get_items(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        max_items: int | None = None,
        item_ids: list[str] | None = None,
        sub_id: str | None = None,
        rsm_request: RSMRequest | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[list[domish.Element], dict[str, Any]]:
        """Items of a node, and metadata about them.

        ``max_items`` is ignored when ``item_ids`` is given (Libervia's rule);
        ``item_ids`` and ``rsm_request`` are exclusive. With ``rsm_request`` the
        page size is its ``max`` (``max_items`` when it has none) and the
        ``max_items`` attribute is not sent; ``<set/>`` goes beside ``<items/>``.

        Returns ``(items, metadata)``: ``items`` are the ``<item/>`` elements as
        the service sent them (servers answer oldest first); ``metadata`` has
        ``service`` (JID; the client's bare JID for PEP), ``node``, ``uri``
        and, when the service answered with a ``<set/>``, ``rsm`` =
        ``{"first", "last", "index", "count"}`` (None for what it did not say)
        and ``complete`` = ``index + len(items) >= count`` (None when index or
        count is unknown). ``RSMResponse(**metadata["rsm"])`` rebuilds the
        response, e.g. for :func:`~sat_storage.plugins.plugin_xep_0059.next_request`.
        """
        request = check_items_request(
            service, node, max_items, item_ids, sub_id, rsm_request, extra
        )
        cont, result = await self.host.trigger.async_return_point(
            "XEP-0060_getItems",
            client,
            service,
            node,
            request.max_items,
            item_ids,
            sub_id,
            rsm_request,
            RequestExtra(request),
        )
        if not cont:
            return result
        items, rsm_response = await self._request_items(
            client, service, node, request.max_items, item_ids, sub_id, rsm_request
        )
        service_jid = service if service is not None else client.jid.userhostJID()
        if rsm_response is None:
            return items, request.metadata(service_jid, None, None)
        index, count = rsm_response.index, rsm_response.count
        complete = None if index is None or count is None else index + len(items) >= count
        return items, request.metadata(service_jid, rsm_response.to_dict(), complete)

    async def _request_items(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        max_items: int | None,
        item_ids: list[str] | None,
        sub_id: str | None,
        rsm_request: RSMRequest | None,
    ) -> tuple[list[domish.Element], RSMResponse | None]:
        """Send the items request; return the ``<item/>`` elements and the RSM answer."""
        iq, pubsub_elt = self._iq(client, "get", service)
        items_elt = pubsub_elt.addElement("items")
        items_elt["node"] = node
        if sub_id:
            items_elt["subid"] = sub_id
        for item_id in item_ids or ():
            items_elt.addElement("item")["id"] = item_id
        if rsm_request is not None:
            if rsm_request.max is None and max_items is not None:
                rsm_request = RSMRequest(
                    max_items, rsm_request.after, rsm_request.before, rsm_request.index
                )
            rsm_request.render(pubsub_elt)
        elif max_items is not None:
            items_elt["max_items"] = str(max_items)
        try:
            answer = await self._send(client, iq)
        except error.StanzaError as e:
            if e.condition == "item-not-found":
                raise NotFound(
                    f"node {node!r} (or the items asked) not found on "
                    f"{service.full() if service else 'own PEP'}"
                ) from e
            raise
        answer_pubsub = next(answer.elements(NS_PUBSUB, "pubsub"), None)
        if answer_pubsub is None:
            log.warning("items answer for node %r has no <pubsub/>: %s", node, answer.toXml())
            return [], None
        answer_items = next(answer_pubsub.elements(NS_PUBSUB, "items"), None)
        items = (
            [] if answer_items is None else [e for e in answer_items.elements(NS_PUBSUB, "item")]
        )
        rsm_response = None
        set_elt = find_set(answer_pubsub)
        if set_elt is not None:
            rsm_response = RSMResponse.from_element(set_elt)
        return items, rsm_response

    async def publish(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        items: Iterable[domish.Element] | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[str]:
        """Publish ``<item/>`` elements, with optional publish-options.

        XEP-0060 puts one item per ``<publish/>`` (ejabberd refuses more,
        Prosody 0.12 keeps only the first), so several items go as one request
        each, all sent at once (pipelined) and answered in order. No item is
        a notification-only publish. If a request fails, the first error is
        raised once all have been answered (the other items may be published).
        Returns the ids of the published items, as the service gave them (or as
        sent, when the service did not say).
        """
        _check_jid("service", service)
        _check_node(node)
        items = list(items or ())
        for item in items:
            if not isinstance(item, domish.Element) or item.name != "item":
                raise TypeError(f"items must be <item/> elements, not {item!r}")
        requests = [
            defer.ensureDeferred(self._publish_one(client, service, node, item, options))
            for item in items or [None]
        ]
        try:
            results = await defer.gatherResults(requests, consumeErrors=True)
        except defer.FirstError as e:
            e.subFailure.raiseException()
        return [item_id for item_id in results if item_id is not None]

    async def _publish_one(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        item: domish.Element | None,
        options: dict[str, Any] | None,
    ) -> str | None:
        """Publish one item (or none); return its id as the service answered it."""
        iq, pubsub_elt = self._iq(client, "set", service)
        publish_elt = pubsub_elt.addElement("publish")
        publish_elt["node"] = node
        if item is not None:
            item.uri = item.defaultUri = NS_PUBSUB
            publish_elt.addChild(item)
        if options:
            options_elt = pubsub_elt.addElement("publish-options")
            options_elt.addChild(_submit_form(NS_PUBSUB_PUBLISH_OPTIONS, options).toElement())
        answer = await self._send(client, iq)
        for pubsub_answer in answer.elements(NS_PUBSUB, "pubsub"):
            for publish_answer in pubsub_answer.elements(NS_PUBSUB, "publish"):
                for item_elt in publish_answer.elements(NS_PUBSUB, "item"):
                    if item_elt.getAttribute("id"):
                        return item_elt["id"]
        return item.getAttribute("id") if item is not None else None

    async def send_items(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        items: Iterable[domish.Element],
        extra: dict[str, Any] | None = None,
    ) -> list[str]:
        """Libervia's name: :meth:`publish` with ``extra["publish_options"]``."""
        options = (extra or {}).get("publish_options")
        return await self.publish(client, service, node, items, options)

    async def send_item(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        payload: domish.Element,
        item_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str | None:
        """Publish one payload in a new ``<item/>``; return its id (None if unknown)."""
        ids = await self.send_items(
            client, service, node, [pubsub.Item(id=item_id, payload=payload)], extra
        )
        return ids[0] if ids else None

    async def retract_items(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        item_ids: Iterable[str],
        notify: bool = True,
    ) -> None:
        """Retract items by id; ``notify`` asks the service to notify subscribers."""
        _check_jid("service", service)
        _check_node(node)
        item_ids = list(item_ids)
        if not item_ids or not all(isinstance(i, str) and i for i in item_ids):
            raise ValueError(f"item_ids must be non-empty strings, got {item_ids!r}")
        iq, pubsub_elt = self._iq(client, "set", service)
        retract_elt = pubsub_elt.addElement("retract")
        retract_elt["node"] = node
        if notify:
            retract_elt["notify"] = "true"
        for item_id in item_ids:
            retract_elt.addElement("item")["id"] = item_id
        await self._send(client, iq)

    async def create_node(
        self,
        client: Any,
        service: jid.JID | None,
        node: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> str:
        """Create a node (None: the service picks a name) with a configuration; return its name."""
        _check_jid("service", service)
        if node is not None:
            _check_node(node)
        if options:
            options = {
                k: ("1" if v else "0") if isinstance(v, bool) else v for k, v in options.items()
            }
        handler = self._handler(client)
        return await self._timed(client, handler.createNode(service, node, options=options or None))

    async def delete_node(self, client: Any, service: jid.JID | None, node: str) -> None:
        """Delete a node."""
        _check_jid("service", service)
        _check_node(node)
        await self._timed(client, self._handler(client).deleteNode(service, node))

    async def purge_node(self, client: Any, service: jid.JID | None, node: str) -> None:
        """Remove every item of a node (owner request)."""
        _check_jid("service", service)
        _check_node(node)
        iq, pubsub_elt = self._iq(client, "set", service, NS_PUBSUB_OWNER)
        pubsub_elt.addElement("purge")["node"] = node
        await self._send(client, iq)

    async def subscribe(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        sub_jid: jid.JID | None = None,
        options: dict[str, Any] | None = None,
    ) -> pubsub.Subscription:
        """Subscribe ``sub_jid`` (default: the client's bare JID) to a node.

        A bare-JID subscriber gets notifications only while it has sent
        available presence (Prosody); subscribe a full JID to avoid that.
        """
        _check_jid("service", service)
        _check_node(node)
        _check_jid("sub_jid", sub_jid)
        subscriber = sub_jid if sub_jid is not None else client.jid.userhostJID()
        handler = self._handler(client)
        request = handler.subscribe(service, node, subscriber, options=options)
        return await self._timed(client, request)

    async def unsubscribe(
        self,
        client: Any,
        service: jid.JID | None,
        node: str,
        sub_jid: jid.JID | None = None,
        sub_id: str | None = None,
    ) -> None:
        """Unsubscribe ``sub_jid`` (default: the client's bare JID) from a node."""
        _check_jid("service", service)
        _check_node(node)
        _check_jid("sub_jid", sub_jid)
        subscriber = sub_jid if sub_jid is not None else client.jid.userhostJID()
        handler = self._handler(client)
        await self._timed(client, handler.unsubscribe(service, node, subscriber, sub_id))

    async def get_configuration(
        self, client: Any, service: jid.JID | None, node: str
    ) -> data_form.Form:
        """The node configuration form (owner request), values type-checked.

        ``form["pubsub#max_items"]`` gives a value; ``form.getValues()`` all of them.
        """
        _check_jid("service", service)
        _check_node(node)
        iq, pubsub_elt = self._iq(client, "get", service, NS_PUBSUB_OWNER)
        pubsub_elt.addElement("configure")["node"] = node
        answer = await self._send(client, iq)
        form = None
        for pubsub_answer in answer.elements(NS_PUBSUB_OWNER, "pubsub"):
            for configure in pubsub_answer.elements(NS_PUBSUB_OWNER, "configure"):
                form = data_form.findForm(configure, NS_PUBSUB_NODE_CONFIG)
        if form is None:
            raise ValueError(f"configuration answer for node {node!r} has no node_config form")
        form.typeCheck()
        return form

    async def set_configuration(
        self, client: Any, service: jid.JID | None, node: str, options: dict[str, Any]
    ) -> None:
        """Change node configuration fields (owner request)."""
        _check_jid("service", service)
        _check_node(node)
        if not options:
            raise ValueError("options must name at least one configuration field")
        iq, pubsub_elt = self._iq(client, "set", service, NS_PUBSUB_OWNER)
        configure = pubsub_elt.addElement("configure")
        configure["node"] = node
        configure.addChild(_submit_form(NS_PUBSUB_NODE_CONFIG, options).toElement())
        await self._send(client, iq)

    async def get_node_subscriptions(
        self, client: Any, service: jid.JID | None, node: str
    ) -> dict[jid.JID, str]:
        """Subscriptions of a node (owner request): ``{subscriber JID: state}``."""
        _check_jid("service", service)
        _check_node(node)
        iq, pubsub_elt = self._iq(client, "get", service, NS_PUBSUB_OWNER)
        pubsub_elt.addElement("subscriptions")["node"] = node
        answer = await self._send(client, iq)
        subscriptions: dict[jid.JID, str] = {}
        for pubsub_answer in answer.elements(NS_PUBSUB_OWNER, "pubsub"):
            for subs in pubsub_answer.elements(NS_PUBSUB_OWNER, "subscriptions"):
                for sub in subs.elements(NS_PUBSUB_OWNER, "subscription"):
                    try:
                        subscriptions[jid.JID(sub["jid"])] = sub["subscription"]
                    except (KeyError, jid.InvalidFormat) as e:
                        log.warning("ignoring malformed subscription %s: %r", sub.toXml(), e)
        return subscriptions


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
