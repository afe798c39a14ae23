"""The purge's delete of cached items on PostgreSQL: two constant statements, one round trip.

:meth:`~sat_storage.storage.pubsub_items.PubsubItemsStore.purge_pubsub_items` runs
:func:`purge_postgresql` through :meth:`.Gateway.write` (the driver alone, psycopg's
pipeline mode: no Session, no SQLAlchemy execution or compilation per call). It sends

1. the lock of the nodes whose items it deletes, in id order (``FOR NO KEY UPDATE``,
   as :func:`~sat_storage.item_counts.lock_nodes_txn` and every item writer take it):
   the nodes matching the node filters themselves (a node that has no matching item
   is locked too, for the length of the purge's transaction; no item is read for the
   lock), or, with no node filter, the nodes that have a matching item;
2. the ``DELETE`` of the matching items, which counts them in the same statement
   (``WITH deleted AS (DELETE … RETURNING 1) SELECT count(*) FROM deleted``).

The first one's result is not read: both travel in one round trip, then the commit.
They are still two statements, so the delete takes its snapshot once the locks are
held: it sees the items a writer of those nodes committed while the purge waited for
its lock, as before (one statement folding the lock in would keep the snapshot it
took before waiting, and miss the new items of that writer while deleting the ones
it changed). The nodes' counts and versions and the items' sort values follow by the
statement triggers (:mod:`sat_storage.item_counts`, :mod:`sat_storage.sort_values`);
their full-text vectors are columns of the rows.

Filters are bound as arrays (``= ANY(%(…)s)``), so the SQL text depends only on which
filters are set (a few constant texts, built from fixed pieces and kept); no list is
cut in chunks and no value is ever part of the text.
"""

from __future__ import annotations

from typing import Any

from sat_storage import engines
from sat_storage.driver_write import DriverSQL
from sat_storage.models import PubsubItem, PubsubNode
from sat_storage.storage.pubsub_filters import ItemFilters

__all__ = ["purge_postgresql", "statements"]

_NODES = PubsubNode.__tablename__
_ITEMS = PubsubItem.__tablename__
_DATES = (("created_before", PubsubItem.created), ("updated_before", PubsubItem.updated))
_ARRAY_TYPES = {"profile_id": "integer[]"}  # every other node filter column is text

#: SQL texts by shape: (node filters, each with "values" or "values or NULL"; dates set)
_texts: dict[tuple[tuple[tuple[str, bool], ...], tuple[str, ...]], tuple[str, str]] = {}


def statements(nodes: tuple[tuple[str, bool], ...], dates: tuple[str, ...]) -> tuple[str, str]:
    """The lock and the counting delete of a purge whose node filters are ``nodes``
    (``(column, with NULL)`` pairs, parameter ``node_<column>``: an array) and whose
    set dates are ``dates`` (parameter names of :data:`_DATES`)."""
    key = (nodes, dates)
    texts = _texts.get(key)
    if texts is not None:
        return texts
    node_where = [
        f"({c} = ANY(%(node_{c})s::{_ARRAY_TYPES.get(c, 'text[]')})"
        + (f" OR {c} IS NULL)" if with_null else ")")
        for c, with_null in nodes
    ]
    columns = dict((name, column.expression.name) for name, column in _DATES)
    item_where = [f"{_ITEMS}.{columns[name]} < %({name})s" for name in dates]
    if node_where:
        nodes_sql = f"SELECT id FROM {_NODES} WHERE {' AND '.join(node_where)}"
        lock = f"{nodes_sql} ORDER BY id FOR NO KEY UPDATE"
        item_where.insert(0, f"{_ITEMS}.node_id IN ({nodes_sql})")
    else:
        dated = f" WHERE {' AND '.join(item_where)}" if item_where else ""
        lock = (
            f"SELECT id FROM {_NODES} WHERE id IN (SELECT node_id FROM {_ITEMS}{dated}) "
            "ORDER BY id FOR NO KEY UPDATE"
        )
    where = f" WHERE {' AND '.join(item_where)}" if item_where else ""
    delete = (
        f"WITH deleted AS (DELETE FROM {_ITEMS}{where} RETURNING 1) SELECT count(*) FROM deleted"
    )
    texts = _texts[key] = (lock, delete)
    return texts


def purge_postgresql(sql: DriverSQL, filters: ItemFilters) -> int:
    """Delete the items matching ``filters`` (checked, not matching nothing) in the
    transaction of ``sql``; how many (see the module docstring)."""
    nodes: list[tuple[str, bool]] = []
    params: dict[str, Any] = {}
    for column, values in filters.nodes:
        if values is None:
            continue
        name = column.expression.name
        nodes.append((name, any(v is None for v in values)))
        params[f"node_{name}"] = list(dict.fromkeys(v for v in values if v is not None))
    dates = []
    for name, column in _DATES:
        value = getattr(filters, name)
        if value is not None:
            dates.append(name)
            params[name] = engines.db_value(sql.dialect, column, value)
    lock, delete = statements(tuple(nodes), tuple(dates))
    sql.execute(lock, params)  # not read: sent with the delete
    return int(sql.fetch(delete, params)[0][0])
