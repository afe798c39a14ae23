"""Profiles adopted from Libervia connect to Prosody with their stored, encrypted credentials."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from sat_storage.libervia import ProfilePasswordError
from twisted_tests.cli.helpers import RunningCli, isolated_env
from twisted_tests.libervia.fixture import execute, expected, fixture_copy, url_of
from twisted_tests.pubsub_cache.harness import BASE_CONFIG, make_host
from twisted_tests.xmpp_servers import XMPPServer, prosody

_registered: set[tuple[int, str]] = set()


def credentials_fixture(testcase: TestCase) -> Path:
    """A fixture copy without its pubsub nodes: one is IN_PROGRESS, and the cache would
    resume its synchronisation in the background as the profile connects."""
    path = fixture_copy(testcase)
    for table in ("pubsub_items", "pubsub_subs", "pubsub_nodes"):
        execute(path, f"DELETE FROM {table}")
    return path


async def register_fixture_accounts(server: XMPPServer) -> None:
    """The fixture's XMPP accounts on ``server`` (once per server)."""
    for name, creds in expected()["credentials"].items():
        if name == "gateway" or (server.port, name) in _registered:
            continue
        await server.register(creds["jid"].split("@")[0], creds["xmpp_password"])
        _registered.add((server.port, name))


class AdoptedCredentialsTests(TestCase):
    async def setUp(self) -> None:
        self.server = prosody()
        await register_fixture_accounts(self.server)
        self.path = credentials_fixture(self)
        self.host = await make_host(self, db_url=url_of(self.path))
        self.storage = self.host.memory.storage
        for profile in ("adopted", "guarded"):
            await self.point_at_server(self.storage, profile)

    async def point_at_server(self, storage: object, profile: str) -> None:
        """Where the test server listens (the fixture's JIDs are @localhost)."""
        await storage.set_ind_param("Connection", "Force server", self.server.host, profile)
        await storage.set_ind_param("Connection", "Force port", str(self.server.port), profile)

    async def test_empty_profile_password(self) -> None:
        """A profile without profile password connects: its XMPP password is decrypted."""
        client = await self.host.connect("adopted")
        self.assertEqual(client.jid.userhost(), expected()["credentials"]["adopted"]["jid"])
        await self.host.disconnect("adopted")

    async def test_stored_values_unchanged(self) -> None:
        """Connecting does not rewrite the encrypted password nor the personal key."""
        params_before = await self.storage.get_ind_param("Connection", "Password", "adopted")
        key_before = await self.storage.get_privates("crypto", profile="adopted")
        await self.host.connect("adopted")
        await self.host.disconnect("adopted")
        self.assertEqual(
            await self.storage.get_ind_param("Connection", "Password", "adopted"), params_before
        )
        self.assertEqual(await self.storage.get_privates("crypto", profile="adopted"), key_before)
        self.assertNotEqual(params_before, expected()["credentials"]["adopted"]["xmpp_password"])

    async def test_profile_password_given(self) -> None:
        """A profile with a profile password connects when it is given."""
        password = expected()["credentials"]["guarded"]["profile_password"]
        client = await self.host.connect("guarded", profile_password=password)
        self.assertEqual(client.jid.userhost(), expected()["credentials"]["guarded"]["jid"])
        await self.host.disconnect("guarded")

    async def test_profile_password_missing(self) -> None:
        """Without its profile password: a clear error saying it is needed."""
        with self.assertRaises(ProfilePasswordError) as caught:
            await self.host.connect("guarded")
        self.assertIn("has a profile password", str(caught.exception))

    async def test_wrong_profile_password(self) -> None:
        """A wrong profile password is refused before any connection."""
        with self.assertRaises(ProfilePasswordError) as caught:
            await self.host.connect("guarded", profile_password="not-it")
        self.assertIn("wrong profile password for profile 'guarded'", str(caught.exception))
        self.assertEqual(self.host.clients, {})


class RunCommandTests(TestCase):
    """``sat-storage run --profile NAME`` reads the profile password from standard input."""

    async def setUp(self) -> None:
        self.server = prosody()
        await register_fixture_accounts(self.server)
        self.path = credentials_fixture(self)
        host = await make_host(self, db_url=url_of(self.path), stop=False)
        await AdoptedCredentialsTests.point_at_server(self, host.memory.storage, "guarded")
        await host.stop()
        self.config = Path(self.mktemp())
        self.config.write_text(BASE_CONFIG)

    def start(self, stdin: str) -> RunningCli:
        argv = ["--db-url", url_of(self.path), "--config", str(self.config), "--json",
                "run", "--profile", "guarded"]  # fmt: skip
        return RunningCli(self, argv, isolated_env(self), stdin=stdin)

    async def test_password_on_stdin(self) -> None:
        """The right password on stdin: connected, then a clean stop."""
        password = expected()["credentials"]["guarded"]["profile_password"]
        running = self.start(password + "\n")
        await running.wait_for("connected", profile="guarded")
        running.signal("TERM")
        self.assertEqual((await running.ended).code, 0)

    async def test_wrong_password_on_stdin(self) -> None:
        """A wrong password: an error event naming it, and no profile connects."""
        running = self.start("nope\n")
        result = await running.ended
        self.assertEqual(result.code, 2, str(result))
        error = next(e for e in running.events if e["event"] == "error")
        self.assertIn("wrong profile password", error["message"])
