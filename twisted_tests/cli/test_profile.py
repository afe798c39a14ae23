"""``sat-storage profile``: list, create, delete."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from twisted_tests.cli.helpers import assert_bad_input, run_cli
from twisted_tests.db import database_url, make_storage


class ProfileTests(TestCase):
    """Profiles from the command line, on the suite's database."""

    def setUp(self) -> None:
        self.url = database_url(self)

    async def cli(self, *args: str, stdin: str = "") -> object:
        """Run a command on this test's database."""
        return await run_cli(self, *args, db_url=self.url, stdin=stdin)

    async def names(self) -> list[str]:
        """Names of the profiles, through ``profile list --json``."""
        return [p["name"] for p in (await self.cli("--json", "profile", "list")).json()]

    async def test_create_then_list(self) -> None:
        """A created profile is listed."""
        result = await self.cli("profile", "create", "alice")
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(await self.names(), ["alice"])

    async def test_create_component(self) -> None:
        """--component records the entry point, shown by list."""
        await self.cli("profile", "create", "gateway", "--component", "irc")
        (listed,) = (await self.cli("--json", "profile", "list")).json()
        self.assertEqual((listed["name"], listed["component"]), ("gateway", "irc"))

    async def test_connection_settings(self) -> None:
        """--jid/--server/--port are stored as the host's Connection params and listed."""
        await self.cli(
            "profile", "create", "alice", "--jid", "alice@example.org", "--password", "pw",
            "--server", "127.0.0.1", "--port", "15222",
        )  # fmt: skip
        (listed,) = (await self.cli("--json", "profile", "list")).json()
        self.assertEqual(
            (listed["jid"], listed["server"], listed["port"]),
            ("alice@example.org", "127.0.0.1", 15222),
        )

    async def test_password_stored(self) -> None:
        """--password is stored where the host reads it (and is never listed)."""
        await self.cli("profile", "create", "alice", "--jid", "a@example.org", "--password", "pw")
        storage = await make_storage(self, self.url)
        self.assertEqual(await storage.get_ind_param("Connection", "Password", "alice"), "pw")
        listed = (await self.cli("profile", "list")).out
        self.assertNotIn("pw", listed.replace("port", ""))

    async def test_set(self) -> None:
        """``profile set`` changes only the settings given."""
        await self.cli("profile", "create", "alice", "--jid", "alice@example.org")
        result = await self.cli("--json", "profile", "set", "alice", "--port", "5223")
        self.assertEqual(result.json(), {"name": "alice", "changed": ["port"]})
        (listed,) = (await self.cli("--json", "profile", "list")).json()
        self.assertEqual((listed["jid"], listed["port"]), ("alice@example.org", 5223))

    async def test_set_nothing(self) -> None:
        """``profile set`` without any setting is bad input."""
        await self.cli("profile", "create", "alice")
        assert_bad_input(self, await self.cli("profile", "set", "alice"), "nothing to set")

    async def test_set_unknown_profile(self) -> None:
        """``profile set`` of an unknown profile is bad input."""
        result = await self.cli("profile", "set", "nobody", "--port", "1")
        assert_bad_input(self, result, "unknown profile")

    async def test_bad_jid(self) -> None:
        """A JID without a user part is bad input, and no profile is created."""
        result = await self.cli("profile", "create", "alice", "--jid", "example.org")
        assert_bad_input(self, result, "no user part")
        self.assertEqual(await self.names(), [])

    async def test_bad_port(self) -> None:
        """A port out of range is bad input."""
        result = await self.cli("profile", "create", "alice", "--port", "70000")
        assert_bad_input(self, result, "--port")

    async def test_list_empty_for_people(self) -> None:
        """Without profiles, list says so."""
        result = await self.cli("profile", "list")
        self.assertEqual((result.code, result.out.strip()), (0, "no profile"))

    async def test_create_duplicate(self) -> None:
        """A second profile with the same name is bad input."""
        await self.cli("profile", "create", "alice")
        assert_bad_input(self, await self.cli("profile", "create", "alice"), "already exists")

    async def test_create_empty_name(self) -> None:
        """An empty name is bad input."""
        assert_bad_input(self, await self.cli("profile", "create", " "), "must not be empty")

    async def test_delete_with_yes(self) -> None:
        """--yes deletes without asking."""
        await self.cli("profile", "create", "alice")
        result = await self.cli("--yes", "--json", "profile", "delete", "alice")
        self.assertEqual(result.json(), {"name": "alice", "deleted": True})
        self.assertEqual(await self.names(), [])

    async def test_delete_refused(self) -> None:
        """Without confirmation the profile stays."""
        await self.cli("profile", "create", "alice")
        result = await self.cli("profile", "delete", "alice", stdin="n\n")
        self.assertEqual(result.code, 1, str(result))
        self.assertEqual(await self.names(), ["alice"])

    async def test_delete_unknown(self) -> None:
        """Deleting an unknown profile is bad input, before any question."""
        assert_bad_input(self, await self.cli("profile", "delete", "nobody"), "unknown profile")
