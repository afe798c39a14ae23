"""Build a Libervia 0.9 database with the real reference, and record what it reads back.

Not a test and not part of the package: run it with a venv of its own holding the
reference's dependencies (SQLAlchemy 1.4, aiosqlite, alembic 1.8, Twisted 22.4,
wokkel 18, cryptography) and the extracted Debian bookworm package::

    apt-get download libervia-backend && dpkg -x libervia-backend_*.deb /work/libervia-deb/root
    /work/libervia-venv/bin/python twisted_tests/libervia/generate_fixture.py \
        --reference /work/libervia-deb/root/usr/share/libervia \
        --out twisted_tests/libervia/libervia-0.9.sqlite \
        --expected twisted_tests/libervia/expected.json

``--history N --items M`` builds the benchmark database instead (N history rows,
M cached items, no expected read-back). ``--downgrade-to REV`` then takes the file
down to an older Libervia revision with the reference's own Alembic migrations (the
read-back is the one made before)::

    … --downgrade-to 602caf848068 --out twisted_tests/libervia/libervia-0.9-602caf848068.sqlite \
        --expected twisted_tests/libervia/expected-602caf848068.json

The reference's own ``Storage.initialise()`` creates and stamps the file, its own
methods fill it; credentials are made with its ``sat.memory.crypto`` the way
``Memory.asyncCreateProfile`` and ``Params.setParam`` do (personal key encrypted
under the profile password as private value ``crypto/personal_key``, XMPP password
encrypted under the personal key, profile password hashed in ``General/Password``).

The read-back is written as JSON with this encoding (independent of the package's
converter): JID -> full() string (also as dict keys), tuple -> {"__tuple__": [...]},
set/frozenset -> {"__set__": [...]} (sorted by JSON text), bytes -> {"__bytes__": base64},
dict with a non-string key, or whose one key is one of those tags -> {"__dict__":
[[key, value], ...]}, datetime -> ISO text.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

PROFILES = {
    # name: (profile password, JID, XMPP password, component entry point)
    "adopted": ("", "libervia-adopted@localhost", "xmpp-pass-adopted", None),
    "guarded": ("hunter2", "libervia-guarded@localhost", "xmpp-pass-guarded", None),
    "gateway": ("", "gateway.localhost", "component-secret", "AP_GATEWAY"),
}
FTS_WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


def encode(value: Any) -> Any:
    """The read-back in JSON (see the module's docstring)."""
    from twisted.words.protocols.jabber import jid

    if isinstance(value, jid.JID):
        return value.full()
    if isinstance(value, dict):
        keys = [k.full() if isinstance(k, jid.JID) else k for k in value]
        tag_like = len(keys) == 1 and keys[0] in ("__tuple__", "__set__", "__bytes__", "__dict__")
        if all(isinstance(k, str) for k in keys) and not tag_like:
            return {k: encode(v) for k, v in zip(keys, value.values(), strict=True)}
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {
            "__set__": sorted(
                (encode(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True)
            )
        }
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Client:
    def __init__(self, profile: str, jid_s: str) -> None:
        from twisted.words.protocols.jabber import jid

        self.profile = profile
        self.jid = jid.JID(jid_s)


def atom(item_id: str, title: str, body: str) -> Any:
    from twisted.words.xish import domish

    item = domish.Element((None, "item"))
    item["id"] = item_id
    entry = item.addElement(("http://www.w3.org/2005/Atom", "entry"))
    entry.addElement("title", content=title)
    entry.addElement("id", content=f"xmpp:pubsub.localhost?;node=blog;item={item_id}")
    entry.addElement("published", content="2024-03-01T10:00:00Z")
    content = entry.addElement("content", content=f"<p>{body}</p>")
    content["type"] = "html"
    return item


async def fill(storage: Any, crypto: Any, mapping: Any) -> None:
    """The small fixture: every table, every kind of value the reference stores."""
    from twisted.words.protocols.jabber import jid

    for name, (profile_pwd, jid_s, xmpp_pwd, entry_point) in PROFILES.items():
        await storage.createProfile(name, entry_point)
        personal_key = crypto.BlockCipher.getRandomKey(base64=True).decode()
        await storage.setPrivateValue(
            "crypto",
            "personal_key",
            crypto.BlockCipher.encrypt(profile_pwd, personal_key),
            binary=False,
            profile=name,
        )
        await storage.setIndParam(
            "General", "Password", crypto.PasswordHasher.hash(profile_pwd), name
        )
        await storage.setIndParam("Connection", "JabberID", jid_s, name)
        await storage.setIndParam(
            "Connection", "Password", crypto.BlockCipher.encrypt(personal_key, xmpp_pwd), name
        )
        await storage.setIndParam("Connection", "autoconnect_backend", "false", name)
    await storage.setGenParam("General", "lang", "fr")
    await storage.setGenParam("Misc", "unicode", "çà et là — ☃")
    await storage.setGenParam("Misc", "empty", "")

    # private values, text and binary, general and per profile
    await storage.setPrivateValue("misc", "greeting", "héllo ☃", binary=False)
    await storage.setPrivateValue("misc", "greeting", "bonjour", binary=False, profile="adopted")
    binary_values = {
        "nested": {"a": [1, 2, {"b": None, "c": [True, False]}], "ü": "ñ", "f": 1.5},
        "none": None,
        "float": 3.0,
        "negative": -17,
        "bigint": 2**70,
        "bytes": b"\x00\x01\xffbinary",
        "tuple": (1, "two", (3.5, None)),
        "set": {"x", "y"},
        "unicode": "日本語 ☃",
        "list_of_tuples": [("a", 1), ("b", 2)],
        "int_keys": {1: "one", 2: "two"},
        "tag_like": {"__tuple__": "not a tuple"},
    }
    for key, value in binary_values.items():
        await storage.setPrivateValue("misc_bin", key, value, binary=True)
    await storage.setPrivateValue(
        "misc_bin", "nested", {"per": "profile"}, binary=True, profile="adopted"
    )
    bookmarks = {
        jid.JID("room@conference.localhost"): {"autojoin": True, "nick": "adopted"},
        jid.JID("other@conference.localhost/res"): {"autojoin": False, "name": "Ötter"},
    }
    await storage.setPrivateValue(
        "bookmarks_local", "bookmarks", bookmarks, binary=True, profile="adopted"
    )
    await storage.setPrivateValue(
        "roster", "ver", {"jid": jid.JID("a@localhost")}, binary=True, profile="guarded"
    )

    # history: every type, several languages and subjects, extra fields
    me = "libervia-adopted@localhost/libervia"
    types = ["chat", "error", "groupchat", "headline", "normal", "info"]
    for idx, type_ in enumerate(types):
        extra: dict[str, Any] = {"index": idx, "big": 2**65 + idx, "delay": (idx, "s")}
        if idx % 2:
            extra["origin_id"] = f"origin-{idx}"
            extra["stanza_id"] = f"stanza-{idx}"
            extra["update_uid"] = f"update-{idx}"
            extra["received_timestamp"] = 1700000000.5 + idx
        data = {
            "uid": f"uid-{idx}",
            "from": jid.JID(me) if idx % 2 else jid.JID(f"peer{idx}@localhost/phone"),
            "to": jid.JID(f"peer{idx}@localhost") if idx % 2 else jid.JID(me),
            "timestamp": 1700000000.25 + idx,
            "received_timestamp": 1700000001.0 + idx if idx % 2 else None,
            "message": {"": f"message {idx}", "fr": f"message {idx} en français"}
            if idx < 4
            else {"": f"only {idx}"},
            "subject": {"": f"subject {idx}", "de": f"Betreff {idx}"} if idx % 3 == 0 else {},
            "type": type_,
            "extra": extra,
        }
        await storage.addToHistory(data, "adopted")
    await storage.addToHistory(
        {
            "uid": "uid-guarded",
            "from": jid.JID("libervia-guarded@localhost/x"),
            "to": jid.JID("room@conference.localhost"),
            "timestamp": 1700000100.0,
            "message": {"": "in a room"},
            "subject": {},
            "type": "groupchat",
            "extra": {"bookmark": {jid.JID("room@conference.localhost"): "x"}},
        },
        "guarded",
    )
    # threads cannot go through addToHistory (its thread_parent look-up is broken in
    # 0.9: data["extra"].get["thread_parent"]), the reference's generic add() can
    await storage.add(
        mapping.History(
            uid="uid-thread",
            profile_id=storage.profiles["adopted"],
            source_jid=jid.JID("peer0@localhost/phone"),
            dest_jid=jid.JID(me),
            timestamp=1700000200.0,
            type="chat",
            extra={"thread_extra": b"raw"},
            messages=[mapping.Message(message="threaded", language=None)],
            subjects=[],
            thread=mapping.Thread(thread_id="thread-1", parent_id="thread-0"),
        )
    )

    # files with directories
    adopted = Client("adopted", "libervia-adopted@localhost")
    owner = jid.JID("libervia-adopted@localhost")
    await storage.setFile(
        adopted,
        "photos",
        "dir-1",
        type_="directory",
        created=1700000300.0,
        owner=owner,
        access={"read": {"type": "public"}},
    )
    await storage.setFile(
        adopted,
        "cat.jpg",
        "file-1",
        parent="dir-1",
        file_hash="abc",
        hash_algo="sha-256",
        size=12345,
        namespace="fis",
        mime_type="image/jpeg",
        public_id="pub-1",
        created=1700000301.0,
        modified=1700000302.5,
        owner=owner,
        extra={"thumbnails": [{"id": "t"}]},
    )
    await storage.setFile(
        adopted,
        "cat.jpg",
        "file-1",
        version="2",
        parent="dir-1",
        size=2**40,
        mime_type="image/jpeg",
        created=1700000303.0,
        owner=owner,
    )
    await storage.setFile(adopted, "notes.txt", "file-2", size=0, created=1700000304.0)

    # pubsub: nodes in every sync state, items with parsed data, subscriptions
    service = jid.JID("pubsub.localhost")
    states = [None, *mapping.SyncState]
    for idx, state in enumerate(states):
        node = await storage.setPubsubNode(
            adopted,
            service,
            f"node-{idx}",
            analyser="atom" if idx else None,
            type_="blog" if idx % 2 else None,
            subtype="x" if idx == 2 else None,
            subscribed=bool(idx % 2),
        )
        if state is not None:
            await storage.updatePubsubNodeSyncState(node, state)
        items = [
            atom(f"item-{idx}-{n}", f"Title {FTS_WORDS[n]} ☃", f"body {FTS_WORDS[-n - 1]} éè")
            for n in range(3)
        ]
        parsed = [
            {"title": f"Title {n}", "n": n, "tags": ["t", str(idx)]} if n else None
            for n in range(3)
        ]
        await storage.cachePubsubItems(adopted, node, items, parsed)
        if idx == 1:
            for n, sub_state in enumerate(mapping.SubscriptionState):
                await storage.add(
                    mapping.PubsubSub(
                        node_id=node.id, subscriber=jid.JID(f"sub{n}@localhost"), state=sub_state
                    )
                )
            await storage.add(
                mapping.PubsubSub(
                    node_id=node.id, subscriber=jid.JID("nostate@localhost"), state=None
                )
            )
    # an updated item (upsert path: updated != created is possible)
    node = await storage.getPubsubNode(adopted, service, "node-2")
    await storage.cachePubsubItems(
        adopted, node, [atom("item-2-0", "Retitled kappa", "new")], [{"v": 2}]
    )


async def read_back(storage: Any) -> dict[str, Any]:
    """What the reference gives back, through its own read methods."""
    from twisted.words.protocols.jabber import jid

    out: dict[str, Any] = {
        "profiles": {},
        "gen_params": {},
        "privates": {},
        "history": {},
        "files": {},
        "pubsub": {},
    }
    for name in sorted(storage.getProfilesList()):
        out["profiles"][name] = {
            "id": storage.profiles[name],
            "component": storage.profileIsComponent(name),
            "entry_point": storage.getEntryPoint(name)
            if storage.profileIsComponent(name)
            else None,
        }
        params: dict[Any, Any] = {}
        await storage.loadIndParams(params, name)
        out["profiles"][name]["params"] = sorted([k[0], k[1], v] for k, v in params.items())
    params = {}
    await storage.loadGenParams(params)
    out["gen_params"] = sorted([k[0], k[1], v] for k, v in params.items())
    for namespace, binary, profile in [
        ("misc", False, None),
        ("misc", False, "adopted"),
        ("misc_bin", True, None),
        ("misc_bin", True, "adopted"),
        ("bookmarks_local", True, "adopted"),
        ("roster", True, "guarded"),
        ("crypto", False, "adopted"),
    ]:
        values = await storage.getPrivates(namespace, binary=binary, profile=profile)
        out["privates"][f"{namespace}|{int(binary)}|{profile or ''}"] = encode(values)
    for profile in ("adopted", "guarded"):
        rows = await storage.historyGet(None, None, limit=None, profile=profile)
        out["history"][profile] = [encode(list(row)) for row in rows]
    for profile, owner in (("adopted", "libervia-adopted@localhost"),):
        files = await storage.getFiles(Client(profile, owner), version=None)
        out["files"][profile] = sorted(
            (encode(f) for f in files), key=lambda f: (f["id"], f["version"])
        )
    adopted = Client("adopted", "libervia-adopted@localhost")
    for idx in range(5):
        node = await storage.getPubsubNode(
            adopted, jid.JID("pubsub.localhost"), f"node-{idx}", with_subscriptions=True
        )
        items, metadata = await storage.getItems(node, desc=False)
        out["pubsub"][node.name] = {
            "id": node.id,
            "service": node.service.full(),
            "analyser": node.analyser,
            "type": node.type_,
            "subtype": node.subtype,
            "subscribed": node.subscribed,
            "sync_state": node.sync_state.name if node.sync_state else None,
            "extra": node.extra,
            "subscriptions": sorted(
                [s.subscriber.full(), s.state.name if s.state else None] for s in node.subscriptions
            ),
            "items": [
                {
                    "id": i.id,
                    "name": i.name,
                    "data": i.data.toXml(),
                    "parsed": i.parsed,
                    "created": i.created.isoformat(),
                    "updated": i.updated.isoformat(),
                }
                for i in items
            ],
        }
    return out


async def fill_bench(storage: Any, history: int, items: int) -> None:
    """The benchmark database: ``history`` messages and ``items`` cached items."""
    from twisted.words.protocols.jabber import jid

    await storage.createProfile("bench")
    me = jid.JID("bench@localhost/res")
    peer = jid.JID("peer@localhost/phone")
    for n in range(history):
        await storage.addToHistory(
            {
                "uid": f"bench-{n}",
                "from": me if n % 2 else peer,
                "to": peer if n % 2 else me,
                "timestamp": 1600000000.0 + n,
                "message": {"": f"message number {n}"},
                "subject": {},
                "type": "chat",
                "extra": {"stanza_id": f"s-{n}", "n": n, "markup": (n, "x")},
            },
            "bench",
        )
    client = Client("bench", "bench@localhost")
    per_node = 5000
    for node_idx in range((items + per_node - 1) // per_node):
        node = await storage.setPubsubNode(
            client, jid.JID("pubsub.localhost"), f"bench-{node_idx}", analyser="atom", type_="blog"
        )
        await storage.updatePubsubNodeSyncState(
            node,
            node.sync_state.__class__.COMPLETED if node.sync_state else _sync_state().COMPLETED,
        )
        count = min(per_node, items - node_idx * per_node)
        for start in range(0, count, 500):
            batch = range(start, min(count, start + 500))
            await storage.cachePubsubItems(
                client,
                node,
                [atom(f"i-{n}", f"Title {FTS_WORDS[n % 10]}", f"body {n}") for n in batch],
                [{"n": n} for n in batch],
            )


def _fast_writes() -> None:
    """Benchmark database only: no fsync per reference transaction (same rows, faster)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def no_sync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.close()


def _sync_state() -> Any:
    from sat.memory.sqla_mapping import SyncState

    return SyncState


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="libervia-gen-"))
    os.environ.update(
        {
            "HOME": str(work),
            "XDG_DATA_HOME": str(work / "data"),
            "XDG_CONFIG_HOME": str(work / "config"),
            "XDG_CACHE_HOME": str(work / "cache"),
            "PYTHONPATH": args.reference,
        }
    )
    sys.path.insert(0, args.reference)
    import twisted.python.compat

    twisted.python.compat._PY3 = True  # wokkel 18 on Twisted 22.4
    from sat.core.constants import Const as C
    from sat.memory import crypto, sqla_mapping
    from sat.memory.sqla import Storage
    from twisted.internet import defer

    if args.history or args.items:
        _fast_writes()
    storage = Storage()
    await storage.initialise()
    path = Path(os.environ["XDG_DATA_HOME"]) / C.APP_NAME_FILE / C.SAVEFILE_DATABASE
    started = time.time()
    if args.history or args.items:
        await fill_bench(storage, args.history, args.items)
    else:
        await fill(storage, crypto, sqla_mapping)
        expected = await read_back(storage)
        expected["revision"] = "4b002773cf92"
        expected["credentials"] = {
            n: {"profile_password": p[0], "jid": p[1], "xmpp_password": p[2]}
            for n, p in PROFILES.items()
        }
        if args.downgrade_to:  # an older Libervia revision, by the reference's own migrations
            downgrade = storage.migrateApply("downgrade", args.downgrade_to)
            await defer.Deferred.fromFuture(asyncio.ensure_future(downgrade))
            expected["revision"] = args.downgrade_to
        Path(args.expected).write_text(
            json.dumps(expected, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
        )
    print(f"filled in {time.time() - started:.1f}s", file=sys.stderr)
    await defer.Deferred.fromFuture(asyncio.ensure_future(storage.session.kw["bind"].dispose()))
    shutil.copyfile(path, args.out)
    shutil.rmtree(work)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="/work/libervia-deb/root/usr/share/libervia")
    parser.add_argument("--out", required=True)
    parser.add_argument("--expected", default=None)
    parser.add_argument("--downgrade-to", default=None, help="an older Libervia revision")
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--items", type=int, default=0)
    args = parser.parse_args()
    if not (args.history or args.items) and not args.expected:
        parser.error("--expected is needed for the fixture")
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import defer, reactor

    failures = []

    def start() -> None:
        done = defer.ensureDeferred(main(args))
        done.addErrback(failures.append).addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    # Twisted's SIGCHLD handler would hide the reference's alembic subprocess from asyncio
    reactor.run(installSignalHandlers=False)
    if failures:
        failures[0].printTraceback(file=sys.stderr)
        sys.exit(1)
