"""Item notifications without payload (``pubsub#deliver_payloads = 0``, or any
``<item id='…'/>`` alone): they mean "this item changed", never "store an empty item".

The items are asked to the service by id (one request for the notification) and
stored as it gives them; an id it no longer has was retracted meanwhile. When the
request fails, the caller invalidates the node (synchronised again when next asked).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.words.xish import domish

#: ``fetch(ids)``: the service's items of those ids
FetchByIds = Callable[[list[str]], Awaitable[list[domish.Element]]]


def without_payload(items: list[domish.Element]) -> list[str]:
    """Ids of the ``items`` that carry no payload (no child element)."""
    return [item["id"] for item in items if item.firstChildElement() is None]


async def fill_payloads(
    items: list[domish.Element], fetch: FetchByIds
) -> tuple[list[domish.Element], list[str]]:
    """``items`` with each payload-less one replaced by the service's copy; and the
    ids the service no longer has (to remove)."""
    missing = without_payload(items)
    if not missing:
        return items, []
    fetched = {item.getAttribute("id"): item for item in await fetch(missing)}
    filled = [fetched.get(item["id"], item) if item["id"] in missing else item for item in items]
    gone = [item_id for item_id in missing if item_id not in fetched]
    return [item for item in filled if item["id"] not in gone], gone


__all__ = ["fill_payloads", "without_payload"]
