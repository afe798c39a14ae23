"""Analysers: what a pubsub node holds, and whether (and how) to cache it.

An analyser is a dict registered by a plugin (``register_analyser``):

- ``name`` (str, mandatory): stable name stored with the node; normalised (stripped,
  lower-case) and unique;
- ``type`` (str, mandatory): kind of items, e.g. ``blog``; ``subtype`` (str) optional;
- ``node`` (str): node-name prefix; ``namespace`` (str): namespace of the first child of
  an item (the payload); at least one of the two;
- ``to_sync`` (bool, default False): synchronise matching nodes in the cache;
- ``parser`` (callable ``parser(client, item_elt, service, node) -> dict``, sync,
  coroutine or Deferred): turns an ``<item/>`` into JSON-serialisable data;
- ``match_cb`` (callable ``match_cb(client, analyse) -> None``, same kinds): called
  when the analyser matches; it may edit the analyse in place;
- ``sort_keys`` (list of dicts ``{"path": [...], "type": "number"|"string",
  "direction": "asc"|"desc"}``): paths of the parser's data to index, so that searches
  ordered by them (in that direction) or filtering ranges of them read an index
  (``Storage.declare_sort_key``; same results as without).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sat_storage.exceptions import ConflictError

#: Keys an analyser may have.
ANALYSER_KEYS = frozenset(
    {"name", "type", "subtype", "node", "namespace", "to_sync", "parser", "match_cb", "sort_keys"}
)
#: Keys copied from the matching analyser into the analyse.
ANALYSER_KEYS_TO_COPY = ("name", "type", "subtype", "to_sync", "parser")


def normalise_name(name: str) -> str:
    """The stored form of an analyser name (stripped, lower-case)."""
    return name.strip().lower()


def _check_str(analyser: dict[str, Any], key: str, mandatory: bool) -> None:
    """``ValueError`` naming ``key`` unless it holds a non-empty string (or is absent)."""
    if key not in analyser:
        if mandatory:
            raise ValueError(f"analyser key {key!r} is mandatory")
        return
    value = analyser[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"analyser key {key!r} must be a non-empty string, got {value!r}")


def _sort_keys(value: object) -> list[dict[str, Any]]:
    """Checked copies of an analyser's ``sort_keys`` (the storage checks the paths)."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"analyser key 'sort_keys' must be a list, got {value!r}")
    checked = []
    for i, key in enumerate(value):
        if (
            not isinstance(key, dict)
            or set(key) - {"path", "type", "direction"}
            or "path" not in key
        ):
            raise ValueError(
                f"analyser key 'sort_keys'[{i}] must be a dict with path, type and direction,"
                f" got {key!r}"
            )
        where = f"analyser key 'sort_keys'[{i}]"
        if key.get("type", "number") not in ("number", "string"):
            raise ValueError(
                f"{where}.type: 'number' or 'string', got {key['type']!r}"
            )
        if key.get("direction", "asc") not in ("asc", "desc"):
            raise ValueError(
                f"{where}.direction: 'asc' or 'desc', got {key['direction']!r}"
            )
        checked.append({"path": list(key["path"]), "type": key.get("type", "number"),
                        "direction": key.get("direction", "asc")})  # fmt: skip
    return checked


def validate(analyser: dict[str, Any]) -> dict[str, Any]:
    """A validated, normalised copy of ``analyser``; ``ValueError`` naming the bad key."""
    if not isinstance(analyser, dict):
        raise TypeError(f"analyser must be a dict, got {type(analyser).__name__}")
    unknown = sorted(set(analyser) - ANALYSER_KEYS, key=str)
    if unknown:
        raise ValueError(
            f"unknown analyser key {unknown[0]!r} (allowed: {', '.join(sorted(ANALYSER_KEYS))})"
        )
    _check_str(analyser, "name", mandatory=True)
    _check_str(analyser, "type", mandatory=True)
    for key in ("subtype", "node", "namespace"):
        _check_str(analyser, key, mandatory=False)
    if "node" not in analyser and "namespace" not in analyser:
        raise ValueError("analyser needs at least one of the keys 'node' and 'namespace'")
    if not isinstance(analyser.get("to_sync", False), bool):
        raise ValueError(f"analyser key 'to_sync' must be a bool, got {analyser['to_sync']!r}")
    for key in ("parser", "match_cb"):
        if key in analyser and not callable(analyser[key]):
            raise ValueError(f"analyser key {key!r} must be callable, got {analyser[key]!r}")
    checked = dict(analyser)
    if "sort_keys" in analyser:
        checked["sort_keys"] = _sort_keys(analyser["sort_keys"])
    checked["name"] = normalise_name(analyser["name"])
    checked.setdefault("to_sync", False)
    return checked


class AnalyserRegistry:
    """Registered analysers, kept in registration order."""

    def __init__(self) -> None:
        self._analysers: dict[str, dict[str, Any]] = {}

    def register(self, analyser: dict[str, Any]) -> dict[str, Any]:
        """Validate and add ``analyser``; ``ConflictError`` if its name is taken.

        The caller's dict is not modified: the stored (normalised) copy is returned.
        """
        checked = validate(analyser)
        name = checked["name"]
        if name in self._analysers:
            raise ConflictError(f"an analyser named {name!r} is already registered")
        self._analysers[name] = checked
        return checked

    def get(self, name: str | None) -> dict[str, Any] | None:
        """The analyser called ``name`` (any case), or None."""
        if not name:
            return None
        return self._analysers.get(normalise_name(name))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._analysers.values()))

    def __len__(self) -> int:
        return len(self._analysers)

    def needs_namespace(self, node: str) -> bool:
        """True when the namespace of the node's items could change the match.

        That is: an analyser with a ``namespace`` comes before the first analyser whose
        node prefix matches ``node`` (so the network look-up can be skipped otherwise).
        """
        for analyser in self._analysers.values():
            if "namespace" in analyser:
                return True
            if node.startswith(analyser["node"]):
                return False
        return False

    def match(self, node: str, namespace: str | None) -> dict[str, Any] | None:
        """First analyser, in registration order, matching ``node`` or ``namespace``."""
        for analyser in self._analysers.values():
            prefix = analyser.get("node")
            if prefix is not None and node.startswith(prefix):
                return analyser
            if namespace is not None and analyser.get("namespace") == namespace:
                return analyser
        return None

    def apply(self, analyse: dict[str, Any]) -> dict[str, Any] | None:
        """Fill ``analyse`` (keys ``node``, optional ``namespace``) from the match.

        Returns the matching analyser (or None, leaving ``analyse`` untouched).
        """
        analyser = self.match(analyse["node"], analyse.get("namespace"))
        if analyser is not None:
            for key in ANALYSER_KEYS_TO_COPY:
                if key in analyser:
                    analyse[key] = analyser[key]
        return analyser


def parser_of(registry: AnalyserRegistry, name: str | None) -> Callable[..., Any] | None:
    """The parser of the analyser called ``name``, if any."""
    analyser = registry.get(name)
    return None if analyser is None else analyser.get("parser")
