"""Argument checks shared by the table families (run in the reactor thread).

Each check raises a clear ``TypeError``/``ValueError`` naming the culprit, so bad
input is refused before any database work starts. The count, list-of-strings and
node checks raise :class:`~sat_storage.exceptions.ArgumentTypeError` (both a
``ValueError`` and a ``TypeError``) for a value of the wrong type, ``ValueError``
for a value out of range: one check, one message, whichever family calls it.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from twisted.words.protocols.jabber.jid import JID

from sat_storage.exceptions import ArgumentTypeError
from sat_storage.models import PubsubNode, SyncState
from sat_storage.storage.base import check_type

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

# Bound parameters per IN list: well under SQLite's limit on variables per statement.
IN_BATCH = 500
INT64_MAX = 2**63 - 1  # the largest count or offset every engine can bind


# What some engine cannot store in text, so every engine refuses it: NUL (PostgreSQL
# refuses it in text and jsonb, SQLite stores it) and lone surrogates (no UTF-8 form).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The same in JSON text written by json (NUL is escaped there as \u0000).
_UNSTORABLE_JSON = re.compile("\\\\u0000|[\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """What in ``text`` no engine may store ("a NUL character", "a lone surrogate"), or None."""
    if text.isascii():  # no surrogate: look for NUL only (much faster than the pattern)
        return "a NUL character" if "\x00" in text else None
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone surrogate"


def check_storable(name: str, text: str) -> None:
    """``text`` must hold nothing an engine cannot store: ``ValueError`` naming ``name``.

    The one check of every write path (through :func:`check_text`,
    :func:`check_strings`, :func:`check_json` and :func:`check_json_text`).
    """
    problem = unstorable(text)
    if problem is not None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(f"{name} must not contain {problem} (no engine stores it): {shown!r}")


def check_json_text(name: str, value: Any, text: str) -> None:
    """``text``, the JSON of ``value``, must be storable by every engine.

    A quick scan of the text first; only when it finds something is ``value`` walked
    to name the place (a backslash followed by ``u0000`` in a string is fine).
    """
    if text.isascii():  # no surrogate: look for an escaped NUL only
        suspect = "\\u0000" in text
    else:
        suspect = _UNSTORABLE_JSON.search(text) is not None
    if suspect:
        problem = _json_problem(value, "")
        if problem is not None:
            raise ValueError(f"{name} cannot be stored: {problem}")


def check_text(name: str, value: object, optional: bool = False) -> None:
    """``value`` must be a ``str`` (or None when ``optional``) that every engine stores.

    PostgreSQL refuses NUL in text, so it is refused on every engine (as are lone
    surrogates, which have no UTF-8 form): :func:`check_storable`.
    """
    if optional and value is None:
        return
    check_type(name, value, str)
    check_storable(name, value)  # type: ignore[arg-type]


def check_flag(name: str, value: object) -> bool:
    """``value`` must be ``True`` or ``False`` (no other truthy value: flags widen access)."""
    if value is not True and value is not False:
        raise ValueError(f"{name} must be True or False, got {type(value).__name__}: {value!r}")
    return value


def check_strings(
    name: str,
    values: object,
    *,
    allow_none: bool = False,
    non_empty: bool = False,
    most: int | None = None,
) -> list[Any]:
    """``values`` (any iterable but a string or a mapping) as a list of checked ``str``.

    Each string is refused with a NUL character (as :func:`check_text`), or empty
    when ``non_empty``; a None is kept when ``allow_none``. ``most``: the largest
    number of entries accepted. Errors name ``name`` (and the index of the culprit).
    """
    if isinstance(values, str | bytes | Mapping) or not hasattr(values, "__iter__"):
        raise ArgumentTypeError(
            f"{name} must be a list of str, got {type(values).__name__}: {values!r}"
        )
    result = list(values)  # type: ignore[call-overload]
    if most is not None and len(result) > most:
        raise ValueError(f"{name} has {len(result)} entries: at most {most} are accepted")
    for index, value in enumerate(result):
        if value is None and allow_none:
            continue
        if not isinstance(value, str):
            expected = "str or None" if allow_none else "str"
            raise ArgumentTypeError(
                f"{name}[{index}] must be {expected}, got {type(value).__name__}: {value!r}"
            )
        check_storable(f"{name}[{index}]", value)
        if non_empty and not value:
            raise ValueError(f"{name}[{index}] must not be empty")
    return result


def check_count(
    name: str, value: object, optional: bool = False, most: int = INT64_MAX
) -> int | None:
    """``value``: an ``int`` from 0 to ``most`` (not a bool), or None when ``optional``."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        expected = "an int >= 0 or None" if optional else "an int >= 0"
        raise ArgumentTypeError(f"{name} must be {expected}, got {type(value).__name__}: {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if value > most:
        raise ValueError(f"{name} must be at most {most} (64 bits), got {value}")
    return value


def check_node(node: object) -> PubsubNode:
    """``node``: a :class:`~sat_storage.models.PubsubNode` the storage gave (it has an id)."""
    if not isinstance(node, PubsubNode):
        raise ArgumentTypeError(
            f"node must be a stored PubsubNode, got {type(node).__name__}: {node!r}"
        )
    if not isinstance(node.id, int):
        raise ValueError(f"node {node.name!r} was never stored (it has no id)")
    return node


def check_sync_states(states: object, name: str = "states") -> list[SyncState | None]:
    """``states`` (a collection of SyncState or None) as a list; TypeError naming it."""
    check_type(name, states, list, tuple, set, frozenset)
    result = list(states)  # type: ignore[call-overload]
    for index, state in enumerate(result):
        if state is not None:
            check_type(f"{name}[{index}]", state, SyncState)
    return result


def check_enum(name: str, value: object, enum_cls: type[E]) -> E:
    """``value`` as a member of ``enum_cls``: a member already, or one's text value.

    An unknown text raises ``ValueError`` naming it and the known values.
    """
    if isinstance(value, enum_cls):
        return value
    check_type(name, value, str, enum_cls)
    known = tuple(member.value for member in enum_cls)
    if value not in known:
        raise ValueError(f"unknown value in {name}: {value!r} (one of {', '.join(known)})")
    return enum_cls(value)


def check_jid(name: str, value: object, optional: bool = False) -> None:
    """``value`` must be a twisted ``JID`` (or None when ``optional``)."""
    if optional and value is None:
        return
    check_type(name, value, JID)


def check_number(name: str, value: object, optional: bool = False) -> None:
    """``value`` must be a finite int or float (not a bool), or None when ``optional``."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_json(name: str, value: Any) -> None:
    """``value`` must round-trip through JSON: ``ArgumentTypeError`` (a ``ValueError``
    and a ``TypeError``) naming ``name`` otherwise.

    Accepted: None, bool, int, finite float, str (storable: :func:`check_storable`),
    lists and tuples (given back as lists) and dicts with such ``str`` keys, nested.
    """
    try:
        problem = _json_problem(value, "")
    except RecursionError:
        problem = "nested too deeply"
    if problem is not None:
        raise ArgumentTypeError(f"{name} is not JSON-serialisable: {problem}")


def _json_problem(value: Any, path: str) -> str | None:
    """Description of the first part of ``value`` JSON cannot hold, or None."""
    where = f" at {path}" if path else ""
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"non-finite float {value!r}{where}"
    if isinstance(value, str):
        problem = unstorable(value)
        return None if problem is None else f"{problem} in a string{where}"
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"dict key {key!r} is not a str{where}"
            problem = unstorable(key)
            if problem is not None:
                return f"{problem} in the dict key {key!r}{where}"
            problem = _json_problem(item, f"{path}[{key!r}]")
            if problem is not None:
                return problem
        return None
    return f"{type(value).__name__} value {value!r}{where}"


def batched(values: Sequence[T], size: int = IN_BATCH) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size`` (for long IN lists)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
