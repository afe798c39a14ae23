"""Libervia's pickled values, read by a restricted unpickler and given a JSON form.

Libervia 0.9 stores ``history.extra``, ``private_gen_bin.value`` and
``private_ind_bin.value`` as ``pickle.dumps(value, 0)``. Unpickling runs code named
by the pickle, so :func:`unpickle` only lets through the globals that protocol-0
pickles of plain values need:

- ``copy_reg``/``copyreg._reconstructor`` with ``__builtin__``/``builtins.object``
  (how Twisted's ``JID`` is pickled) and ``twisted.words.protocols.jabber.jid.JID``;
- ``__builtin__``/``builtins`` ``set``, ``frozenset``, ``bytearray``;
- ``_codecs.encode`` with the ``latin1`` codec (how ``bytes`` are pickled).

Anything else raises :class:`PickleRefused` naming the global.

The JSON form (:func:`to_json`, lossless; :func:`from_json` gives the Python values
back):

============================  ==============================================
Python value                  JSON
============================  ==============================================
None, bool, str, float, list  the same
int (any size)                a JSON integer (exact, beyond 64 bits too)
JID                           its ``full()`` string (also as a dict key)
tuple                         ``{"__tuple__": [...]}``
set, frozenset                ``{"__set__": [...]}`` (sorted by JSON text)
bytes, bytearray              ``{"__bytes__": "<base64>"}``
dict, keys str or JID         an object
dict with another key type,   ``{"__dict__": [[key, value], ...]}``
or one key named like a tag
============================  ==============================================
"""

from __future__ import annotations

import base64
import codecs
import io
import json
import pickle
from typing import Any

from twisted.words.protocols.jabber.jid import JID

__all__ = ["TAGS", "PickleRefused", "from_json", "to_json", "unpickle"]

TAGS = ("__tuple__", "__set__", "__bytes__", "__dict__")


class PickleRefused(ValueError):
    """A pickled value names something the restricted unpickler does not allow."""


class _PickledJID:
    """A JID as unpickled: its state only (never Twisted's object)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not state.get("host"):
            raise PickleRefused(f"a pickled JID has an unexpected state: {state!r}")
        self.jid = JID(tuple=(state.get("user"), state["host"], state.get("resource")))


class _Object:
    """``object`` as named by ``copy_reg._reconstructor`` (its only allowed use)."""


def _reconstructor(cls: Any, base: Any, state: Any) -> _PickledJID:
    if cls is not _PickledJID or base is not _Object or state is not None:
        raise PickleRefused("copy_reg._reconstructor is only allowed for Twisted's JID")
    return _PickledJID.__new__(_PickledJID)


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused(f"_codecs.encode is only allowed for latin1 text, not {encoding!r}")
    return codecs.encode(text, "latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("twisted.words.protocols.jabber.jid", "JID"): _PickledJID,
    ("_codecs", "encode"): _encode,
}
for _module in ("__builtin__", "builtins"):
    _ALLOWED[(_module, "object")] = _Object
    for _cls in (set, frozenset, bytearray):
        _ALLOWED[(_module, _cls.__name__)] = _cls


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise PickleRefused(f"the pickle names the forbidden global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("the pickle uses a persistent id")


def unpickle(data: bytes | str) -> Any:
    """The value of a Libervia pickle (``PickleRefused``/``ValueError`` if not allowed)."""
    if isinstance(data, str):
        data = data.encode()
    try:
        return _Unpickler(io.BytesIO(data), encoding="utf-8").load()
    except PickleRefused:
        raise
    except Exception as e:  # a corrupt pickle: any of pickle's many error types
        raise ValueError(f"not a readable pickle: {type(e).__name__}: {e}") from None


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def to_json(value: Any) -> Any:
    """The lossless JSON form of an unpickled value (see the module's table)."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, _PickledJID):
        return value.jid.full()
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": sorted((to_json(v) for v in value), key=_sort_key)}
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        keys = [k.jid.full() if isinstance(k, _PickledJID) else k for k in value]
        plain = all(isinstance(k, str) for k in keys) and not (len(keys) == 1 and keys[0] in TAGS)
        if plain:
            return {k: to_json(v) for k, v in zip(keys, value.values(), strict=True)}
        return {"__dict__": [[to_json(k), to_json(v)] for k, v in value.items()]}
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def from_json(value: Any) -> Any:
    """The Python value of a JSON form made by :func:`to_json` (JIDs stay strings)."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "__tuple__" and isinstance(inner, list):
            return tuple(from_json(v) for v in inner)
        if tag == "__set__" and isinstance(inner, list):
            return {_hashable(from_json(v)) for v in inner}
        if tag == "__bytes__" and isinstance(inner, str):
            return base64.b64decode(inner)
        if tag == "__dict__" and isinstance(inner, list):
            return {_hashable(from_json(k)): from_json(v) for k, v in inner}
    return {k: from_json(v) for k, v in value.items()}
