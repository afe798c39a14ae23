"""XEP-0460 caching hints: whether, and how much of, a node may be cached.

Read from the node's metadata (its disco#info ``pubsub#meta-data`` form, which any
user may ask) and from its configuration form when the service gives it (owners
only): ``{urn:xmpp:pubsub-caching:0}persistence`` (or ``pubsub#persist_items``),
``pubsub#max_items`` and ``pubsub#item_expire``.

- a node that is not persistent is not cached (its requests go to the network);
- an item expiry is not tracked by the cache: such a node is not cached either, so
  that an expired item is never served;
- ``max_items``: the cache never keeps more items than the service (the oldest, in
  the service's order, go first, as the service evicts them);
- a node whose configuration says that it does not notify its changes
  (``pubsub#deliver_notifications`` or ``pubsub#notify_retract`` false) is not
  cached: the cache would not learn of new or retracted items.

Neither ejabberd 23.01 nor Prosody 0.12 puts these fields in the node metadata (only
the configuration, which a subscriber may not read, has ``max_items`` and
``persist_items``); the tests use hand-built disco answers for the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NS_CACHING = "urn:xmpp:pubsub-caching:0"
FIELD_PERSISTENCE = f"{{{NS_CACHING}}}persistence"
FORM_META = "http://jabber.org/protocol/pubsub#meta-data"
#: configuration fields without which the cache would miss changes of the items
NOTIFICATION_FIELDS = ("pubsub#deliver_notifications", "pubsub#notify_retract")
#: ``extra`` key of a node: the service's max_items
EXTRA_MAX_ITEMS = "max_items"


@dataclass(frozen=True)
class Hints:
    """What the service says of caching a node (None: it says nothing)."""

    persistent: bool | None = None
    max_items: int | None = None
    item_expire: float | None = None
    #: False when the service does not notify every change of its items
    notifies: bool | None = None

    @property
    def cacheable(self) -> bool:
        return self.persistent is not False and not self.item_expire and self.notifies is not False

    def why_not(self) -> str:
        if self.persistent is False:
            return "the service does not persist its items"
        if self.notifies is False:
            return "the service does not notify every change of its items"
        return f"its items expire ({self.item_expire:g} s), which the cache does not track"


def _values(form: Any) -> dict[str, list[str]]:
    """var -> values of a data form (a wokkel ``Form`` or a dict var -> value(s))."""
    if form is None:
        return {}
    if isinstance(form, dict):
        items = form.items()
    else:
        items = ((var, field.values) for var, field in form.fields.items())
    return {
        var: [str(v) for v in (vals if isinstance(vals, list | tuple) else [vals])]
        for var, vals in items
    }


def _bool(values: list[str]) -> bool | None:
    if not values:
        return None
    return values[0].strip().lower() in ("1", "true")


def _number(values: list[str]) -> float | None:
    if not values or not values[0].strip():
        return None
    if values[0].strip().lower() == "max":
        return None
    try:
        return float(values[0])
    except ValueError:
        return None


def read(*forms: Any) -> Hints:
    """The hints of the given forms (metadata first: the first that says wins)."""
    persistent = max_items = expire = notifies = None
    for form in forms:
        values = _values(form)
        if persistent is None:
            persistent = _bool(values.get(FIELD_PERSISTENCE, []))
        if persistent is None:
            persistent = _bool(values.get("pubsub#persist_items", []))
        if max_items is None:
            number = _number(values.get("pubsub#max_items", []))
            max_items = None if number is None or number < 0 else int(number)
        if expire is None:
            expire = _number(values.get("pubsub#item_expire", []))
        for var in NOTIFICATION_FIELDS:
            if notifies is not False and _bool(values.get(var, [])) is not None:
                notifies = _bool(values[var])
    return Hints(persistent, max_items, expire, notifies)


def metadata_form(info: Any) -> Any:
    """The ``pubsub#meta-data`` form of a wokkel ``DiscoInfo`` (None if it has none)."""
    return getattr(info, "extensions", {}).get(FORM_META)


def limit(node: Any, cache_limit: int) -> int:
    """Items the cache keeps for ``node``: its limit, within the service's max_items."""
    max_items = (node.extra or {}).get(EXTRA_MAX_ITEMS)
    return (
        min(cache_limit, max_items) if isinstance(max_items, int) and max_items > 0 else cache_limit
    )


__all__ = ["EXTRA_MAX_ITEMS", "Hints", "limit", "metadata_form", "read"]
