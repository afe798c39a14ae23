"""Bringing a cached node back in step with its service (after downtime).

Events published while the host was stopped or its connection down are lost, so a
COMPLETED node is compared with the service before the cache answers for it again.
The cheapest correct reading depends on how the service orders republished items
(:mod:`.service_order`):

- ``move`` (Prosody): every item published or edited since the node was last in step
  is at the end. The item list (disco#items, one request) gives the retractions;
  the newest items are fetched, doubling the page, until the oldest fetched one is
  known and unchanged ("known ground"): the rest of the node is what the cache has.
- ``keep`` (ejabberd) or unknown: an edited item stays in the middle of the node,
  where newest pages never reach, so the whole node is read (RSM pages, or one
  request without RSM) and compared.

The comparison (:func:`plan`) then changes only what differs: edited items in place,
retracted ones removed, and from the first item out of order on, the items are
written again in the service's order. A node the service no longer has
(item-not-found) is reported deleted; an empty one, purged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sat_storage.plugins.pubsub_cache import service_order
from twisted.words.xish import domish

from sat_storage.xml_tools import parse_xml, to_xml

#: ``fetch(max_items, rsm)``: one items request -> (items, RSM answer or None)
Fetch = Callable[[int | None, dict[str, Any] | None], Awaitable[tuple[list[domish.Element], Any]]]
#: ``item_ids()``: the ids of the node's items (disco#items)
ItemIds = Callable[[], Awaitable[list[str]]]


@dataclass
class Plan:
    """What to change in the cache so that it equals the service."""

    changed: list[domish.Element] = field(default_factory=list)  # rewritten in place
    removed: list[str] = field(default_factory=list)
    appended: list[domish.Element] = field(default_factory=list)  # after the rest, in order
    #: the service's policy, when the listing showed it
    policy: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.changed or self.removed or self.appended)


def plan(cached: list[tuple[str, str]], service: list[domish.Element], policy: str | None) -> Plan:
    """The changes turning ``cached`` ((id, XML text) in the cache's order) into
    ``service`` (its items, in its order)."""
    listed = {item["id"]: item for item in service}
    texts = {item_id: to_xml(item) for item_id, item in listed.items()}
    result = Plan(removed=[item_id for item_id, _ in cached if item_id not in listed])
    kept = [(item_id, xml) for item_id, xml in cached if item_id in listed]
    edited = {item_id for item_id, xml in kept if texts[item_id] != xml}
    if policy is None:
        policy = result.policy = service_order.learn_from_listing(
            [item_id for item_id, _ in cached], edited, list(listed)
        )
    start = 0
    for (item_id, _), item in zip(kept, service, strict=False):
        same_place = item_id == item["id"]
        if not same_place or (policy == service_order.MOVE and item_id in edited):
            break
        if item_id in edited:
            result.changed.append(item)
        start += 1
    result.removed += [item_id for item_id, _ in kept[start:]]
    result.appended = service[start:]
    return result


async def read_service(
    fetch: Fetch,
    item_ids: ItemIds,
    cached: list[tuple[str, str]],
    policy: str | None,
    rsm: bool,
    page_size: int,
    limit: int,
) -> list[domish.Element]:
    """The service's items (at most the newest ``limit``), in its order; the cheapest
    correct way for its ``policy``. ``NotFound`` when the node is gone."""
    if policy == service_order.MOVE:
        tail = await _read_tail(fetch, item_ids, cached, rsm, page_size)
        if tail is not None:
            return tail[-limit:]
    return (await _read_all(fetch, rsm, page_size))[-limit:]


async def _read_all(fetch: Fetch, rsm: bool, page_size: int) -> list[domish.Element]:
    if not rsm:
        items, _ = await fetch(None, None)
        return items
    items, answer = await fetch(None, {"max": page_size})
    while answer and answer.get("last") and len(items) < (answer.get("count") or 0):
        page, answer = await fetch(None, {"max": page_size, "after": answer["last"]})
        if not page:
            break
        items += page
    return items


async def _read_tail(
    fetch: Fetch, item_ids: ItemIds, cached: list[tuple[str, str]], rsm: bool, page_size: int
) -> list[domish.Element] | None:
    """The node rebuilt from its newest items and id list; None to read it all."""
    ids = await item_ids()
    present = set(ids)
    known = dict(cached)
    size = page_size
    tail: list[domish.Element] = []
    cursor = ""
    while True:
        if rsm:
            page, answer = await fetch(None, {"max": page_size, "before": cursor})
            tail = page + tail
            cursor = (answer or {}).get("first")
        else:
            tail, _ = await fetch(size, None)
            size *= 2
        if len(tail) >= len(present) or not tail:
            return tail
        first = tail[0]
        if known.get(first["id"]) == to_xml(first):  # known ground
            break
        if rsm and not cursor:
            return None
    in_tail = {item["id"] for item in tail}
    rest = [item_id for item_id, _ in cached if item_id in present and item_id not in in_tail]
    if set(rest) | in_tail != present:  # an unknown item before the tail: read it all
        return None
    return [_item(item_id, known[item_id]) for item_id in rest] + tail


def _item(item_id: str, xml: str) -> domish.Element:
    element = parse_xml(xml)
    if element.getAttribute("id") != item_id:
        raise ValueError(f"cached item {item_id!r} holds another id")
    return element


__all__ = ["Plan", "plan", "read_service"]
