"""JSON text of stored values, read back equal on both engines.

PostgreSQL's ``jsonb`` keeps a number as a decimal and writes it back without an
exponent: the shortest text of a float from 1e16 on (``1e+16``,
``2.730648000375673e+16``) would be read back as an *int*, and one whose shortest
text is not its exact value (most of them) as a different number. :func:`dumps`
writes those floats with their exact value and a ``.0`` (``27306480003756728.0``),
which both engines read back as the same float; any other value is written as
:mod:`json` writes it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["EXACT_FROM", "dumps"]

EXACT_FROM = 1e16  # floats from here on are integers, written by repr() with an exponent
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)
_encode = _ENCODER.encode
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# what JSONEncoder.encode hands the C encoder for _ENCODER (the markers dict aside)
_C_ARGUMENTS = (
    _ENCODER.default,
    json.encoder.encode_basestring,  # ensure_ascii=False
    _ENCODER.indent,
    _ENCODER.key_separator,
    _ENCODER.item_separator,
    _ENCODER.sort_keys,
    _ENCODER.skipkeys,
    _ENCODER.allow_nan,
)


def _encode_c(value: Any) -> str:
    """``_encode(value)``: the C encoder that ``JSONEncoder.encode`` makes, made here
    directly (with a new markers dict for each value, as there), without its Python steps."""
    if _c_make_encoder is None or isinstance(value, str):
        return _encode(value)
    return "".join(_c_make_encoder({}, *_C_ARGUMENTS)(value, 0))


def dumps(value: Any) -> str:
    """``value`` as JSON text (``ValueError``/``TypeError`` as :func:`json.dumps`)."""
    text = _encode_c(value)
    if "e+" not in text:  # no float written with a positive exponent
        return text
    return _exact(value)


def _exact(value: Any) -> str:
    if isinstance(value, float) and abs(value) >= EXACT_FROM:
        return f"{int(value)}.0"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_exact, value)) + "]"
    return _encode(value)


def _key(key: Any) -> str:
    """An object key as json writes it (non-str keys converted as json converts them)."""
    return _encode(key if isinstance(key, str) else next(iter(json.loads(_encode({key: 0})))))
