"""``sat-storage cache``: stats, get, purge, reset (the storage's data, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber import jid

from sat_storage.xml_tools import parse_xml
from twisted_tests.cli.helpers import assert_bad_input, run_cli
from twisted_tests.db import database_url, make_storage

SERVICE = "pubsub.example.org"
BLOG = "urn:xmpp:microblog:0"


def atom_item(index: int) -> object:
    """An ``<item/>`` with an Atom entry whose title names ``index``."""
    return parse_xml(
        f"<item xmlns='http://jabber.org/protocol/pubsub' id='post-{index:02d}'>"
        f"<entry xmlns='http://www.w3.org/2005/Atom'><title>Post {index}</title></entry></item>"
    )


async def fill(testcase: TestCase, url: str) -> None:
    """alice caches 30 blog items, bob 5 untyped ones; the storage is closed again."""
    storage = await make_storage(testcase, url)
    for name in ("alice", "bob"):
        await storage.create_profile(name)
    alice, bob = SimpleNamespace(profile="alice"), SimpleNamespace(profile="bob")
    blog = await storage.set_pubsub_node(alice, jid.JID(SERVICE), BLOG, type_="blog")
    items = [atom_item(i) for i in range(30)]
    await storage.cache_pubsub_items(
        alice, blog, items, [{"title": f"Post {i}"} for i in range(30)]
    )
    misc = await storage.set_pubsub_node(bob, jid.JID("bob@example.org"), "misc")
    await storage.cache_pubsub_items(bob, misc, items[:5])
    await storage.close()


class CacheTestCase(TestCase):
    """A database with alice's blog (30 items) and bob's node (5 items)."""

    async def setUp(self) -> None:
        self.url = database_url(self)
        await fill(self, self.url)

    async def cli(self, *args: str, stdin: str = "") -> object:
        """Run a command on this test's database."""
        return await run_cli(self, *args, db_url=self.url, stdin=stdin)

    async def item_count(self) -> int:
        """Items in the cache, through ``cache stats``."""
        return (await self.cli("--json", "cache", "stats")).json()["items"]


class StatsTests(CacheTestCase):
    """``cache stats``."""

    async def test_totals_and_types(self) -> None:
        """Nodes and items are counted, per type, with their size."""
        stats = (await self.cli("--json", "cache", "stats")).json()
        self.assertEqual((stats["nodes"], stats["items"]), (2, 35))
        by_type = {row["type"]: (row["nodes"], row["items"]) for row in stats["by_type"]}
        self.assertEqual(by_type, {None: (1, 5), "blog": (1, 30)})
        self.assertGreater(stats["size"], 35 * 100)

    async def test_per_state(self) -> None:
        """Nodes are counted per sync state (never synchronised: none)."""
        stats = (await self.cli("--json", "cache", "stats")).json()
        self.assertEqual(stats["by_state"], {"none": 2})

    async def test_one_profile(self) -> None:
        """--profile restricts the figures to that profile."""
        stats = (await self.cli("--json", "cache", "stats", "--profile", "bob")).json()
        self.assertEqual((stats["nodes"], stats["items"]), (1, 5))

    async def test_unknown_profile(self) -> None:
        """An unknown profile is bad input."""
        result = await self.cli("cache", "stats", "--profile", "carol")
        assert_bad_input(self, result, "unknown profile: 'carol'")


