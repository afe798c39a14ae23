"""A pure-Python oracle of search_pubsub_items: the documented semantics, no SQL.

It answers a valid query (DESIGN §7, ``sat_storage.storage.search`` docstring and
doc/pubsub_cache.rst) over items described in memory, so that the differential suite
can compare SQLite, PostgreSQL and what the documentation promises. It implements
the documents, not the code: only the full-text *parser* and word normalisation of
:mod:`sat_storage.fts` (pure Python, tested on their own) are shared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.words.protocols.jabber.jid import JID

from sat_storage import fts

MISSING = object()  # no value at a path
INT64 = 2**63
KIND_RANK = {"number": 0, "string": 1, "boolean": 2, "array": 3, "object": 4}
ALIASES = {"==": "eq", "!=": "ne", ">": "gt", ">=": "ge", "<": "lt", "<=": "le"}
NEGATED = {
    "ne": "eq", "not_in": "in", "not_like": "like", "not_ilike": "ilike",
    "disjoint": "overlap", "idisjoint": "ioverlap",
}  # fmt: skip


@dataclass
class Item:
    """One cached item as the oracle sees it."""

    profile: str
    service: str
    node: str
    type_: str | None
    subtype: str | None
    name: str
    parsed: dict[str, Any] | None
    words: list[str]  # normalised indexed words, in document order
    created: int  # order of first caching
    updated: int  # number of the last write call that changed it
    source: tuple[str, str, str] = ("", "", "")  # title, content, parsed JSON text

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.profile, self.service, self.node, self.name)


@dataclass
class Oracle:
    """Items cached so far, in creation order."""

    items: dict[tuple[str, str, str, str], Item] = field(default_factory=dict)
    calls: int = 0

    def cache(
        self, profile: str, node: Mapping[str, Any], batch: Sequence[Mapping[str, Any]]
    ) -> None:
        """Record one ``cache_pubsub_items`` call (an id given twice: the place of the
        first, the content of the last, compared once with what was stored; an item
        cached again with the same XML and parsed data keeps its update time)."""
        self.calls += 1
        last: dict[str, Mapping[str, Any]] = {}
        for entry in batch:
            last[entry["name"]] = entry
        for entry in last.values():
            key = (profile, node["service"], node["name"], entry["name"])
            old = self.items.get(key)
            source = (entry["title"], entry["content"], json.dumps(entry["parsed"]))
            if old is not None and old.source == source:
                continue  # an unchanged item (same XML and parsed data) changes nothing
            created = old.created if old else len(self.items)
            words = fts.normalise(entry["title"] + " " + entry["content"])
            self.items[key] = Item(
                profile, node["service"], node["name"], node["type"], node["subtype"],
                entry["name"], entry["parsed"], words, created, self.calls, source,
            )  # fmt: skip

    def search(self, query: Mapping[str, Any]) -> list[Item]:
        """The items matching ``query`` (already valid), in the documented order."""
        found = [i for i in self.items.values() if _matches(i, query)]
        found.sort(key=lambda i: i.created)
        order_by = query.get("order-by") or []
        for spec in reversed(order_by):  # stable sorts: the first key last
            if spec.get("order") == "rank":
                continue  # engine-specific values: compared as sets by the caller
            desc = spec.get("direction", "asc").lower() == "desc"
            found.sort(key=_sort_key(spec, desc), reverse=desc)
        start = query.get("index") or 0
        limit = query.get("limit")
        return found[start : None if limit is None else start + limit]


# --- filters ---------------------------------------------------------------------------


def _in_list(value: str | None, values: Sequence[Any] | None, jids: bool = False) -> bool:
    if values is None:
        return True
    texts = [v.full() if jids and isinstance(v, JID) else v for v in values]
    return value in texts


def _matches(item: Item, query: Mapping[str, Any]) -> bool:
    if query.get("profiles") is not None and item.profile not in query["profiles"]:
        return False
    for key, value, jids in (
        ("nodes", item.node, False),
        ("services", item.service, True),
        ("names", item.name, False),
        ("types", item.type_, False),
        ("subtypes", item.subtype, False),
    ):
        if not _in_list(value, query.get(key), jids):
            return False
    for spec in query.get("parsed") or []:
        if not parsed_matches(item.parsed, spec):
            return False
    if query.get("fts") is not None and not fts_matches(item.words, fts.parse_query(query["fts"])):
        return False
    return True


def value_at(parsed: Any, path: Sequence[str | int]) -> Any:
    """The JSON value at ``path`` (keys of objects, indexes of arrays), or MISSING."""
    node = MISSING if parsed is None else parsed
    for step in path:
        if isinstance(step, str) and isinstance(node, dict):
            node = node.get(step, MISSING)
        elif isinstance(step, int) and isinstance(node, list) and -len(node) <= step < len(node):
            node = node[step]
        else:
            return MISSING
    return node


def kind(value: Any) -> str:
    """JSON kind of a value: null, boolean, number, string, array, object (or missing)."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def number(value: int | float) -> int | float:
    """Numbers compare as Python compares them; ints beyond 64 bits as their float."""
    return float(value) if isinstance(value, int) and not -INT64 <= value < INT64 else value


