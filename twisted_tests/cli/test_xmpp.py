"""``cache sync`` and ``run`` against a real Prosody (the suite's fixture)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from sat_storage.models import SyncState
from twisted_tests.cli.helpers import RunningCli, assert_bad_input, isolated_env, run_cli
from twisted_tests.db import database_url, make_storage
from twisted_tests.pubsub_cache.harness import connected_profile, make_host
from twisted_tests.pubsub_cache.helpers import atom_item
from twisted_tests.xmpp_servers import free_port, prosody, unique_name

ITEMS = 30
NODE_OPTIONS = {"pubsub#max_items": "1000", "pubsub#access_model": "open"}
WAIT = 20.0  # seconds for a change made by the command to show in the database


class ProsodyCliTestCase(TestCase):
    """A node with ``ITEMS`` Atom items on Prosody, and a CLI database with profile
    ``reader`` (a fresh account) configured to connect to it."""

    async def setUp(self) -> None:
        self.server = prosody()
        publisher = await make_host(self)
        self.xep_0060 = publisher.plugins["XEP-0060"]
        self.writer = await connected_profile(
            publisher, self.server, await self.server.admin_account()
        )
        self.service = self.server.pubsub_service
        self.node = unique_name(NS_MICROBLOG)
        await self.xep_0060.create_node(self.writer, self.service, self.node, NODE_OPTIONS)
        await self.publish([f"entry-{i:02d}" for i in range(ITEMS)])
        self.url = database_url(self)
        self.config = Path(self.mktemp())
        self.config.write_text("[xmpp]\ntls = plaintext\n")
        account = await self.server.create_account("reader")
        await self.add_profile("reader", account.jid.full(), account.password, self.server.port)

    async def publish(self, item_ids: list[str]) -> None:
        """Publish Atom items titled after their ids."""
        items = [atom_item(item_id, f"Entry {item_id}", "body text") for item_id in item_ids]
        await self.xep_0060.publish(self.writer, self.service, self.node, items)

    async def add_profile(self, name: str, jid: str, password: str, port: int) -> None:
        """A profile of the CLI database connecting to the test server on ``port``."""
        storage = await make_storage(self, self.url)
        await storage.create_profile(name)
        params = {"JabberID": jid, "Password": password, "Force server": "127.0.0.1"}
        for param, value in dict(params, **{"Force port": str(port)}).items():
            await storage.set_ind_param("Connection", param, value, name)
        await storage.close()

    async def cli(self, *args: str) -> object:
        """Run a command with this test's database and config."""
        return await run_cli(self, "--config", str(self.config), *args, db_url=self.url)

    async def cached(self, profile: str = "reader") -> tuple[SyncState | None, int]:
        """Sync state and item count of the node in the CLI database."""
        storage = await make_storage(self, self.url)
        try:
            client = SimpleNamespace(profile=profile)
            node = await storage.get_pubsub_node(client, self.service, self.node)
            if node is None:
                return None, 0
            _items, metadata = await storage.get_items(node, max_items=0)
            return node.sync_state, metadata["rsm"]["count"]
        finally:
            await storage.close()

    async def eventually(self, check: object, timeout: float = WAIT) -> None:
        """Wait until ``await check()`` is true (the command works in another process)."""
        deadline = reactor.seconds() + timeout
        while not await check():
            if reactor.seconds() > deadline:
                self.fail(f"still false after {timeout}s: {check}")
            await task.deferLater(reactor, 0.1)


class SyncTests(ProsodyCliTestCase):
    """``cache sync``."""

    async def test_sync(self) -> None:
        """The node is synchronised into the cache: every item, state completed."""
        result = await self.cli(
            "--json", "cache", "sync", self.service.full(), self.node, "-p", "reader"
        )
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual((result.json()["state"], result.json()["items"]), ("completed", ITEMS))
        self.assertEqual(await self.cached(), (SyncState.COMPLETED, ITEMS))

    async def test_synced_items_readable(self) -> None:
        """After a sync, ``cache get`` and ``cache search`` read the items offline."""
        await self.cli("cache", "sync", self.service.full(), self.node, "-p", "reader")
        page = (
            await self.cli("--json", "cache", "get", self.service.full(), self.node, "--max", "2")
        ).json()
        self.assertEqual([i["name"] for i in page["items"]], ["entry-28", "entry-29"])
        found = (
            await self.cli("--json", "cache", "search", "--fts", "entry 07", "--type", "blog")
        ).json()
        self.assertEqual([r["name"] for r in found], ["entry-07"])

    async def test_progress_for_people(self) -> None:
        """Without --json, a progress bar (cached/total) goes to stderr, a summary to stdout."""
        result = await self.cli("cache", "sync", self.service.full(), self.node, "-p", "reader")
        self.assertEqual(result.code, 0, str(result))
        self.assertIn(f"{ITEMS}/{ITEMS}", result.err)
        self.assertIn(f"completed, {ITEMS} items cached", result.out)

    async def test_unknown_profile(self) -> None:
        """An unknown profile is bad input."""
        result = await self.cli("cache", "sync", self.service.full(), self.node, "-p", "nobody")
        assert_bad_input(self, result, "unknown profile: 'nobody'")

    async def test_profile_without_jid(self) -> None:
        """A profile without a JabberID is bad input naming the parameter."""
        await self.cli("profile", "create", "bare")
        result = await self.cli("cache", "sync", self.service.full(), self.node, "-p", "bare")
        assert_bad_input(self, result, "JabberID")

    async def test_unreachable_server(self) -> None:
        """A server that refuses the connection is a runtime failure: one line, exit 2."""
        await self.add_profile("lost", "lost@localhost", "pw", free_port())
        result = await self.cli("cache", "sync", self.service.full(), self.node, "-p", "lost")
        self.assertEqual(result.code, 2, str(result))
        self.assertEqual(len(result.err.strip().splitlines()), 1, str(result))
        self.assertIn("cannot connect lost@localhost", result.err)


