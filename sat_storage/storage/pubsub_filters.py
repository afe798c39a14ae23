"""SQL filter expressions of the pubsub tables: checked node filters and item filters.

A node filter is a ``(PubsubNode column, values or None)`` pair: None does not
filter, a list selects the rows whose column is in it (an empty list: none; a None
inside the list: SQL NULL). Long lists are cut in chunks of bound parameters
(:func:`sat_storage.storage.checks.batched`). :class:`ItemFilters` is the one filter
object of ``purge_pubsub_items`` and ``count_pubsub_items``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, select
from sqlalchemy.engine import Dialect
from twisted.words.protocols.jabber import jid

from sat_storage import engines
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.storage.base import check_type
from sat_storage.storage.checks import batched, check_strings

__all__ = [
    "Chunk", "Filters", "ItemFilters", "chunk_clauses", "in_chunks", "in_filters", "node_filters",
    "profile_ids",
]  # fmt: skip

_CREATED, _UPDATED = PubsubItem.__table__.c.created, PubsubItem.__table__.c.updated
Filters = list[tuple[Any, list[Any] | None]]  # (column, values or None = no filter)
ProfileId = Callable[[str], int]  # profile name -> id (ProfileUnknownError if unknown)


#: one chunk of a filter: (column, its values in the chunk but None, whether None is one)
Chunk = tuple[Any, list[Any], bool]


def in_chunks(filters: Filters) -> Iterator[list[Chunk]]:
    """The chunks of ``column IN values`` filters (see :func:`in_filters`): one list
    per combination, of one :data:`Chunk` per filter that is not None."""
    active = [
        (column, list(dict.fromkeys(values))) for column, values in filters if values is not None
    ]
    # an empty list still gives one (empty) chunk: its clause matches nothing
    per_filter = [
        [(column, chunk) for chunk in list(batched(values)) or [values]]
        for column, values in active
    ]
    for combination in itertools.product(*per_filter):
        chunks = []
        for column, chunk in combination:
            present = [value for value in chunk if value is not None]
            chunks.append((column, present, len(present) != len(chunk)))
        yield chunks


def chunk_clauses(chunks: list[Chunk]) -> list[ColumnElement[bool]]:
    """The WHERE clauses of one combination of :func:`in_chunks`."""
    clauses = []
    for column, present, with_null in chunks:
        clause = column.in_(present)
        clauses.append(sa.or_(clause, column.is_(None)) if with_null else clause)
    return clauses


def in_filters(filters: Filters) -> Iterator[list[ColumnElement[bool]]]:
    """WHERE clauses for ``column IN values`` filters, chunked.

    Yields one list of clauses per combination of chunks: together they select
    what the unchunked filters select, and (values being made unique) no row is
    selected by two of them. ``None`` filters are left out; a ``None`` inside a list
    of values matches SQL NULL.
    """
    for chunks in in_chunks(filters):
        yield chunk_clauses(chunks)


def matches_nothing(filters: Filters) -> bool:
    """True when a filter is an empty list."""
    return any(values == [] for _, values in filters)


def profile_ids(profile_id: ProfileId, profiles: object) -> list[int] | None:
    """Ids of the checked profile names ``profiles`` (None: no filter)."""
    if profiles is None:
        return None
    return [profile_id(name) for name in check_strings("profiles", profiles)]


def _services(services: object) -> list[str] | None:
    if services is None:
        return None
    check_type("services", services, list, tuple, set, frozenset)
    result = []
    for index, service in enumerate(services):  # type: ignore[attr-defined]
        check_type(f"services[{index}]", service, jid.JID)
        result.append(service.full())
    return result


def _strings(name: str, values: object, allow_none: bool = False) -> list[Any] | None:
    return None if values is None else check_strings(name, values, allow_none=allow_none)


def node_filters(
    profile_id: ProfileId,
    profiles: object,
    services: object,
    names: object,
    types: object = None,
    subtypes: object = None,
) -> Filters:
    """Checked node filters (None: no filter; a None in types/subtypes: nodes without)."""
    return [
        (PubsubNode.profile_id, profile_ids(profile_id, profiles)),
        (PubsubNode.service, _services(services)),
        (PubsubNode.name, _strings("names", names)),
        (PubsubNode.type_, _strings("types", types, allow_none=True)),
        (PubsubNode.subtype, _strings("subtypes", subtypes, allow_none=True)),
    ]


@dataclass(frozen=True)
class ItemFilters:
    """Checked filters of cached items: node filters, then dates (purge and count)."""

    nodes: Filters  # (PubsubNode column, values or None)
    created_before: datetime | None = None
    updated_before: datetime | None = None

    @classmethod
    def check(
        cls,
        profile_id: ProfileId,
        services: object = None,
        names: object = None,
        types: object = None,
        subtypes: object = None,
        profiles: object = None,
        created_before: object = None,
        updated_before: object = None,
    ) -> ItemFilters:
        """The filters of ``purge_pubsub_items``/``count_pubsub_items`` arguments, checked."""
        nodes = node_filters(profile_id, profiles, services, names, types, subtypes)
        for name, value in (("created_before", created_before), ("updated_before", updated_before)):
            if value is not None:
                check_type(name, value, datetime)
        return cls(nodes, created_before, updated_before)  # type: ignore[arg-type]

    @property
    def matches_nothing(self) -> bool:
        """True when a node filter is an empty list."""
        return matches_nothing(self.nodes)

    def clauses(self, dialect: Dialect | None = None) -> Iterator[list[ColumnElement[bool]]]:
        """WHERE clauses on ``pubsub_items``, one list per chunk of the node filters.

        The lists select disjoint sets of items which, together, are the matching ones.
        With ``dialect``, the dates are bound as that dialect stores them (values that
        need no processing: the clauses compile for the driver,
        :func:`~sat_storage.driver_write.compile_driver`).
        """
        dates = [
            column < (value if dialect is None else sa.literal(value))
            for column, value in self.dates(dialect)
        ]
        for chunks in self.node_chunks():
            yield self.chunk_clauses(chunks, dates)

    def dates(self, dialect: Dialect | None = None) -> list[tuple[Any, Any]]:
        """The dates set, as ``(pubsub_items column, the value it is before)``
        (``created`` first); with ``dialect``, the value as that dialect stores it."""
        dates = []
        for column, value in ((_CREATED, self.created_before), (_UPDATED, self.updated_before)):
            if value is not None:
                dates.append(
                    (column, value if dialect is None else engines.db_value(dialect, column, value))
                )
        return dates

    def node_chunks(self) -> Iterator[list[Chunk] | None]:
        """The node filters' chunks (:func:`in_chunks`); None once: no node filter."""
        if all(values is None for _, values in self.nodes):
            yield None
        else:
            yield from in_chunks(self.nodes)

    @staticmethod
    def chunk_clauses(
        chunks: list[Chunk] | None, dates: list[ColumnElement[bool]]
    ) -> list[ColumnElement[bool]]:
        """The clauses of the items of the nodes of ``chunks`` (None: every node) with ``dates``."""
        if chunks is None:
            return list(dates)
        nodes = select(PubsubNode.id).where(*chunk_clauses(chunks))
        return [PubsubItem.node_id.in_(nodes), *dates]
