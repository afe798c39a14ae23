"""Parsed data (JSON) in the SQL of a search: every SQLite/PostgreSQL difference of it.

:mod:`sat_storage.storage.search` validates a query and compiles it with the
methods of one :class:`JSONDialect` (``DIALECTS[name]``); no other place of the search
asks which engine it runs on. Each method has one meaning, the same on both engines:

- :meth:`~JSONDialect.at`: the JSON value at a path (``None`` when there is none);
- :meth:`~JSONDialect.typed`: that value when it is of one JSON kind, else NULL;
  numbers as exact numbers (see :func:`number_key`), strings compared by code point;
- :meth:`~JSONDialect.elements`: the elements of the array at a path, a scalar as a
  one-element array, nothing for an object, null or no value;
- :meth:`~JSONDialect.lower` (full Unicode lower-casing, :func:`engines.lower`)
  and :meth:`~JSONDialect.like` (case-sensitive SQL pattern, ``\\`` escapes);
- :meth:`~JSONDialect.number`: a query number, bound with its exact value;
- :meth:`~JSONDialect.sort_values`: the sort keys of values of one kind;
- :meth:`~JSONDialect.code_points`: a text column sorted by code point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from sat_storage import engines
from sat_storage.models import PubsubItem

__all__ = ["DIALECTS", "JSONDialect", "Scalar", "number_key"]

INT64 = 2**63
FLOAT_EXACT = 2**53  # below this, every integer is a float: shortest float text is exact enough


def number_key(value: int | float) -> int | float:
    """The value a parsed number compares with: itself, as Python compares numbers.

    Integers beyond 64 bits count as their nearest float (SQLite reads them so).
    """
    if isinstance(value, int) and not -INT64 <= value < INT64:
        return float(value)
    return value


@dataclass(frozen=True)
class Scalar:
    """A JSON value in SQL: its engine kind name and its engine representation."""

    kind: sa.ColumnElement[Any]
    raw: sa.ColumnElement[Any]


class JSONDialect(Protocol):
    """What the search compiles with (one implementation per engine)."""

    kinds: dict[str, tuple[str, ...]]

    def at(self, path: Sequence[str | int]) -> Scalar: ...

    def elements(self, path: Sequence[str | int]) -> tuple[sa.FromClause, Scalar]: ...

    def typed(self, scalar: Scalar, kind: str) -> sa.ColumnElement[Any]: ...

    def number(self, value: int | float) -> sa.ColumnElement[Any]: ...

    def lower(self, expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]: ...

    def like(self, expr: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]: ...

    def sort_values(self, scalar: Scalar) -> list[sa.ColumnElement[Any]]: ...

    def code_points(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]: ...


class SQLiteJSON:
    """JSON1 functions on the JSON text of ``parsed``."""

    kinds = {
        "number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false"),
        "null": ("null",), "array": ("array",), "object": ("object",),
    }  # fmt: skip

    @staticmethod
    def _path(path: Sequence[str | int]) -> str:
        parts = ["$"]
        for step in path:
            if isinstance(step, str):
                parts.append(f'."{step}"')
            else:
                parts.append(f"[{step}]" if step >= 0 else f"[#{step}]")
        return "".join(parts)

    def at(self, path: Sequence[str | int]) -> Scalar:
        bound = sa.literal(self._path(path), sa.Text)
        return Scalar(
            sa.func.json_type(PubsubItem.parsed, bound),
            sa.func.json_extract(PubsubItem.parsed, bound),
        )

    def elements(self, path: Sequence[str | int]) -> tuple[sa.FromClause, Scalar]:
        bound = sa.literal(self._path(path), sa.Text)
        # json_each walks an object's values: an object has no elements here
        source = sa.case(
            (sa.func.json_type(PubsubItem.parsed, bound) == "object", None),
            else_=PubsubItem.parsed,
        )
        table = sa.func.json_each(source, bound).table_valued("value", "type")
        return table, Scalar(table.c.type, table.c.value)

    def typed(self, scalar: Scalar, kind: str) -> sa.ColumnElement[Any]:
        # integers beyond 64 bits come as floats: number_key's meaning
        return sa.case((scalar.kind.in_(self.kinds[kind]), scalar.raw))

    @staticmethod
    def number(value: int | float) -> sa.ColumnElement[Any]:
        return sa.literal(value, sa.Integer if isinstance(value, int) else sa.Float)

    @staticmethod
    def lower(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return engines.lower("sqlite", expr)

    @staticmethod
    def like(expr: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]:
        # SQLite's LIKE ignores ASCII case: GLOB is the case-sensitive match
        return expr.op("GLOB", is_comparison=True)(sa.literal(_like_to_glob(pattern), sa.Text))

    def sort_values(self, scalar: Scalar) -> list[sa.ColumnElement[Any]]:
        # SQLite orders its values as JSON scalars of one kind sort (text: BINARY)
        scalars = self.kinds["number"] + self.kinds["string"] + self.kinds["boolean"]
        return [sa.case((scalar.kind.in_(scalars), scalar.raw))]

    @staticmethod
    def code_points(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return column  # BINARY collation: UTF-8 bytes, i.e. code points


class PostgreSQLJSON:
    """jsonb operators on ``parsed``."""

    kinds = {
        "number": ("number",), "string": ("string",), "boolean": ("boolean",),
        "null": ("null",), "array": ("array",), "object": ("object",),
    }  # fmt: skip

    def at(self, path: Sequence[str | int]) -> Scalar:
        node: sa.ColumnElement[Any] = sa.type_coerce(PubsubItem.parsed, JSONB)
        for step in path:
            if isinstance(step, str):
                node = node.op("->", return_type=JSONB)(sa.literal(step, sa.Text))
                continue
            # jsonb answers a scalar -> 0 with the scalar itself: index arrays only
            element = node.op("->", return_type=JSONB)(sa.literal(step, sa.Integer))
            node = sa.case((sa.func.jsonb_typeof(node) == "array", element), else_=None)
        return Scalar(sa.func.jsonb_typeof(node), node)

    def elements(self, path: Sequence[str | int]) -> tuple[sa.FromClause, Scalar]:
        node = self.at(path)
        array = sa.case(
            (node.kind == "array", node.raw),
            (node.kind.in_(("object", "null")), sa.cast(sa.literal("[]"), JSONB)),
            (node.raw.is_(None), sa.cast(sa.literal("[]"), JSONB)),
            else_=sa.func.jsonb_build_array(node.raw),
        )
        table = sa.func.jsonb_array_elements(array).table_valued("value")
        return table, Scalar(sa.func.jsonb_typeof(table.c.value), table.c.value)

    def typed(self, scalar: Scalar, kind: str) -> sa.ColumnElement[Any]:
        text = scalar.raw.op("#>>", return_type=sa.Text)(sa.literal_column("'{}'"))
        is_kind = scalar.kind == self.kinds[kind][0]
        if kind == "number":
            return sa.case((is_kind, _exact_number(text)))
        if kind == "boolean":
            return sa.case((is_kind, sa.cast(text, sa.Boolean)))
        # code point order whatever the database's collation (plain Text: bare binds)
        return sa.type_coerce(sa.collate(sa.case((is_kind, text)), "C"), sa.Text)

    @staticmethod
    def number(value: int | float) -> sa.ColumnElement[Any]:
        if isinstance(value, float) and FLOAT_EXACT <= abs(value) < INT64:
            text = str(int(value))  # the float's exact value (its short text is not)
        else:
            text = repr(value)
        return sa.cast(sa.literal(text, sa.Text), sa.Numeric)

    @staticmethod
    def lower(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return engines.lower("postgresql", expr)

    @staticmethod
    def like(expr: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]:
        return expr.like(sa.literal(pattern, sa.Text), escape="\\")

    def sort_values(self, scalar: Scalar) -> list[sa.ColumnElement[Any]]:
        # one kind at a time (the kind is the previous key): one of them is not NULL
        # (sort_keys.py stores these three as num, txt and flag)
        return [self.typed(scalar, kind) for kind in ("number", "string", "boolean")]

    @staticmethod
    def code_points(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.collate(column, "C")


def _exact_number(text: sa.ColumnElement[str]) -> sa.ColumnElement[Any]:
    """A jsonb number's text as the number it compares as (:func:`number_key`).

    Within 64 bits, the decimal itself: exact, as :mod:`sat_storage.json_text` writes
    floats from 1e16 on with their exact value (below, a float's shortest text is
    close enough that no integer lies between them). Beyond, the nearest float. A
    text shorter than 19 characters is within 64 bits (``json_text`` writes no
    ``e+`` exponent): the common case costs one cast.
    """
    value = sa.cast(text, sa.Numeric)
    int64 = sa.literal_column(str(INT64), sa.Numeric)
    nearest_float = sa.cast(sa.cast(sa.cast(text, sa.Float(53)), sa.Text), sa.Numeric)
    return sa.case(
        (sa.func.length(text) < 19, value),
        (sa.and_(value >= -int64, value < int64), value),
        else_=nearest_float,
    )


def _like_to_glob(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, ``\\`` escape) as the equivalent GLOB pattern."""
    out = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            char = next(chars, "")
        elif char in "%_":
            out.append("*" if char == "%" else "?")
            continue
        out.append(f"[{char}]" if char in "*?[" else char)
    return "".join(out)


DIALECTS: dict[str, JSONDialect] = {"sqlite": SQLiteJSON(), "postgresql": PostgreSQLJSON()}
