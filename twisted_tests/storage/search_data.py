"""Cached pubsub items for the search tests: helpers and the fixed data set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from sat_storage import Storage
from sat_storage.models import PubsubItem, PubsubNode
from twisted_tests.storage.pubsub_helpers import Client

ATOM = "http://www.w3.org/2005/Atom"
PUBSUB = "http://jabber.org/protocol/pubsub"
BLOG = "urn:xmpp:microblog:0"
SERVICE = JID("pubsub.example.org")
OTHER_SERVICE = JID("other.example.org")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def atom_item(name: str, title: str = "", content: str = "") -> domish.Element:
    """An ``<item/>`` holding an Atom entry with ``title`` and ``content``."""
    item = domish.Element((PUBSUB, "item"))
    item["id"] = name
    entry = item.addElement((ATOM, "entry"))
    entry.addElement("title", content=title)
    entry.addElement("content", content=content)
    entry.addElement("id", content=f"tag:example.org,2024:entry-{name}")
    entry.addElement("published", content="2024-01-01T00:00:00Z")
    link = entry.addElement("link")
    link["rel"], link["href"] = "alternate", f"https://example.org/entry/{name}"
    return item


async def cache(
    storage: Storage,
    profile: str,
    node: PubsubNode,
    items: list[domish.Element],
    parsed: list[dict[str, Any] | None] | None = None,
) -> None:
    """Cache ``items`` (with their ``parsed`` data) in ``node`` for ``profile``."""
    await storage.cache_pubsub_items(Client(profile), node, items, parsed)


async def node(
    storage: Storage,
    profile: str,
    service: JID = SERVICE,
    name: str = BLOG,
    type_: str | None = "blog",
    subtype: str | None = None,
) -> PubsubNode:
    """A cached node of ``profile`` (the profile is created when needed)."""
    if not storage.has_profile(profile):
        await storage.create_profile(profile)
    return await storage.set_pubsub_node(
        Client(profile), service, name, type_=type_, subtype=subtype
    )


async def set_updated(storage: Storage, times: dict[str, datetime]) -> None:
    """Give the items named in ``times`` that modification time."""

    def txn(session: Session) -> None:
        for name, time in times.items():
            session.execute(update(PubsubItem).where(PubsubItem.name == name).values(updated=time))

    await storage.db.run(txn)


# The fixed data set: profile "alice" owns items in three nodes, "bob" one node.
# name: (node key, parsed data); items are cached in this order (creation order).
ITEMS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "hello": ("blog", {
        "title": "Hello world", "rating": 5, "tags": ["xmpp", "Python"], "draft": False,
        "author": {"name": "Alice"}, "price": 10,
    }),
    "cache": ("blog", {
        "title": "Cache design", "rating": 3, "tags": ["db"], "draft": True,
        "author": {"name": "bob"}, "price": 2.5,
    }),
    "zebra": ("blog", {
        "title": "Zebra", "rating": "4", "tags": "xmpp", "draft": None,
        "author": {"name": "Ålice"},
    }),
    "Meeting": ("events", {
        "title": "meeting_50%", "rating": 10, "tags": [], "draft": False, "price": -1,
    }),
    "empty": ("events", None),
    "apple": ("other", {
        "title": "apple", "rating": 4.5, "tags": ["XMPP", "db"], "draft": False,
        "author": {"name": "alice"}, "price": 100,
    }),
}  # fmt: skip
# Modification order differs from creation order: "cache" was modified last.
UPDATED = {name: T0 + timedelta(hours=i) for i, name in enumerate(ITEMS)}
UPDATED["cache"] = T0 + timedelta(days=1)


async def fixed_data_set(storage: Storage) -> None:
    """Cache the fixed data set: alice's ``ITEMS`` and bob's item ``hello``."""
    nodes = {
        "blog": await node(storage, "alice"),
        "events": await node(storage, "alice", name="events", type_="event", subtype="meeting"),
        "other": await node(storage, "alice", service=OTHER_SERVICE, type_=None),
    }
    for name, (key, parsed) in ITEMS.items():
        title = parsed["title"] if parsed else ""
        await cache(storage, "alice", nodes[key], [atom_item(name, title)], [parsed])
    bob = await node(storage, "bob")
    parsed_bob = {"title": "Hello bob", "rating": 5, "tags": ["xmpp"]}
    await cache(storage, "bob", bob, [atom_item("hello", "Hello bob")], [parsed_bob])
    await set_updated(storage, UPDATED)
