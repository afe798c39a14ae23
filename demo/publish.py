"""Publish the entries of an Atom feed to a profile's microblog node (demo helper).

    python publish.py CONFIG PROFILE FEED

Starts the host with every discovered plugin, connects PROFILE, creates its PEP
microblog node (open access, room for 1000 items) and publishes each ``<entry/>``
of FEED as an item. The database is the default one (SQLite in the XDG data dir).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import task
from twisted.words.xish import domish

from sat_storage.host import Host
from sat_storage.xml_tools import parse_xml

NS_ATOM = "http://www.w3.org/2005/Atom"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NODE = "urn:xmpp:microblog:0"
OPTIONS = {"pubsub#max_items": "1000", "pubsub#access_model": "open"}


def items_of(feed_path: str) -> list[domish.Element]:
    """One pubsub ``<item/>`` per Atom entry, its id taken from the entry's id."""
    with open(feed_path, encoding="utf-8") as f:
        feed = parse_xml(f.read().split("?>", 1)[1])
    items = []
    for entry in feed.elements(NS_ATOM, "entry"):
        atom_id = str(next(entry.elements(NS_ATOM, "id")))
        item = domish.Element((NS_PUBSUB, "item"))
        item["id"] = atom_id.rsplit("item=", 1)[-1]
        item.addChild(entry)
        items.append(item)
    return items


async def main(reactor: Any, config: str, profile: str, feed: str) -> None:
    host = Host(config_path=config)
    await host.start()
    try:
        client = await host.connect(profile)
        xep_0060 = host.plugins["XEP-0060"]
        service = client.jid.userhostJID()
        await xep_0060.create_node(client, service, NODE, OPTIONS)
        items = items_of(feed)
        await xep_0060.publish(client, service, NODE, items)
        print(f"published {len(items)} Atom entries to {NODE} at {service.full()}")
    finally:
        await host.stop()


if __name__ == "__main__":
    task.react(main, sys.argv[1:4])