class GetTests(CacheTestCase):
    """``cache get``."""

    async def get(self, *args: str) -> dict:
        """``cache get`` of alice's blog with ``args``, as JSON."""
        result = await self.cli("--json", "cache", "get", SERVICE, BLOG, "-p", "alice", *args)
        self.assertEqual(result.code, 0, str(result))
        return result.json()

    async def test_newest(self) -> None:
        """--max alone gives the newest items, oldest first, with RSM metadata."""
        page = await self.get("--max", "3", "--order", "creation")
        self.assertEqual([i["name"] for i in page["items"]], ["post-27", "post-28", "post-29"])
        self.assertEqual(page["metadata"]["rsm"]["count"], 30)
        self.assertEqual(page["metadata"]["rsm"]["index"], 27)

    async def test_after(self) -> None:
        """--after gives the page following an item."""
        page = await self.get("--max", "2", "--after", "post-04", "--order", "creation")
        self.assertEqual([i["name"] for i in page["items"]], ["post-05", "post-06"])

    async def test_before_last_page(self) -> None:
        """--before '' gives the last page."""
        page = await self.get("--max", "2", "--before", "", "--order", "creation")
        self.assertEqual([i["name"] for i in page["items"]], ["post-28", "post-29"])

    async def test_index(self) -> None:
        """--index gives the page from a position."""
        page = await self.get("--max", "1", "--index", "10", "--order", "creation")
        self.assertEqual([i["name"] for i in page["items"]], ["post-10"])

    async def test_items_carry_xml_and_parsed(self) -> None:
        """JSON items carry their XML and parsed data."""
        (item,) = (await self.get("--id", "post-07"))["items"]
        self.assertEqual(item["parsed"], {"title": "Post 7"})
        self.assertIn("<title>Post 7</title>", item["xml"])

    async def test_table_for_people(self) -> None:
        """Without --json, items are a table with their title."""
        result = await self.cli("cache", "get", SERVICE, BLOG, "-p", "alice", "--max", "1")
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("Post 29", result.out)
        self.assertIn("1 of 30 items", result.out)

    async def test_profile_needed(self) -> None:
        """With several profiles, --profile is required."""
        result = await self.cli("cache", "get", SERVICE, BLOG)
        assert_bad_input(self, result, "--profile", "alice, bob")

    async def test_node_not_cached(self) -> None:
        """A node that is not cached is bad input naming it."""
        result = await self.cli("cache", "get", SERVICE, "nope", "-p", "alice")
        assert_bad_input(self, result, "'nope'", "not cached")

    async def test_unknown_cursor(self) -> None:
        """An unknown --after item is bad input."""
        result = await self.cli("cache", "get", SERVICE, BLOG, "-p", "alice", "--after", "zz")
        assert_bad_input(self, result, "zz")

    async def test_two_cursors(self) -> None:
        """--after with --index is bad input."""
        result = await self.cli(
            "cache", "get", SERVICE, BLOG, "-p", "alice", "--after", "post-01", "--index", "2"
        )
        assert_bad_input(self, result, "at most one")

    async def test_bad_jid(self) -> None:
        """A malformed service JID is bad input."""
        result = await self.cli("cache", "get", "a@b@c", BLOG, "-p", "alice")
        assert_bad_input(self, result, "not a valid JID")


class PurgeTests(CacheTestCase):
    """``cache purge``."""

    async def test_dry_run(self) -> None:
        """--dry-run counts what would be purged and purges nothing."""
        result = await self.cli("--json", "cache", "purge", "--dry-run", "--type", "blog")
        self.assertEqual(result.json(), {"matched": 30, "purged": 0, "dry_run": True})
        self.assertEqual(await self.item_count(), 35)

    async def test_untyped_filter(self) -> None:
        """--type '' selects nodes without a type."""
        result = await self.cli("--json", "--yes", "cache", "purge", "--type", "")
        self.assertEqual(result.json()["purged"], 5)
        self.assertEqual(await self.item_count(), 30)

    async def test_profile_and_node_filters(self) -> None:
        """Filters combine: bob's blog node does not exist, so nothing matches."""
        result = await self.cli("--json", "cache", "purge", "--dry-run", "-p", "bob", "-n", BLOG)
        self.assertEqual(result.json()["matched"], 0)

    async def test_date_filter(self) -> None:
        """--updated-before selects older items only: none is a day old."""
        result = await self.cli("--json", "cache", "purge", "--dry-run", "--updated-before", "1d")
        self.assertEqual(result.json()["matched"], 0)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        result = await self.cli(
            "--json", "cache", "purge", "--dry-run", "--updated-before", tomorrow
        )
        self.assertEqual(result.json()["matched"], 35)

    async def test_confirmation_refused(self) -> None:
        """Without confirmation nothing is purged; exit 1."""
        result = await self.cli("cache", "purge", "--service", SERVICE, stdin="n\n")
        self.assertEqual(result.code, 1, str(result))
        self.assertEqual(await self.item_count(), 35)

    async def test_confirmed(self) -> None:
        """Confirmed (here with the command's own --yes), the matching items go; nodes stay."""
        result = await self.cli("--json", "cache", "purge", "--service", SERVICE, "--yes")
        self.assertEqual(result.json()["purged"], 30)
        stats = (await self.cli("--json", "cache", "stats")).json()
        self.assertEqual((stats["nodes"], stats["items"]), (2, 5))

    async def test_bad_date(self) -> None:
        """A malformed date is bad input naming the option."""
        result = await self.cli("cache", "purge", "--created-before", "yesterday")
        assert_bad_input(self, result, "--created-before", "'yesterday' is not a date")

    async def test_unknown_profile(self) -> None:
        """An unknown profile is bad input."""
        assert_bad_input(self, await self.cli("cache", "purge", "-p", "carol"), "carol")


