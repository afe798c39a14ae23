"""A SQLite database with every table family, and everything the public API reads back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.words.protocols.jabber import jid

from sat_storage import Storage
from sat_storage.models import SubscriptionState, SyncState
from sat_storage.xml_tools import parse_xml, to_xml

PROFILES = ("alice", "bob")
COMPONENT = ("files", "sat_storage.components.files")
SERVICE = jid.JID("pubsub.example.org")
BLOG = "urn:xmpp:microblog:0"
WORDS = ("xmpp", "cache", "twisted", "sqlite", "postgresql", "port")


def atom_item(index: int, owner: str) -> Any:
    """An Atom ``<item/>`` whose words depend on ``index``."""
    word = WORDS[index % len(WORDS)]
    return parse_xml(
        f"<item xmlns='http://jabber.org/protocol/pubsub' id='{owner}-{index:03d}'>"
        f"<entry xmlns='http://www.w3.org/2005/Atom'><title>{word} post {index}</title>"
        f"<content>Été {owner} écrit {word} numéro {index}</content></entry></item>"
    )


async def populate(storage: Storage, items: int = 40) -> None:
    """Profiles (one a component), params, private data, history, files, pubsub."""
    for name in PROFILES:
        await storage.create_profile(name)
    await storage.create_profile(*COMPONENT)
    await storage.set_gen_param("General", "theme", "dark")
    for number, name in enumerate(PROFILES):
        client = SimpleNamespace(profile=name)
        await storage.set_ind_param("Connection", "JabberID", f"{name}@example.org", name)
        await storage.set_private_value("ns", "text", f"{name}'s text", profile=name)
        await storage.set_private_value(
            "ns", "data", {"n": number, "big": 2**40, "list": [1.5, None, "é"]}, True, name
        )
        for index in range(5):
            await storage.add_to_history(
                {
                    "uid": f"{name}-msg-{index}",
                    "from": jid.JID(f"{name}@example.org/res"),
                    "to": jid.JID("carol@example.org"),
                    "timestamp": 1_700_000_000.25 + index,
                    "message": {"": f"hello {index}", "fr": f"bonjour {index}"},
                    "subject": {"": "greetings"} if index == 0 else {},
                    "type": "chat",
                    "extra": {"thread": "t1", "origin_id": f"{name}-o-{index}", "k": [1]},
                },
                name,
            )
        await storage.set_file(
            client,
            "report.pdf",
            f"file-{name}",
            size=2**33,
            media_type="application",
            media_subtype="pdf",
            created=1_700_000_000.5,
            owner=jid.JID(f"{name}@example.org"),
            extra={"note": "big"},
        )
        blog = await storage.set_pubsub_node(client, SERVICE, BLOG, type_="blog")
        await storage.cache_pubsub_items(
            client,
            blog,
            [atom_item(i, name) for i in range(items)],
            [{"title": f"{WORDS[i % len(WORDS)]} post {i}", "n": i} for i in range(items)],
        )
        await storage.update_pubsub_node_sync_state(blog, SyncState.COMPLETED)
        await storage.set_pubsub_subscription(
            blog, jid.JID(f"{name}@example.org"), SubscriptionState.SUBSCRIBED
        )
        other = await storage.set_pubsub_node(client, SERVICE, f"{name}-misc", subscribed=True)
        await storage.claim_pubsub_node_sync(other, f"host-{name}", 3600.0)
    await storage.set_private_value("ns", "general", "shared")
    for key, value in {"big": 2**70, "float": 3.0, "text": "a JSON string", "t": True}.items():
        await storage.set_private_value("bin", key, value, binary=True)


def _node(node: Any) -> dict[str, Any]:
    return {
        "id": node.id,
        "service": node.service,
        "name": node.name,
        "type": node.type_,
        "subtype": node.subtype,
        "subscribed": node.subscribed,
        "analyser": node.analyser,
        "sync_state": node.sync_state,
        "sync_state_updated": node.sync_state_updated,
        "sync_owner": node.sync_owner,
        "sync_lease_expires": node.sync_lease_expires,
        "extra": node.extra,
    }


def _item(item: Any) -> tuple[Any, ...]:
    return (item.id, item.name, to_xml(item.data), item.created, item.updated, item.parsed)


async def api_view(storage: Storage) -> dict[str, Any]:
    """Everything :func:`populate` wrote, read back through the public API."""
    view: dict[str, Any] = {
        "profiles": sorted(storage.get_profiles_list()),
        "component": storage.get_entry_point(COMPONENT[0]),
        "gen_params": {},
        "private_general": await storage.get_privates("ns"),
        "private_general_bin": await storage.get_privates("bin", binary=True),
    }
    await storage.load_gen_params(view["gen_params"])
    for name in PROFILES:
        client = SimpleNamespace(profile=name)
        params: dict[Any, Any] = {}
        await storage.load_ind_params(params, name)
        node = await storage.get_pubsub_node(
            client, SERVICE, BLOG, with_items=True, with_subscriptions=True
        )
        items, metadata = await storage.get_items(node, order_by=["creation"], desc=False)
        misc = await storage.get_pubsub_node(client, SERVICE, f"{name}-misc")
        view[name] = {
            "params": params,
            "private": await storage.get_privates("ns", profile=name),
            "private_bin": await storage.get_privates("ns", binary=True, profile=name),
            "history": await storage.history_get(None, None, profile=name),
            "files": await storage.get_files(client, f"file-{name}"),
            "used_space": await storage.file_get_used_space(client, jid.JID(f"{name}@example.org")),
            "blog": _node(node),
            "subscriptions": [(s.id, s.subscriber, s.state) for s in node.subscriptions],
            "items": [_item(item) for item in items],
            "metadata": metadata,
            "misc": _node(misc),
        }
    return view


SEARCHES = (
    {"fts": "xmpp"},
    {"fts": "été OR sqlite", "order-by": [{"order": "rank"}, {"order": "item_id"}]},
    {"fts": '"post 3"*', "types": ["blog"]},
    {"parsed": [{"path": ["n"], "op": ">=", "value": 30}], "order-by": [{"path": ["n"]}]},
)


async def search_view(storage: Storage) -> list[list[tuple[Any, ...]]]:
    """The results of :data:`SEARCHES` on every profile."""
    results = []
    for query in SEARCHES:
        items = await storage.search_pubsub_items(dict(query, limit=1000), all_profiles=True)
        results.append([(item.node.profile_id, item.name) for item in items])
    return results
