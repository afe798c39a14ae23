"""The cache answers as the service does (DESIGN §7a): the hooks of the event and read
paths that need the service's behaviour.

- events (:meth:`Transparency.complete_items`, :meth:`learn_order`, :meth:`evict`):
  payload-less notifications completed from the service (:mod:`.notifications`),
  the service's order of republished items learnt (:mod:`.service_order`), no more
  items kept than the service's ``max_items`` (:mod:`.hints`);
- reads (:meth:`storage_args`, :meth:`reorder`): the service's order for requests
  without ``order_by``, RSM ignored where the service ignores it, ``item_ids``
  answers in the service's order (learnt once, with one request to the network);
  requests services answer differently go to the network (:meth:`unanswerable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sat_storage.plugins.pubsub_cache import LOGGER, hints, notifications, service_order
from sat_storage.plugins.pubsub_cache.freshness import EXTRA_RSM
from sat_storage.plugins.pubsub_cache.keys import NodeKey
from sat_storage.plugins.pubsub_items import ItemsRequest, get_items_args, order_by
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage.deferreds import KeyedLock
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.xml_tools import to_xml

log = logging.getLogger(f"{LOGGER}.transparency")

NO_NETWORK = {"use_cache": False}
#: newest items asked to learn how a service orders republished items
ORDER_PROBE = 10


class Transparency:
    """What makes the cache's answers the service's."""

    def __init__(self, storage: Any, xep_0060: Any, locks: KeyedLock, cache_limit: int) -> None:
        self.storage = storage
        self.xep_0060 = xep_0060
        self.locks = locks
        self.cache_limit = cache_limit

    # --- events ---

    async def complete_items(
        self,
        client: Any,
        service: jid.JID,
        name: str,
        items: list[domish.Element],
        nodes: list[tuple[NodeKey, PubsubNode]],
    ) -> tuple[list[domish.Element], list[str]] | None:
        """``items`` with their payloads (asked to the service for those notified
        without), and the ids the service no longer has; None when it can't be told
        (the ``nodes`` are then synchronised again at their next request)."""
        if not notifications.without_payload(items):
            return items, []

        async def fetch(ids: list[str]) -> list[domish.Element]:
            found, _ = await self.xep_0060.get_items(
                client, service, name, item_ids=ids, extra=dict(NO_NETWORK)
            )
            return found

        try:
            return await notifications.fill_payloads(items, fetch)
        except Exception as e:
            log.warning("node %r: can't fetch the items notified without payload (%s)", name, e)
            for key, node in nodes:
                await self.invalidate(key, node)
            return None

    async def invalidate(self, key: NodeKey, node: PubsubNode) -> None:
        """The node's cache can't be kept in step: synchronised again when next asked."""
        try:
            await self.locks.run(key, self.storage.update_pubsub_node_sync_state, node, None)
        except NotFound:
            pass

    async def learn_order(
        self, client: Any, key: NodeKey, node: PubsubNode, items: list[domish.Element]
    ) -> None:
        """Learn how the service orders republished items, when a notification names a
        known item that is not the newest, edited or not (one request for its newest
        items, once): Prosody moves an item published again even unchanged, ejabberd
        re-sends its last published item to a new subscriber and keeps it in place."""
        if service_order.policy_of(node) is not None:
            return
        ids = [item["id"] for item in items]
        known, _ = await self.storage.get_items(node, item_ids=ids)
        newest, _ = await self.storage.get_items(node, max_items=1, order_by=["creation"])
        edited = [i.name for i in known if newest and newest[0].name != i.name]
        if not edited:
            return
        try:
            answer, _ = await self.xep_0060.get_items(
                client, key.service_jid, node.name, ORDER_PROBE, extra=dict(NO_NETWORK)
            )
        except Exception as e:
            log.info("%s: can't tell how its service orders items (%s)", key.label, e)
            return
        answer_ids = [item.getAttribute("id") for item in answer]
        policy = service_order.decide(edited[-1], newest[0].name, answer_ids)
        if policy is None:
            await self.invalidate(key, node)  # can't tell where the item is: resync
            return
        log.info("%s: its service orders republished items: %s", key.label, policy)
        await self.storage.update_pubsub_node_extra(node, {service_order.EXTRA_REPUBLISH: policy})

    async def moved_items(self, node: PubsubNode, items: list[domish.Element]) -> list[str]:
        """Ids of the known ``items`` of a notification to write anew at the end.

        On a node whose service moves a republished item to the end (``move``), an
        item notified unchanged that is not the newest was moved by the service, but
        the upsert leaves it (and its modification time) as it is; then every known
        item of the notification is written anew, after the others in its order.
        Empty otherwise (the upsert is right)."""
        if service_order.policy_of(node) != service_order.MOVE:
            return []
        texts = {item["id"]: to_xml(item) for item in items}
        known, _ = await self.storage.get_items(node, item_ids=list(texts))
        newest, _ = await self.storage.get_items(node, max_items=1, order_by=["modification"])
        newest_name = newest[0].name if newest else None
        if any(to_xml(i.data) == texts[i.name] and i.name != newest_name for i in known):
            return [i.name for i in known]
        return []

    async def evict(self, key: NodeKey, node: PubsubNode, change: Callable[..., Any]) -> None:
        """Keep no more items than the service does (its max_items): the oldest, in the
        service's order, go first (``change``: the writer's ordered change)."""
        if hints.EXTRA_MAX_ITEMS not in (node.extra or {}):
            return
        _, metadata = await self.storage.get_items(node, max_items=0)
        excess = metadata["rsm"]["count"] - hints.limit(node, self.cache_limit)
        if excess > 0:
            order = service_order.default_order(node)
            oldest, _ = await self.storage.get_items(
                node, max_items=excess, order_by=order, desc=False
            )
            await change(key, self.storage.delete_pubsub_items, node, [i.name for i in oldest])

    # --- reads ---

    @staticmethod
    def unanswerable(request: ItemsRequest) -> str | None:
        """Why the cache can't know the service's answer to ``request`` (None when it
        can): services answer these differently, so they go to the network.

        - ``max_items=0`` without RSM: Prosody gives its newest item, ejabberd none
          (RSM ``max=0``, the count alone, is answered);
        - ``item_ids`` naming an id twice: Prosody gives the item twice, ejabberd once.
        """
        if request.max_items == 0 and request.rsm_request is None and not request.item_ids:
            return "max_items=0 without RSM"
        if request.item_ids and len(set(request.item_ids)) < len(request.item_ids):
            return "an item id asked twice"
        return None

    @staticmethod
    def storage_args(
        node: PubsubNode,
        max_items: int | None,
        item_ids: list[str] | None,
        rsm_request: Any,
        extra: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The storage's ``get_items`` arguments of a request, as the service answers."""
        if rsm_request is not None and (node.extra or {}).get(EXTRA_RSM) is False:
            # the service ignores RSM (Prosody): it answers with every item, so does the cache
            rsm_request = max_items = None
        args = get_items_args(max_items, item_ids, rsm_request, extra)
        if args["order_by"] is None:
            args["order_by"] = service_order.default_order(node)
        return args

    @staticmethod
    def first_read(request: ItemsRequest, known: list[str] | None = None) -> ItemsRequest:
        """The request read with the node (one transaction): in the service's order
        when it asks for none, as far as ``known`` tells it (the node's
        :func:`~.service_order.default_order` when last read; None: creation order);
        its checked query is reused."""
        if order_by(request.extra) is not None:
            return request
        return request.in_order(known or ["creation"])

    @staticmethod
    def first_read_fits(node: PubsubNode, request: ItemsRequest, read: ItemsRequest) -> bool:
        """True when the page read for ``read`` (:meth:`first_read` of ``request``) is
        the service's answer for ``node`` (as just read with it)."""
        if order_by(request.extra) is not None:
            return True
        if order_by(read.extra) != service_order.default_order(node):
            return False
        if request.rsm_request is not None and (node.extra or {}).get(EXTRA_RSM) is False:
            return False
        by_request = service_order.item_ids_order(node) == service_order.BY_REQUEST
        return not (request.item_ids and by_request)

    @staticmethod
    def reorder(
        node: PubsubNode,
        items: list[PubsubItem],
        metadata: dict[str, Any],
        item_ids: list[str] | None,
        extra: dict[str, Any] | None,
    ) -> list[PubsubItem]:
        """``items`` of an ``item_ids`` request in the service's order of such answers."""
        if not item_ids or order_by(extra) is not None:
            return items
        if service_order.item_ids_order(node) != service_order.BY_REQUEST:
            return items
        names = [item.name for item in items]
        items = [items[i] for i in service_order.in_request_order(names, item_ids)]
        if items:
            metadata["rsm"].update(first=items[0].name, last=items[-1].name)
        return items

    async def item_ids_from_service(
        self,
        client: Any,
        service: jid.JID,
        node: PubsubNode,
        names: list[str],
        request: tuple[Any, ...],
        extra: dict[str, Any],
    ) -> tuple[list[domish.Element], dict[str, Any]] | None:
        """The service's answer to an ``item_ids`` request whose order of answer is
        not known yet (kept for the next ones); None when the orders agree anyway.

        ``request``: (max_items, item_ids, sub_id, rsm_request).
        """
        item_ids = request[1]
        if (
            not item_ids
            or order_by(extra) is not None
            or service_order.item_ids_order(node) is not None
            or service_order.in_request_order(names, item_ids) == list(range(len(names)))
        ):
            return None
        try:
            answer = await self.xep_0060.get_items(
                client, service, node.name, *request, extra=dict(extra, **NO_NETWORK)
            )
        except Exception as e:  # not learnt this time: the cache's answer
            log.info("node %r: can't ask its order of item_ids answers (%s)", node.name, e)
            return None
        got = [item.getAttribute("id") for item in answer[0]]
        learnt = service_order.learn_item_ids_order(item_ids, names, got)
        if learnt is not None:
            await self.storage.update_pubsub_node_extra(
                node, {service_order.EXTRA_ITEM_IDS: learnt}
            )
        return answer


__all__ = ["Transparency"]