class RunTests(ProsodyCliTestCase):
    """``run``: the host in the foreground."""

    def start(self, *args: str) -> RunningCli:
        """``run --json ARGS`` in the background (killed at cleanup if still running)."""
        env = isolated_env(self)
        argv = ["--db-url", self.url, "--config", str(self.config), "--json", "run", *args]
        return RunningCli(self, argv, env)

    async def test_sync_then_sigterm(self) -> None:
        """--sync synchronises the node; SIGTERM stops cleanly with exit 0."""
        running = self.start("-p", "reader", "--sync", self.service.full(), self.node)
        await running.wait_for("ready", profiles=["reader"])
        synced = await running.wait_for("synced", node=self.node)
        self.assertEqual(synced["state"], "completed")
        running.signal("TERM")
        result = await running.ended
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(running.events[-1]["event"], "stopped")
        self.assertEqual(await self.cached(), (SyncState.COMPLETED, ITEMS))

    async def test_events_keep_cache_in_sync(self) -> None:
        """An item published while it runs reaches the cache."""
        running = self.start("-p", "reader", "--sync", self.service.full(), self.node)
        await running.wait_for("synced", node=self.node)
        await self.publish(["late-entry"])

        async def arrived() -> bool:
            return (await self.cached())[1] == ITEMS + 1

        await self.eventually(arrived)
        running.signal("INT")
        self.assertEqual((await running.ended).code, 0)

    async def test_resyncs_stale_nodes(self) -> None:
        """Cached nodes left unsynchronised (after a purge) are synchronised again at start."""
        await self.cli("cache", "sync", self.service.full(), self.node, "-p", "reader")
        await self.cli("--yes", "cache", "purge", "--node", self.node)
        self.assertEqual(await self.cached(), (None, 0))
        running = self.start("-p", "reader")
        synced = await running.wait_for("synced", node=self.node)
        self.assertEqual(synced["state"], "completed")
        running.signal("TERM")
        await running.ended
        self.assertEqual(await self.cached(), (SyncState.COMPLETED, ITEMS))

    async def test_stop_during_sync(self) -> None:
        """SIGINT as the sync starts: clean exit, and never a half-written COMPLETED node."""
        # -v: the synchronisation's steps are logged, shown if the state is wrong
        running = self.start("-p", "reader", "--sync", self.service.full(), self.node, "-v")
        await running.wait_for("sync", node=self.node)
        running.signal("INT")
        result = await running.ended
        self.assertEqual(result.code, 0, str(result))
        state, count = await self.cached()
        if state is SyncState.COMPLETED:
            self.assertEqual(count, ITEMS, str(result))
        else:
            self.assertIn(state, (None, SyncState.ERROR), str(result))
            self.assertEqual(count, 0, str(result))

    async def test_unreachable_profile(self) -> None:
        """A profile that cannot connect is reported; the others run."""
        await self.add_profile("lost", "lost@localhost", "pw", free_port())
        running = self.start("-p", "lost", "-p", "reader")
        error = await running.wait_for("error", profile="lost")
        self.assertIn("cannot connect", error["message"])
        await running.wait_for("ready", profiles=["reader"])
        running.signal("TERM")
        self.assertEqual((await running.ended).code, 0)

    async def test_nobody_connects(self) -> None:
        """When no profile can connect, it exits 2."""
        await self.add_profile("lost", "lost@localhost", "pw", free_port())
        result = await self.cli("run", "-p", "lost")
        self.assertEqual(result.code, 2, str(result))
        self.assertIn("no profile could connect", result.err)


class RunInputTests(TestCase):
    """``run``'s bad input (no server needed)."""

    async def test_no_profile(self) -> None:
        """Without any profile to connect, it says how to create one."""
        url = database_url(self)
        assert_bad_input(self, await run_cli(self, "run", db_url=url), "profile create")

    async def test_unknown_profile(self) -> None:
        """An unknown profile is bad input."""
        url = database_url(self)
        result = await run_cli(self, "run", "-p", "nobody", db_url=url)
        assert_bad_input(self, result, "unknown profile: 'nobody'")
