"""One request for a page of cached items, checked once and carried as a value.

:class:`ItemsQuery` holds the keyword arguments of :meth:`sat_storage.Storage.get_items`
(Libervia's) once they are checked: building one is the only check, and a query
given to ``get_items`` or ``get_synced_items`` is not checked again (wokkel's
``PubSubRequest`` idea: parse a request once, hand the value on).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from sat_storage.storage.base import check_type
from sat_storage.storage.checks import check_count, check_strings, check_text

MAX_ITEMS_BATCH = 10_000  # items per cache_pubsub_items call (and item_ids per get_items)
ORDER_CREATION = "creation"
ORDER_MODIFICATION = "modification"
# order_by value -> PubsubItem attributes of its keyset (ending with the unique id)
ORDER_KEYS = {ORDER_CREATION: ("id",), ORDER_MODIFICATION: ("updated", "id")}
DEFAULT_ORDER = (ORDER_MODIFICATION,)  # Libervia's default

__all__ = [
    "DEFAULT_ORDER",
    "MAX_ITEMS_BATCH",
    "ORDER_CREATION",
    "ORDER_MODIFICATION",
    "ItemsQuery",
    "order_keys",
]


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


@dataclass(frozen=True)
class ItemsQuery:
    """A checked, immutable request for a page of cached items of one node.

    The fields are the keyword arguments of :meth:`sat_storage.Storage.get_items`,
    with the same meaning and defaults. Creating one checks them (``ValueError`` or
    ``TypeError`` naming the culprit, as ``get_items`` raises) and normalises them:
    ``item_ids`` becomes a tuple of unique ids (first occurrence kept), ``order_by``
    a tuple. Being frozen, a query stays valid; ``dataclasses.replace`` checks again.

    ``ItemsQuery(max_items=20, before="")`` is the last page of 20 items;
    ``storage.get_items(node, query)`` reads it without checking it again.
    """

    max_items: int | None = None
    item_ids: tuple[str, ...] | None = None
    before: str | None = None
    after: str | None = None
    from_index: int | None = None
    order_by: tuple[str, ...] | None = None
    desc: bool = True
    force_rsm: bool = False
    #: keyset of ``order_by`` (PubsubItem attribute names, ending with ``id``)
    keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_count("max_items", self.max_items, optional=True)
        check_count("from_index", self.from_index, optional=True)
        check_text("before", self.before, optional=True)
        check_text("after", self.after, optional=True)
        check_type("desc", self.desc, bool)
        check_type("force_rsm", self.force_rsm, bool)
        if self.after == "":
            raise ValueError('after must be an item id, not ""')
        cursors = self.cursors
        if len(cursors) > 1:
            raise ValueError(f"use at most one of before, after and from_index, got {cursors}")
        ids = self.item_ids
        if ids is not None:
            ids = tuple(dict.fromkeys(check_strings("item_ids", ids, non_empty=True)))
            if len(ids) > MAX_ITEMS_BATCH:
                raise ValueError(f"too many item_ids: {len(ids)} (at most {MAX_ITEMS_BATCH})")
        keys = order_keys(self.order_by)
        set_field = object.__setattr__  # the fields of a frozen dataclass, normalised once
        set_field(self, "item_ids", ids)
        if self.order_by is not None:
            set_field(self, "order_by", tuple(self.order_by))
        set_field(self, "keys", keys)

    def __hash__(self) -> int:
        """The hash of the compared fields, computed once (a query is immutable; it
        is the read cache's key, hashed at every look-up)."""
        found: int | None = self.__dict__.get("_hash")
        if found is None:
            found = hash(
                (self.max_items, self.item_ids, self.before, self.after, self.from_index,
                 self.order_by, self.desc, self.force_rsm)
            )  # fmt: skip
            object.__setattr__(self, "_hash", found)
        return found

    @property
    def cursors(self) -> list[str]:
        """Names of the cursor arguments given (``before``, ``after``, ``from_index``)."""
        return [
            name
            for name, value in (
                ("before", self.before),
                ("after", self.after),
                ("from_index", self.from_index),
            )
            if value is not None
        ]

    def in_order(self, order_by: Sequence[str]) -> ItemsQuery:
        """This query in the order ``order_by`` (kinds of :data:`ORDER_KEYS`); the other
        fields, already checked, are not checked again."""
        query = copy.copy(self)
        query.__dict__.pop("_hash", None)  # (another order_by: another hash)
        set_field = object.__setattr__
        set_field(query, "keys", order_keys(order_by))
        set_field(query, "order_by", tuple(order_by))
        return query