class ResetTests(CacheTestCase):
    """``cache reset``."""

    async def test_reset(self) -> None:
        """Every node and item is removed; profiles stay."""
        result = await self.cli("--json", "--yes", "cache", "reset")
        self.assertEqual(result.json(), {"nodes": 2, "items": 35})
        stats = (await self.cli("--json", "cache", "stats")).json()
        self.assertEqual((stats["nodes"], stats["items"]), (0, 0))
        profiles = (await self.cli("--json", "profile", "list")).json()
        self.assertEqual(len(profiles), 2)

    async def test_refused(self) -> None:
        """Without confirmation the cache stays."""
        result = await self.cli("cache", "reset", stdin="n\n")
        self.assertEqual(result.code, 1, str(result))
        self.assertEqual(await self.item_count(), 35)


class SearchTests(CacheTestCase):
    """``cache search``: every query key as an option."""

    async def search(self, *args: str) -> list[tuple[str, str]]:
        """(profile, item) of the results of ``cache search ARGS``."""
        result = await self.cli("--json", "cache", "search", *args)
        self.assertEqual(result.code, 0, str(result))
        return [(r["profile"], r["name"]) for r in result.json()]

    async def test_full_text(self) -> None:
        """--fts matches the text of items, in every profile by default."""
        found = await self.search("--fts", "post 3", "--order-by", "item_id")
        self.assertEqual(found, [("alice", "post-03"), ("bob", "post-03")])

    async def test_profile_scope(self) -> None:
        """--profile restricts the search to that profile."""
        found = await self.search("--fts", "3", "--profile", "bob")
        self.assertEqual(found, [("bob", "post-03")])

    async def test_parsed_filter(self) -> None:
        """--parsed PATH OP VALUE filters on parsed data (a text value here)."""
        self.assertEqual(
            await self.search("--parsed", "title", "==", "Post 7"), [("alice", "post-07")]
        )

    async def test_parsed_json_value(self) -> None:
        """A JSON VALUE is decoded: ``in`` takes a list."""
        found = await self.search(
            "--parsed", "title", "in", '["Post 1", "Post 2"]', "--order-by", "item_id"
        )
        self.assertEqual(found, [("alice", "post-01"), ("alice", "post-02")])

    async def test_type_order_limit_index(self) -> None:
        """--type, --order-by with a direction, --index and --limit combine."""
        found = await self.search(
            "--type", "blog", "--order-by", "item_id:desc", "--index", "1", "--limit", "2"
        )
        self.assertEqual(found, [("alice", "post-28"), ("alice", "post-27")])

    async def test_order_by_path(self) -> None:
        """--order-by accepts a parsed path."""
        found = await self.search(
            "--parsed", "title", "like", "Post 1%", "--order-by", "title:desc", "--limit", "1"
        )
        self.assertEqual(found, [("alice", "post-19")])

    async def test_service_and_node(self) -> None:
        """--service and --node select nodes."""
        found = await self.search("--service", "bob@example.org", "--node", "misc", "--no-limit")
        self.assertEqual(len(found), 5)

    async def test_table_for_people(self) -> None:
        """Without --json, results are a table with a count."""
        result = await self.cli("cache", "search", "--fts", "post 7")
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("post-07", result.out)
        self.assertIn("1 result(s)", result.out)

    async def test_unknown_operator(self) -> None:
        """An unknown operator is bad input naming it."""
        result = await self.cli("cache", "search", "--parsed", "title", "~=", "x")
        assert_bad_input(self, result, "unknown operator '~='")

    async def test_bad_fts(self) -> None:
        """A malformed full-text query is bad input."""
        assert_bad_input(self, await self.cli("cache", "search", "--fts", '"open'), "fts")

    async def test_bad_direction(self) -> None:
        """An unknown direction is bad input."""
        result = await self.cli("cache", "search", "--order-by", "creation:up")
        assert_bad_input(self, result, "unknown direction 'up'")

    async def test_malformed_path(self) -> None:
        """An empty path segment is bad input."""
        result = await self.cli("cache", "search", "--parsed", "a..b", "==", "1")
        assert_bad_input(self, result, "malformed path 'a..b'")
