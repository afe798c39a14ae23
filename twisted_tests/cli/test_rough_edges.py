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
