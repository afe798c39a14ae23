"""The order a service gives a node's items, so that the cache answers in the same one.

Services differ on an item published again under a known id: ejabberd keeps it at
its first position (its items are in creation order), Prosody moves it to the end
(last-publication order). A node's policy is kept in its ``extra``
(:data:`EXTRA_REPUBLISH`: :data:`KEEP` or :data:`MOVE`); until it is known, both
orders agree (a synchronisation writes the items in the service's order, and a
notification of an unchanged item changes nothing), so creation order is used.

It is learnt the first time it matters: when a notification names a known item
that is not the newest (edited or not: Prosody moves an unchanged item published
again too), one request for the service's newest items says whether it moved it
(:func:`decide`); a catch-up that reads the whole node learns it too.
Explicit ``order_by`` requests keep Libervia's semantics.

Answers to ``item_ids`` requests differ too: Prosody gives the items in the order
asked, ejabberd in the node's. The first such request whose two orders differ goes
to the network once, and the order of its answer is kept (:data:`EXTRA_ITEM_IDS`).
"""

from __future__ import annotations

from typing import Any

#: ``extra`` key of a node: how its service orders republished items
EXTRA_REPUBLISH = "republish"
KEEP = "keep"  # republished items keep their first position: creation order
MOVE = "move"  # republished items move to the end: modification order
POLICIES = (KEEP, MOVE)


def policy_of(node: Any) -> str | None:
    """The node's known policy (None: not known yet)."""
    value = (node.extra or {}).get(EXTRA_REPUBLISH)
    return value if value in POLICIES else None


def default_order(node: Any) -> list[str]:
    """``order_by`` of a request that gives none: the service's own order."""
    return ["modification"] if policy_of(node) == MOVE else ["creation"]


def decide(edited: str, newest_cached: str, newest_on_service: list[str]) -> str | None:
    """The policy shown by the service's newest items (ids, its order) after ``edited``
    (a cached item older than ``newest_cached``) was republished; None when they can't
    tell (``newest_cached`` and ``edited`` both out of the page)."""
    if newest_cached in newest_on_service:
        if edited not in newest_on_service:
            return KEEP  # moved, it would be after newest_cached, in the page
        after = newest_on_service.index(edited) > newest_on_service.index(newest_cached)
        return MOVE if after else KEEP
    return MOVE if edited in newest_on_service else None


def learn_from_listing(cached: list[str], edited: set[str], service: list[str]) -> str | None:
    """The policy shown by a full listing of the service (its ids, in its order)
    compared with the cache's ids in creation order, ``edited`` being the ids whose
    payload changed; None when no edited item tells (only the newest was edited)."""
    in_both = set(cached) & set(service)
    kept = [i for i in cached if i in in_both]
    if not (edited & set(kept[:-1])):
        return None
    return KEEP if kept == [i for i in service if i in in_both] else MOVE


#: ``extra`` key of a node: the order of its service's answers to item_ids requests
EXTRA_ITEM_IDS = "item_ids_order"
BY_REQUEST = "request"  # the order of the ids asked (Prosody)
BY_NODE = "node"  # the node's order (ejabberd)


def item_ids_order(node: Any) -> str | None:
    value = (node.extra or {}).get(EXTRA_ITEM_IDS)
    return value if value in (BY_REQUEST, BY_NODE) else None


def in_request_order(names: list[str], requested: list[str]) -> list[int]:
    """Positions that put ``names`` (the found items) in the order of ``requested``."""
    rank = {name: n for n, name in enumerate(dict.fromkeys(requested))}
    return sorted(range(len(names)), key=lambda i: rank.get(names[i], len(rank)))


def learn_item_ids_order(
    requested: list[str], node_order: list[str], answer: list[str]
) -> str | None:
    """How the service ordered its answer to an item_ids request (None: can't tell)."""
    by_request = [name for name in dict.fromkeys(requested) if name in set(answer)]
    by_node = [name for name in node_order if name in set(answer)]
    if by_request == by_node:
        return None
    if answer == by_request:
        return BY_REQUEST
    return BY_NODE if answer == by_node else None


__all__ = [
    "BY_NODE",
    "BY_REQUEST",
    "EXTRA_ITEM_IDS",
    "in_request_order",
    "item_ids_order",
    "learn_item_ids_order",
    "EXTRA_REPUBLISH",
    "KEEP",
    "MOVE",
    "decide",
    "default_order",
    "learn_from_listing",
    "policy_of",
]
