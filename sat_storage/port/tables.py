"""What a port copies: every table of every schema known to this installation.

That is the core schema and each plugin schema installed here (:mod:`sat_storage.schemas`,
#12) that the source database has.

A table is described by its columns and, for each column, a *kind* that says how a
raw SQLite value goes to PostgreSQL (``COPY`` text input takes the raw text of JSON,
dates and booleans as they are) and how both sides' values are compared by the
checksum of :mod:`sat_storage.port.verify`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sat_storage import json_text as json_text_module
from sat_storage import models

#: kinds of column values
JSON, DATETIME, BOOL, FLOAT, INT32, INT, TEXT, BYTES = (
    "json", "datetime", "bool", "float", "int32", "int", "text", "bytes",
)  # fmt: skip


@dataclass(frozen=True)
class PortTable:
    """One table to copy: its columns (with their kinds) and its primary key."""

    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    key: tuple[str, ...]
    #: the integer primary key column backed by a PostgreSQL sequence, if any
    serial: str | None = None

    def key_of(self, row: tuple[Any, ...]) -> list[Any]:
        """The primary key values of ``row`` (a full row in column order)."""
        return [row[self.columns.index(name)] for name in self.key]


def column_kind(type_: sa.types.TypeEngine[Any]) -> str:
    """The kind of a column type (decorated types by what they store)."""
    if isinstance(type_, models.JSONValue | sa.JSON):
        return JSON
    if isinstance(type_, models.UTCDateTime | sa.DateTime):
        return DATETIME
    if isinstance(type_, sa.Boolean):
        return BOOL
    if isinstance(type_, sa.Float):
        return FLOAT
    if isinstance(type_, sa.BigInteger):
        return INT
    if isinstance(type_, sa.Integer):
        return INT32
    if isinstance(type_, sa.LargeBinary):
        return BYTES
    return TEXT  # Text, String, Enum (stored as its value), XmlElement (XML text)


def describe(table: sa.Table) -> PortTable:
    """The :class:`PortTable` of a SQLAlchemy table."""
    key = tuple(column.name for column in table.primary_key.columns)
    pk = list(table.primary_key.columns)
    serial = None
    if len(pk) == 1 and isinstance(pk[0].type, sa.Integer) and pk[0].autoincrement is not False:
        serial = pk[0].name
    return PortTable(
        name=table.name,
        columns=tuple(column.name for column in table.columns),
        kinds=tuple(column_kind(column.type) for column in table.columns),
        key=key,
        serial=serial,
    )


def installed_schemas() -> dict[str, sa.MetaData]:
    """The plugin schemas installed here (``sat_storage.schema`` entry points), by name."""
    from sat_storage import schemas

    found = schemas.discover().schemas
    return {name: found[name].metadata for name in sorted(found)}


def port_tables(plugin_schemas: dict[str, sa.MetaData] | None = None) -> list[PortTable]:
    """Every table to copy, parents first: the core's, then each plugin schema's.

    ``plugin_schemas``: the plugin schemas to include (name -> metadata; none by
    default); a port passes those the source has (:func:`installed_schemas`).
    """
    metadatas = [models.Base.metadata, *(plugin_schemas or {}).values()]
    return [describe(table) for metadata in metadatas for table in metadata.sorted_tables]


# --- values for COPY -----------------------------------------------------------------


def json_text(value: Any) -> Any:
    """A raw SQLite JSON value as JSON text: SQLite keeps a bare number as a BLOB of its
    JSON text (or, written by older code, as the number itself)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json_text_module.dumps(value)
    return value


def copy_rows(table: PortTable, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``rows`` as COPY takes them (JSON columns as text)."""
    columns = [i for i, kind in enumerate(table.kinds) if kind == JSON]
    if not columns:
        return rows
    fixed = []
    for row in rows:
        if any(not isinstance(row[i], str | None) for i in columns):
            values = list(row)
            for i in columns:
                values[i] = json_text(values[i])
            row = tuple(values)
        fixed.append(row)
    return fixed


# --- comparing values --------------------------------------------------------------


def _json_canonical(value: Any) -> Any:
    """JSON data as PostgreSQL's jsonb keeps it: integral floats are numbers like 1."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_json_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_canonical(v) for k, v in value.items()}
    return value


def canonical(kind: str, value: Any) -> Any:
    """One engine-independent form of a value (SQLite raw value or psycopg's)."""
    if value is None:
        return None
    if kind == JSON:
        data = json.loads(json_text(value))  # both sides give JSON text (or a number)
        return json.dumps(_json_canonical(data), sort_keys=True, ensure_ascii=False)
    if kind == DATETIME:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat()
    if kind == BOOL:
        return bool(value)
    if kind == FLOAT:
        return repr(float(value))
    if kind == BYTES:
        return bytes(value)
    return value
