"""What a new administrator hits first: option placement, prompts, pipes, help."""

from __future__ import annotations

import os
from types import SimpleNamespace

from twisted.internet import utils
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber import jid

from sat_storage.xml_tools import parse_xml
from twisted_tests.cli.helpers import COMMAND, isolated_env, run_cli
from twisted_tests.db import database_url, make_storage, sqlite_url


class GlobalOptionsTests(TestCase):
    """Global options are accepted after the subcommand too."""

    async def test_json_after_command(self) -> None:
        """``db status --json`` prints the JSON status."""
        url = sqlite_url(self)
        result = await run_cli(self, "db", "status", "--json", db_url=url)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(result.json()["url"], url)

    async def test_db_url_after_command(self) -> None:
        """``--db-url`` after the command picks the database."""
        url = sqlite_url(self)
        result = await run_cli(self, "db", "status", "--db-url", url, "--json")
        self.assertEqual(result.json()["url"], url)

    async def test_help_lists_them(self) -> None:
        """A command's help shows the global options it accepts."""
        result = await run_cli(self, "profile", "list", "--help")
        for option in ("--json", "--db-url", "--config", "--verbose"):
            self.assertIn(option, result.out)


class PromptTests(TestCase):
    """Confirmations."""

    async def test_no_terminal_says_yes_option(self) -> None:
        """A question with no answer (input ended) says to use --yes; nothing is done."""
        url = database_url(self)
        await run_cli(self, "profile", "create", "alice", db_url=url)
        result = await run_cli(self, "profile", "delete", "alice", db_url=url, stdin="")
        self.assertEqual(result.code, 1, str(result))
        self.assertIn("pass --yes to confirm without asking", result.err)
        listed = await run_cli(self, "--json", "profile", "list", db_url=url)
        self.assertEqual([p["name"] for p in listed.json()], ["alice"])

    async def test_refusal_is_aborted(self) -> None:
        """Answering no aborts without mentioning --yes."""
        url = database_url(self)
        await run_cli(self, "profile", "create", "alice", db_url=url)
        result = await run_cli(self, "profile", "delete", "alice", db_url=url, stdin="n\n")
        self.assertEqual(result.code, 1, str(result))
        self.assertIn("error: aborted", result.err)
        self.assertNotIn("--yes", result.err)


class HelpTests(TestCase):
    """Help where a user looks for it."""

    async def test_no_argument_prints_help(self) -> None:
        """``sat-storage`` alone prints its help, as click does (exit 2)."""
        result = await run_cli(self)
        self.assertEqual(result.code, 2, str(result))
        self.assertIn("Commands:", result.err)
        self.assertIn("cache", result.err)
        self.assertNotIn("error", result.err)

    async def test_search_help_points_to_documentation(self) -> None:
        """``cache search --help`` names the documentation page of the query language."""
        result = await run_cli(self, "cache", "search", "--help")
        self.assertIn('"The pubsub cache"', result.out)
        self.assertIn("doc/pubsub_cache.rst", result.out)
        self.assertNotIn("DESIGN", result.out)


class PipeTests(TestCase):
    """Output read by a program that stops early."""

    async def test_head_exits_zero_quietly(self) -> None:
        """``sat-storage ... | head -n 1``: exit 0, nothing on stderr."""
        url = database_url(self)
        storage = await make_storage(self, url)
        await storage.create_profile("alice")
        client = SimpleNamespace(profile="alice")
        node = await storage.set_pubsub_node(client, jid.JID("pubsub.example.org"), "big")
        items = [
            parse_xml(
                f"<item xmlns='http://jabber.org/protocol/pubsub' id='i{i}'>"
                f"<p xmlns='urn:example'>{'x' * 400}</p></item>"
            )
            for i in range(400)
        ]
        await storage.cache_pubsub_items(client, node, items)
        await storage.close()
        command = " ".join([*COMMAND, "--db-url", url, "--json", "cache", "search", "--no-limit"])
        script = f'{command} | head -n 1 >/dev/null; echo "exit=${{PIPESTATUS[0]}}"'
        out, err, code = await utils.getProcessOutputAndValue(
            "/bin/bash", ["-c", script], env=isolated_env(self), path=os.getcwd()
        )
        self.assertEqual(out.decode().strip(), "exit=0")
        self.assertEqual(err.decode(), "")
        self.assertEqual(code, 0)


