"""``cache search``'s flags turned into the storage's query (see doc/pubsub_cache.rst).

The order and direction names are the storage's own (:mod:`sat_storage.storage.search`),
so a name the storage accepts is never refused here.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.words.protocols.jabber import jid

from sat_storage.cli.runtime import BadInput
from sat_storage.storage.search import DIRECTIONS, ORDERS


def parse_path(text: str) -> list[str | int]:
    """A parsed-data path: ``a.b.0`` (digits are array indexes) or a JSON list."""
    if text.startswith("["):
        try:
            path = json.loads(text)
        except ValueError:
            raise BadInput(f"path {text!r} is not a JSON list") from None
        if not isinstance(path, list):
            raise BadInput(f"path {text!r} is not a JSON list")
        return path
    if not text or any(not part for part in text.split(".")):
        raise BadInput(f"malformed path {text!r}: use key.key.0 or a JSON list")
    return [int(p) if p.lstrip("-").isdigit() else p for p in text.split(".")]


def parse_value(text: str) -> Any:
    """A filter value: JSON when it parses (3, true, null, ["a","b"], "3"), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_order(text: str) -> dict[str, Any]:
    """``--order-by`` value: ``ORDER[:DIRECTION]``, ORDER a named order or a path."""
    name, direction = text, None
    if ":" in text:
        name, _, direction = text.rpartition(":")
        if direction not in DIRECTIONS:
            choices = " or ".join(DIRECTIONS)
            raise BadInput(f"unknown direction {direction!r} in --order-by {text!r}: {choices}")
    spec: dict[str, Any] = {"order": name} if name in ORDERS else {"path": parse_path(name)}
    if direction is not None:
        spec["direction"] = direction
    return spec


def search_query(
    fts: str | None,
    profiles: tuple[str, ...],
    services: tuple[jid.JID, ...],
    nodes: tuple[str, ...],
    types: tuple[str, ...],
    subtypes: tuple[str, ...],
    names: tuple[str, ...],
    parsed: tuple[tuple[str, str, str], ...],
    orders: tuple[str, ...],
    index: int | None,
    limit: int | None,
) -> dict[str, Any]:
    """The storage's search query for these flags (keys not given are left out)."""
    query: dict[str, Any] = {
        "fts": fts,
        "profiles": list(profiles) or None,
        "services": [s.full() for s in services] or None,
        "nodes": list(nodes) or None,
        "types": [t or None for t in types] or None,
        "subtypes": [t or None for t in subtypes] or None,
        "names": list(names) or None,
        "parsed": [
            {"path": parse_path(path), "op": op, "value": parse_value(value)}
            for path, op, value in parsed
        ]
        or None,
        "order-by": [parse_order(order) for order in orders] or None,
        "index": index,
        "limit": limit,
    }
    return {key: value for key, value in query.items() if value is not None}
