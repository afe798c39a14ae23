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


@dataclass(frozen=True)
class KnownItem:
    """An item of the service known to equal the cached one (its stored text): it is
    parsed only if it has to be written again."""

    id: str
    xml: str


#: an item of the service as :func:`read_service` gives it
ServiceItem = domish.Element | KnownItem


def item_id(item: ServiceItem) -> str:
    return item.id if isinstance(item, KnownItem) else item["id"]


def item_xml(item: ServiceItem) -> str:
    return item.xml if isinstance(item, KnownItem) else to_xml(item)


def element(item: ServiceItem) -> domish.Element:
    """The item as an element (a known one parsed from its cached text)."""
    if not isinstance(item, KnownItem):
        return item
    parsed = parse_xml(item.xml)
    if parsed.getAttribute("id") != item.id:
        raise ValueError(f"cached item {item.id!r} holds another id")
    return parsed


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


def plan(cached: list[tuple[str, str]], service: list[ServiceItem], policy: str | None) -> Plan:
    """The changes turning ``cached`` ((id, XML text) in the cache's order) into
    ``service`` (its items, in its order).

    The longest start of the service's list that the cache holds in the same order
    (skipping the cached items the service moved further on) stays where it is, its
    edited items rewritten in place (not on a ``move`` service, where an edited item
    has moved); every other item of the service is written again at the end, in its
    order. So an item republished on a ``move`` service costs one removal and one
    write, not the rewriting of everything after its old place.
    """
    listed = {item_id(item): item for item in service}
    texts = {name: item_xml(item) for name, item in listed.items()}
    result = Plan(removed=[name for name, _ in cached if name not in listed])
    kept = [(name, xml) for name, xml in cached if name in listed]
    edited = {name for name, xml in kept if texts[name] != xml}
    if policy is None:
        policy = result.policy = service_order.learn_from_listing(
            [name for name, _ in cached], edited, list(listed)
        )
    start = position = 0
    for item in service:
        name = item_id(item)
        if policy == service_order.MOVE and name in edited:
            break
        while position < len(kept) and kept[position][0] != name:
            position += 1  # a cached item the service has further on: it moved
        if position == len(kept):
            break
        position += 1
        if name in edited:
            result.changed.append(element(item))
        start += 1
    staying = {item_id(item) for item in service[:start]}
    result.removed += [name for name, _ in kept if name not in staying]
    result.appended = [element(item) for item in service[start:]]
    return result


async def read_service(
    fetch: Fetch,
    item_ids: ItemIds,
    cached: list[tuple[str, str]],
    policy: str | None,
    rsm: bool,
    page_size: int,
    limit: int,
) -> list[ServiceItem]:
    """The service's items (at most the newest ``limit``), in its order; the cheapest
    correct way for its ``policy``. ``NotFound`` when the node is gone. Items found
    equal to the cache's without being fetched are :class:`KnownItem`."""
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
) -> list[ServiceItem] | None:
    """The node rebuilt from its newest items and id list; None to read it all."""
    ids = await item_ids()
    present = set(ids)
    known = dict(cached)
    size = page_size
    tail: list[ServiceItem] = []
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
    return [KnownItem(name, known[name]) for name in rest] + tail


__all__ = ["KnownItem", "Plan", "ServiceItem", "element", "plan", "read_service"]
