"""What the pubsub storage tests share: clients, items, nodes, table snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Text, event, select, type_coerce
from sqlalchemy.orm import Session
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from sat_storage import Storage
from sat_storage.models import PubsubItem, PubsubNode, PubsubSub

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
SERVICE = jid.JID("pubsub.example.org")
OTHER_SERVICE = jid.JID("pubsub.example.net")


class Client:
    """A client object as the storage sees it: just a profile name."""

    def __init__(self, profile: str) -> None:
        self.profile = profile


def make_item(name: str, text: str = "", ns: str = NS_PUBSUB) -> domish.Element:
    """An ``<item id=name/>`` with an Atom-like ``<entry>`` holding ``text``."""
    item = domish.Element((ns, "item"))
    item["id"] = name
    entry = item.addElement(("http://www.w3.org/2005/Atom", "entry"))
    entry.addElement("title", content=text or f"title of {name}")
    return item


def make_items(names: list[str]) -> list[domish.Element]:
    return [make_item(name) for name in names]


async def snapshot(storage: Storage) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the pubsub tables (as plain tuples), to compare states."""

    def txn(session: Session) -> dict[str, list[tuple[Any, ...]]]:
        result = {}
        for model in (PubsubNode, PubsubItem, PubsubSub):
            table = model.__table__
            # the XML as stored (text), not parsed into an element
            columns = [type_coerce(c, Text) if c.name == "data" else c for c in table.c]
            rows = session.execute(select(*columns).order_by(table.c.id))
            result[model.__tablename__] = [tuple(row) for row in rows]
        return result

    return await storage.db.run(txn)


async def item_names(storage: Storage, node: PubsubNode) -> list[str]:
    """Names of the items of ``node`` in creation (id) order."""

    def txn(session: Session) -> list[str]:
        stmt = select(PubsubItem.name).where(PubsubItem.node_id == node.id)
        return list(session.scalars(stmt.order_by(PubsubItem.id)))

    return await storage.db.run(txn)


def gateway_calls(testcase: Any, storage: Storage) -> list[Any]:
    """The functions ``storage`` hands to its gateway (``run`` transactions, driver
    ``read``s and ``write``s) from now on, until the test's end (a list filled later)."""
    calls: list[Any] = []
    for name in ("run", "read", "write"):
        method = getattr(storage.db, name)

        def counting(fn: Any, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            calls.append(fn)
            return _method(fn, *args, **kwargs)

        testcase.patch(storage.db, name, counting)
    return calls


def refuse_transactions(testcase: Any, storage: Storage) -> None:
    """Make ``storage``'s gateway refuse Session transactions (``run``) until the
    test's end: a read that asks for one fails."""

    def refuse(fn: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a transaction was asked for: {fn.__name__}")

    testcase.patch(storage.db, "run", refuse)


@contextmanager
def item_reads(storage: Storage) -> Iterator[list[str]]:
    """The statements reading ``pubsub_items`` that ``storage`` runs meanwhile (a list
    filled later): none for a page answered by the read cache."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "pubsub_items" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(storage.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(storage.db.engine, "before_cursor_execute", record)