def _same(stored: Any, wanted: Any) -> bool:
    """Equal and of the same JSON kind (strings exactly, numbers by value)."""
    k = kind(stored)
    if k != kind(wanted):
        return False
    if k == "number":
        return number(stored) == number(wanted)
    return stored == wanted


def like(text: str, pattern: str) -> bool:
    """SQL LIKE: ``%`` any run, ``_`` one character, ``\\`` escapes the next one."""
    regex, chars = [], iter(pattern)
    for char in chars:
        if char == "\\":
            regex.append(re.escape(next(chars)))
        elif char == "%":
            regex.append(".*")
        elif char == "_":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    return re.fullmatch("".join(regex), text, re.DOTALL) is not None


def lower(text: str) -> str:
    """The documented case folding: full Unicode lower-casing."""
    return text.lower()


def _elements(value: Any) -> list[Any]:
    """What overlap looks into: an array's elements, a scalar; nothing for an object."""
    k = kind(value)
    if k == "array":
        return value
    return [] if k in ("object", "missing", "null") else [value]


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}  # fmt: skip


def parsed_matches(parsed: Any, spec: Mapping[str, Any]) -> bool:
    """One ``parsed`` filter on an item's parsed data."""
    op = ALIASES.get(spec["op"], spec["op"])
    if op in NEGATED:
        return not parsed_matches(parsed, {**spec, "op": NEGATED[op]})
    stored, wanted = value_at(parsed, spec["path"]), spec["value"]
    if op == "eq":
        return _same(stored, wanted)
    if op == "in":
        return any(_same(stored, w) for w in wanted)
    if op in COMPARE or op == "between":
        bounds = wanted if op == "between" else [wanted]
        if kind(stored) != kind(bounds[0]):
            return False
        key = number if kind(stored) == "number" else (lambda v: v)
        if op == "between":
            return key(bounds[0]) <= key(stored) <= key(bounds[1])
        return COMPARE[op](key(stored), key(wanted))
    if op in ("like", "ilike"):
        if kind(stored) != "string":
            return False
        return like(lower(stored), lower(wanted)) if op == "ilike" else like(stored, wanted)
    elements = _elements(stored)
    if op == "ioverlap":
        folded = {lower(w) for w in wanted}
        return any(kind(e) == "string" and lower(e) in folded for e in elements)
    return any(_same(e, w) for e in elements for w in wanted)  # overlap


# --- full text -------------------------------------------------------------------------


def _term_matches(words: list[str], term: Any) -> bool:
    """The phrase of ``term`` at some position (its last word a prefix when starred)."""
    n = len(term.words)
    for start in range(len(words) - n + 1):
        window = words[start : start + n]
        if window[:-1] == list(term.words[:-1]) and (
            window[-1].startswith(term.words[-1]) if term.prefix else window[-1] == term.words[-1]
        ):
            return True
    return False


def fts_matches(words: list[str], query: fts.FtsQuery) -> bool:
    """Every group has a matching term, no excluded term matches."""
    return all(any(_term_matches(words, t) for t in g) for g in query.groups) and not any(
        _term_matches(words, t) for t in query.excluded
    )


# --- order -----------------------------------------------------------------------------


def _sort_key(spec: Mapping[str, Any], desc: bool) -> Callable[[Item], Any]:
    """Sort key of one order-by entry; values without a value sort last either way."""
    order = spec.get("order")
    if order == "creation":
        return lambda i: i.created
    if order == "modification":
        return lambda i: i.updated
    if order == "item_id":
        return lambda i: i.name

    def key(item: Item) -> tuple[Any, ...]:
        value = value_at(item.parsed, spec["path"])
        k = kind(value)
        if k in ("missing", "null"):
            return (not desc, 0, 0)  # last: after every value, asc or desc
        scalar = number(value) if k == "number" else value if k in ("string", "boolean") else 0
        return (desc, KIND_RANK[k], scalar)

    return key
