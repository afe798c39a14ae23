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

``publish``, ``retract_items``, ``purge_node`` and ``delete_node`` run the
``XEP-0060_writing``/``XEP-0060_written`` triggers around their request
(:mod:`.pubsub_writes`: the pubsub cache reads its own writes).

Managed nodes and notifications: :mod:`.pubsub_events` (:meth:`XEP_0060.add_managed_node`).
This module is a little over 500 lines: one short method per XEP-0060 request, the
parts that grow (items, events, writes) being in the modules above.
"""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (must run before any wokkel import)

# isort: split
import logging
from collections.abc import Iterable
from typing import Any

from sat_storage.plugins.plugin_xep_0059 import RSMRequest, RSMResponse, find_set
from sat_storage.plugins.pubsub_events import (  # EVENT_KINDS, IGNORED_EVENTS: this module's too
    EVENT_KINDS,  # noqa: F401
    IGNORED_EVENTS,  # noqa: F401
    EventCallback,
    ManagedNodes,
    PubSubClientHandler,
)
from sat_storage.plugins.pubsub_items import (
    RequestExtra,
    check_items_request,
    get_node_uri,  # noqa: F401  (this module's too)
)
from sat_storage.plugins.pubsub_items import check_jid as _check_jid
from sat_storage.plugins.pubsub_items import check_node as _check_node
from sat_storage.plugins.pubsub_writes import PubsubWrite, run_write
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.protocols.jabber.xmlstream import IQ
from twisted.words.xish import domish
from wokkel import data_form, pubsub

from sat_storage.exceptions import NotFound

log = logging.getLogger(__name__)

NS_PUBSUB = pubsub.NS_PUBSUB
NS_PUBSUB_OWNER = pubsub.NS_PUBSUB_OWNER
NS_PUBSUB_EVENT = pubsub.NS_PUBSUB_EVENT
NS_PUBSUB_NODE_CONFIG = pubsub.NS_PUBSUB_NODE_CONFIG
NS_PUBSUB_PUBLISH_OPTIONS = NS_PUBSUB + "#publish-options"


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
        #: callbacks of the managed nodes (``add_managed_node``)
        self.managed_nodes = ManagedNodes()

    def get_handler(self, client: Any) -> PubSubClientHandler:
        """The wokkel handler for ``client``; also kept as ``client.pubsub_client``."""
        handler = PubSubClientHandler(self, client)
        client.pubsub_client = handler
        return handler

    # ---- managed nodes (pubsub_events.ManagedNodes)

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
        self.managed_nodes.add(node, items_cb, delete_cb, purge_cb, priority)

    def remove_managed_node(self, node: str, *callbacks: EventCallback) -> None:
        """Remove ``callbacks`` (every kind) from prefix ``node``; all of them if none given."""
        self.managed_nodes.remove(node, *callbacks)

    def get_node_callbacks(self, node: str, kind: str) -> list[EventCallback]:
        """Callbacks of ``kind`` whose prefix matches ``node``, in calling order."""
        return self.managed_nodes.callbacks(node, kind)

    async def dispatch_event(self, client: Any, kind: str, event: pubsub.PubSubEvent) -> None:
        """Run the managed-node callbacks of ``kind`` for ``event``, one after the other."""
        await self.managed_nodes.dispatch(client, kind, event)

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

    def _write(
        self, client: Any, service: jid.JID | None, node: str, write: PubsubWrite, send: Any
    ) -> Any:
        """``send()`` a change of the node, with the write triggers around it."""
        return run_write(self.host.trigger, client, service, node, write, send)

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
        write = PubsubWrite("publish", [item.getAttribute("id") for item in items])

        async def send() -> list[str]:
            requests = [
                defer.ensureDeferred(self._publish_one(client, service, node, item, options))
                for item in items or [None]
            ]
            try:
                results = await defer.gatherResults(requests, consumeErrors=True)
            except defer.FirstError as e:
                e.subFailure.raiseException()
            return [item_id for item_id in results if item_id is not None]

        return await self._write(client, service, node, write, send)

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
        write = PubsubWrite("retract", list(item_ids), notify=notify)
        await self._write(client, service, node, write, lambda: self._send(client, iq))

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
        write = PubsubWrite("delete")

        def send() -> defer.Deferred[None]:
            return self._timed(client, self._handler(client).deleteNode(service, node))

        await self._write(client, service, node, write, send)

    async def purge_node(self, client: Any, service: jid.JID | None, node: str) -> None:
        """Remove every item of a node (owner request)."""
        _check_jid("service", service)
        _check_node(node)
        iq, pubsub_elt = self._iq(client, "set", service, NS_PUBSUB_OWNER)
        pubsub_elt.addElement("purge")["node"] = node
        write = PubsubWrite("purge")
        await self._write(client, service, node, write, lambda: self._send(client, iq))

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