SERVICE = "pubsub.example.org"


class CachedNodeTests(TestCase):
    """``cache get`` and summaries on a database filled through the storage."""

    async def setUp(self) -> None:
        self.url = database_url(self)
        storage = await make_storage(self, self.url)
        await storage.create_profile("alice")
        client = SimpleNamespace(profile="alice")
        self.node = await storage.set_pubsub_node(client, jid.JID(SERVICE), "misc")
        items = [
            parse_xml(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='text'>"
                "<note xmlns='urn:example:notes'><meta/><body>  Buy\n  milk  </body></note>"
                "</item>"
            ),
            parse_xml(
                "<item xmlns='http://jabber.org/protocol/pubsub' id='empty'>"
                "<geoloc xmlns='http://jabber.org/protocol/geoloc'/></item>"
            ),
        ]
        await storage.cache_pubsub_items(client, self.node, items)
        self.storage = storage

    async def get(self, *args: str) -> object:
        """``cache get SERVICE misc ARGS`` on this database."""
        await self.storage.close()
        return await run_cli(self, "cache", "get", SERVICE, "misc", *args, db_url=self.url)

    async def test_summaries_of_other_payloads(self) -> None:
        """A non-Atom item shows its first text, one without text its element name."""
        result = await self.get("--order", "creation")
        self.assertIn("Buy milk", result.out)
        self.assertIn("<geoloc/> (http://jabber.org/protocol/geoloc)", result.out)
        self.assertNotIn("<item", result.out)

    async def test_incomplete_node_warns(self) -> None:
        """A node left IN_PROGRESS shows its state and a warning on stderr."""
        from sat_storage.models import SyncState

        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.IN_PROGRESS)
        result = await self.get()
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("sync state in_progress", result.out)
        self.assertIn("warning: 'misc' at pubsub.example.org is not fully synchronised", result.err)
        self.assertIn("cache sync pubsub.example.org misc", result.err)

    async def test_completed_node_quiet(self) -> None:
        """A COMPLETED node shows its state and no warning; --json carries the state."""
        from sat_storage.models import SyncState

        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.COMPLETED)
        result = await self.get("--json")
        self.assertEqual(result.json()["sync_state"], "completed")
        self.assertEqual(result.err, "")


class PasswordTests(TestCase):
    """Passwords that stay out of the shell history."""

    async def stored_password(self, url: str) -> str | None:
        """The password the profile ``alice`` connects with."""
        storage = await make_storage(self, url)
        try:
            return await storage.get_ind_param("Connection", "Password", "alice")
        finally:
            await storage.close()

    async def test_password_stdin(self) -> None:
        """--password-stdin stores the first line of standard input."""
        url = database_url(self)
        result = await run_cli(
            self, "profile", "create", "alice", "--password-stdin", db_url=url, stdin="s3cr et\nx\n"
        )
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(await self.stored_password(url), "s3cr et")

    async def test_password_prompt(self) -> None:
        """--password without a value asks twice and stores the answer."""
        url = database_url(self)
        await run_cli(self, "profile", "create", "alice", db_url=url)
        result = await run_cli(
            self, "profile", "set", "alice", "--password", db_url=url, stdin="pw1\npw1\n"
        )
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("Password", result.err)
        self.assertNotIn("pw1", result.out + result.err)
        self.assertEqual(await self.stored_password(url), "pw1")

    async def test_password_stdin_empty(self) -> None:
        """--password-stdin with nothing to read is bad input; nothing is created."""
        url = database_url(self)
        result = await run_cli(
            self, "profile", "create", "alice", "--password-stdin", db_url=url, stdin=""
        )
        self.assertEqual(result.code, 1, str(result))
        self.assertIn("holds no password", result.err)
        listed = await run_cli(self, "--json", "profile", "list", db_url=url)
        self.assertEqual(listed.json(), [])
