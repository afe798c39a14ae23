"""Global behaviour of ``sat-storage``: options, configuration, exit codes."""

from __future__ import annotations

import os
import sys

from twisted.trial.unittest import TestCase

from twisted_tests.cli.helpers import assert_bad_input, isolated_env, run_cli
from twisted_tests.db import sqlite_url


class UsageTests(TestCase):
    """Usage errors: one line, exit 1."""

    async def test_no_command(self) -> None:
        """A group without a command names the commands it has."""
        assert_bad_input(self, await run_cli(self, "db"), "missing command", "status")

    async def test_unknown_option(self) -> None:
        """An unknown option is named."""
        assert_bad_input(self, await run_cli(self, "db", "status", "--nope"), "--nope")

    async def test_unknown_command(self) -> None:
        """An unknown command is named."""
        assert_bad_input(self, await run_cli(self, "dbx"), "dbx")

    async def test_help(self) -> None:
        """--help prints the commands and exits 0."""
        result = await run_cli(self, "--help")
        self.assertEqual(result.code, 0, str(result))
        for command in ("db", "profile", "cache", "run"):
            self.assertIn(command, result.out)

    async def test_console_script(self) -> None:
        """The installed ``sat-storage`` script runs (--version)."""
        from twisted.internet import utils

        script = os.path.join(os.path.dirname(sys.executable), "sat-storage")
        if not os.path.exists(script):
            self.skipTest(f"no console script next to {sys.executable}")
        out = await utils.getProcessOutput(script, ["--version"], env=isolated_env(self))
        self.assertIn(b"sat-storage", out)


class DatabaseUrlTests(TestCase):
    """Where the database URL comes from."""

    def write_config(self, text: str) -> str:
        """A config file with ``text``; its path."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    async def test_config_file(self) -> None:
        """--config's ``[storage] db_url`` is used."""
        url = sqlite_url(self)
        config = self.write_config(f"[storage]\ndb_url = {url}\n")
        result = await run_cli(self, "--config", config, "--json", "db", "status")
        self.assertEqual(result.json()["url"], url)

    async def test_environment(self) -> None:
        """$SAT_STORAGE_DB_URL is used when no --db-url is given."""
        url = sqlite_url(self)
        env = dict(isolated_env(self), SAT_STORAGE_DB_URL=url)
        result = await run_cli(self, "--json", "db", "status", env=env)
        self.assertEqual(result.json()["url"], url)

    async def test_default_in_xdg_data_dir(self) -> None:
        """Without any setting, the database is SQLite in the XDG data directory."""
        env = isolated_env(self)
        result = await run_cli(self, "--json", "db", "status", env=env)
        expected = os.path.join(env["XDG_DATA_HOME"], "sat_storage", "sat_storage.sqlite")
        self.assertEqual(result.json()["url"], f"sqlite:///{expected}")

    async def test_missing_config_file(self) -> None:
        """A --config file that does not exist is bad input."""
        result = await run_cli(self, "--config", "/nonexistent/x.conf", "db", "status")
        assert_bad_input(self, result, "/nonexistent/x.conf")

    async def test_malformed_config_file(self) -> None:
        """A config file that is not INI is bad input."""
        config = self.write_config("this is not ini\n")
        assert_bad_input(self, await run_cli(self, "--config", config, "db", "status"), "malformed")

    async def test_unsupported_engine(self) -> None:
        """An engine other than SQLite/PostgreSQL is bad input."""
        result = await run_cli(self, "db", "status", db_url="mysql://u@localhost/x")
        assert_bad_input(self, result, "unsupported database 'mysql'")

    async def test_not_a_database(self) -> None:
        """A file that is not SQLite is reported as bad input, without a traceback."""
        path = self.write_config("garbage" * 100)
        result = await run_cli(self, "profile", "list", db_url=f"sqlite:///{path}")
        assert_bad_input(self, result, "cannot open the database")
