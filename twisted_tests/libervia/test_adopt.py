"""A Libervia 0.9 database (made by the reference) adopted at initialise()."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from sat_storage import Storage, fts, migration
from sat_storage.libervia import detect
from sat_storage.xml_tools import to_xml
from twisted_tests.libervia.fixture import expected, fixture_copy, url_of

SERVICE = JID("pubsub.localhost")


class Client:
    def __init__(self, profile: str) -> None:
        self.profile = profile


def dump(path: Path) -> list[str]:
    """Every row of every table of ``path``, as SQL text."""
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def jsonable(value: Any) -> Any:
    """``value`` as the reference's read-back writes it (JIDs as text, tuples as lists)."""
    return json.loads(json.dumps(value, default=lambda v: v.full()))


class AdoptedFixtureTests(TestCase):
    """One adoption of the fixture per test, then reads through the public API."""

    async def setUp(self) -> None:
        self.path = fixture_copy(self)
        self.original = dump(self.path)
        self.expected = expected()
        self.storage = Storage(url_of(self.path))
        await self.storage.initialise()
        self.addCleanup(self.storage.close)

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.path)
        try:
            return connection.execute(statement).fetchall()
        finally:
            connection.close()

    def test_adoption_reported(self) -> None:
        """initialise() says it adopted revision 4b002773cf92 and where the backup is."""
        adoption = self.storage.adoption
        assert adoption is not None
        self.assertEqual((adoption.revision, adoption.path), (detect.HEAD, self.path))
        self.assertEqual(adoption.backup, self.path.with_name("libervia.db.libervia-0.9.bak"))
        self.assertEqual(self.sql("SELECT version_num FROM alembic_version"),
                         [(migration.head_revision(),)])  # fmt: skip

    def test_backup_is_the_original(self) -> None:
        """The backup holds the Libervia database as it was, rows and schema."""
        backup = self.storage.adoption.backup
        self.assertEqual(detect.read_revision(backup), detect.HEAD)
        self.assertEqual(dump(backup), self.original)

    def test_profiles(self) -> None:
        """Profiles keep their ids; the component keeps its entry point."""
        want = self.expected["profiles"]
        self.assertEqual(self.storage.profiles, {name: p["id"] for name, p in want.items()})
        for name, profile in want.items():
            self.assertEqual(self.storage.profile_is_component(name), profile["component"])
            if profile["component"]:
                self.assertEqual(self.storage.get_entry_point(name), profile["entry_point"])

    async def test_params(self) -> None:
        """General and individual params read back as the reference read them."""
        params: dict[Any, Any] = {}
        await self.storage.load_gen_params(params)
        self.assertEqual(sorted([c, n, v] for (c, n), v in params.items()),
                         self.expected["gen_params"])  # fmt: skip
        for name, profile in self.expected["profiles"].items():
            params = {}
            await self.storage.load_ind_params(params, name)
            self.assertEqual(sorted([c, n, v] for (c, n), v in params.items()), profile["params"])

    async def test_private_values(self) -> None:
        """Text and binary private values equal the reference's, in the JSON form."""
        for where, values in self.expected["privates"].items():
            namespace, binary, profile = where.split("|")
            got = await self.storage.get_privates(
                namespace, binary=bool(int(binary)), profile=profile or None
            )
            self.assertEqual(got, values, where)

    async def test_big_integer_private_value(self) -> None:
        """The pickled 2**70 is the JSON integer 2**70 (not a float)."""
        got = await self.storage.get_privates("misc_bin", ["bigint", "float"], binary=True)
        self.assertEqual([(type(v), v) for v in got.values()], [(int, 2**70), (float, 3.0)])

    async def test_history(self) -> None:
        """Every message (types, languages, subjects, extra, thread) as the reference read it."""
        for profile, rows in self.expected["history"].items():
            got = await self.storage.history_get(None, None, profile=profile)
            self.assertEqual(jsonable([list(r) for r in got]), rows, profile)

    async def test_files(self) -> None:
        """Files and directories with their versions; NULL access/extra read back as {}."""
        got = await self.storage.get_files(Client("adopted"), version=None)
        got = sorted(jsonable(got), key=lambda f: (f["id"], f["version"]))
        self.assertEqual(got, self.expected["files"]["adopted"])

    async def test_pubsub(self) -> None:
        """Nodes (every sync state), subscriptions and items keep ids, data and dates."""
        for name, want in self.expected["pubsub"].items():
            node = await self.storage.get_pubsub_node(
                Client("adopted"), SERVICE, name, with_subscriptions=True
            )
            got_node = {
                "id": node.id,
                "service": node.service,
                "analyser": node.analyser,
                "type": node.type_,
                "subtype": node.subtype,
                "subscribed": node.subscribed,
                "sync_state": node.sync_state.name if node.sync_state else None,
                "extra": node.extra,
                "subscriptions": sorted(
                    [s.subscriber, s.state.name if s.state else None] for s in node.subscriptions
                ),
            }
            self.assertEqual(got_node, {k: v for k, v in want.items() if k != "items"}, name)
            items, _ = await self.storage.get_items(node, desc=False)
            got_items = [
                {
                    "id": i.id,
                    "name": i.name,
                    "data": to_xml(i.data),
                    "parsed": i.parsed,
                    "created": i.created.replace(tzinfo=None).isoformat(),
                    "updated": i.updated.replace(tzinfo=None).isoformat(),
                }
                for i in items
            ]
            self.assertEqual(got_items, want["items"], name)

    def test_item_counts(self) -> None:
        """Every adopted node counts its adopted items (RSM counts read the node's count)."""
        rows = self.sql(
            "SELECT n.name, n.item_count, count(i.id) FROM pubsub_nodes n "
            "LEFT JOIN pubsub_items i ON i.node_id = n.id GROUP BY n.id ORDER BY n.id"
        )
        want = {name: len(node["items"]) for name, node in self.expected["pubsub"].items()}
        self.assertEqual({name: (stored, rows) for name, stored, rows in rows},
                         {name: (n, n) for name, n in want.items()})  # fmt: skip

    def test_integrity(self) -> None:
        """SQLite's integrity and foreign key checks pass after the upgrade."""
        self.assertEqual(self.sql("PRAGMA integrity_check"), [("ok",)])
        self.assertEqual(self.sql("PRAGMA foreign_key_check"), [])

    def test_no_pickle_left(self) -> None:
        """Every value of a converted column is JSON; no Libervia table or trigger is left."""
        for table, column in [("history", "extra"), ("private_gen_bin", "value"),
                              ("private_ind_bin", "value")]:  # fmt: skip
            for (value,) in self.sql(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
                json.loads(value)
        names = [n for (n,) in self.sql("SELECT name FROM sqlite_master")]
        self.assertFalse(
            [n for n in names if n.startswith(("_libervia_", "pubsub_items_fts_sync_"))]
        )

    def test_fts_index(self) -> None:
        """Every item has this package's text, and the FTS5 index matches its content."""
        rows = self.sql(
            f"SELECT data, {fts.TEXT_COLUMN} FROM pubsub_items "
            f"LEFT JOIN {fts.TABLE} ON {fts.TABLE}.rowid = pubsub_items.id"
        )
        self.assertEqual(len(rows), len(self.sql(f"SELECT rowid FROM {fts.TABLE}")))
        for data, text in rows:
            self.assertEqual(text, fts.item_text(data))
        self.sql(f"INSERT INTO {fts.TABLE}({fts.TABLE}) VALUES ('integrity-check')")
        (count,) = self.sql(f"SELECT count(*) FROM {fts.TABLE} WHERE {fts.TABLE} MATCH 'kappa'")
        items = [i for node in self.expected["pubsub"].values() for i in node["items"]]
        self.assertEqual(count, (sum("kappa" in i["data"] for i in items),))

    async def test_search_after(self) -> None:
        """Full-text search finds adopted items, and items cached after the adoption."""
        found = await self.storage.search_pubsub_items({"fts": "theta", "profiles": ["adopted"]})
        self.assertEqual(sorted(i.name for i in found), [f"item-{n}-2" for n in range(5)])
        node = await self.storage.get_pubsub_node(Client("adopted"), SERVICE, "node-1")
        item = domish.Element((None, "item"))
        item["id"] = "new"
        item.addElement("body", content="freshly adopted")
        await self.storage.cache_pubsub_items(Client("adopted"), node, [item], [{"n": 1}])
        found = await self.storage.search_pubsub_items({"fts": "freshly", "profiles": ["adopted"]})
        self.assertEqual([i.name for i in found], ["new"])

    async def test_writes_after(self) -> None:
        """New rows get ids after the adopted ones; history and private writes work."""
        await self.storage.create_profile("newcomer")
        self.assertEqual(self.storage.profiles["newcomer"], max(self.storage.profiles.values()))
        self.assertGreater(self.storage.profiles["newcomer"], 3)
        await self.storage.set_private_value("misc_bin", "bigint", 2**71, binary=True)
        got = await self.storage.get_privates("misc_bin", ["bigint"], binary=True)
        self.assertEqual(got, {"bigint": 2**71})
        await self.storage.add_to_history(
            {"uid": "after", "from": JID("a@localhost/r"), "to": JID("b@localhost"),
             "timestamp": 1.0, "message": {"": "after"}, "subject": {}, "type": "chat",
             "extra": {}},
            "adopted",
        )  # fmt: skip
        rows = await self.storage.history_get(None, None, profile="adopted")
        self.assertEqual(len(rows), len(self.expected["history"]["adopted"]) + 1)

    async def test_second_initialise_is_a_no_op(self) -> None:
        """A second start finds the head revision: no adoption, no new backup, no change."""
        await self.storage.close()
        before = dump(self.path)
        again = Storage(url_of(self.path))
        await again.initialise()
        self.addCleanup(again.close)
        self.assertIsNone(again.adoption)
        self.assertEqual(again.schema_state.action, "current")
        self.assertEqual(dump(self.path), before)
        self.assertEqual(sorted(p.name for p in self.path.parent.iterdir() if ".bak" in p.name),
                         ["libervia.db.libervia-0.9.bak"])  # fmt: skip
