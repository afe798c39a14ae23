"""``sat-storage db port`` run as users do: dry run, interruption and resume, refusals."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import psycopg
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sat_storage.port import target
from twisted_tests.cli.helpers import assert_bad_input, isolated_env, run_cli, spawn_cli
from twisted_tests.db import make_storage
from twisted_tests.port.fill import api_view
from twisted_tests.port.test_port import empty_postgresql, populated_sqlite, sqlite_file


def copied_rows(url: str) -> int:
    """Rows an interrupted port recorded as copied in the target."""
    with psycopg.connect(target.conninfo(url)) as connection:
        row = connection.execute(f"SELECT sum(rows) FROM {target.STATE_TABLE}").fetchone()
    return int(row[0] or 0)


class PortCliTests(TestCase):
    """A populated SQLite source and an empty PostgreSQL target."""

    async def setUp(self) -> None:
        self.source_url, self.source = await populated_sqlite(self, items=60)
        self.target_url = empty_postgresql(self)

    async def port(self, *args: str) -> Any:
        """Run ``db port --from SOURCE --to TARGET ARGS``."""
        return await run_cli(
            self, "db", "port", "--from", self.source_url, "--to", self.target_url, *args
        )

    async def test_dry_run(self) -> None:
        """--dry-run lists the rows per table and changes nothing in the target."""
        result = await self.port("--dry-run", "--json")
        self.assertEqual(result.code, 0, str(result))
        plan = result.json()
        tables = {t["table"]: t["rows"] for t in plan["tables"]}
        self.assertEqual(tables["pubsub_items"], 120)
        self.assertEqual(plan["target_state"], "empty")
        self.assertIsNone(plan["target_revision"])
        again = (await self.port("--dry-run", "--json")).json()
        self.assertIsNone(again["target_revision"])

    async def test_killed_then_resumed(self) -> None:
        """A port killed mid-copy resumes where it stopped: verified, every row once."""
        env = isolated_env(self)
        args = ["--json", "db", "port", "--from", self.source_url, "--to", self.target_url]
        progressed: defer.Deferred[None] = defer.Deferred()

        def on_line(line: str) -> None:
            event = json.loads(line)
            if event["event"] == "progress" and event["done"] >= 50 and not progressed.called:
                progressed.callback(None)

        process, ended = spawn_cli([*args, "--batch-size", "1"], env, on_line=on_line)
        await progressed
        process.signalProcess("KILL")
        killed = await ended
        self.assertEqual(killed.code, -9, str(killed))
        total = sum(t["rows"] for t in (await self.port("--dry-run", "--json")).json()["tables"])
        self.assertTrue(50 <= copied_rows(self.target_url) < total)
        result = await run_cli(self, *args, env=env)
        self.assertEqual(result.code, 0, str(result))
        done = json.loads(result.out.splitlines()[-1])
        self.assertEqual((done["event"], done["resumed"], done["verified"]), ("done", True, True))
        self.assertEqual(done["rows"], total)
        ported = await make_storage(self, self.target_url)
        self.assertEqual(await api_view(ported), await api_view(self.source))

    async def test_people_output(self) -> None:
        """Without --json: the steps, a table of verified tables and a summary line."""
        result = await self.port()
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("verified:", result.out)
        self.assertIn("pubsub_items", result.out)
        self.assertIn("ported ", result.out)
        self.assertIn("rows/s", result.err)

    async def test_target_not_empty(self) -> None:
        """A second port into the now filled target is refused (exit 1, one table named)."""
        self.assertEqual((await self.port()).code, 0)
        assert_bad_input(self, await self.port(), "the target is not empty", "profiles")

    async def test_bad_value(self) -> None:
        """A value PostgreSQL refuses is reported with table, row and column, no traceback."""
        await self.source.close()
        with sqlite3.connect(sqlite_file(self.source_url)) as connection:
            connection.execute("UPDATE history SET source_res = 'a' || char(0) WHERE rowid = 1")
            uid = connection.execute("SELECT uid FROM history WHERE rowid = 1").fetchone()[0]
        result = await self.port()
        self.assertEqual(result.code, 1, str(result))
        self.assertIn(f"table history, row uid='{uid}', column source_res", result.err)
        self.assertNotIn("Traceback", result.err)

    async def test_not_postgresql(self) -> None:
        """A target that is not PostgreSQL is refused."""
        result = await run_cli(
            self, "db", "port", "--from", self.source_url, "--to", self.source_url
        )
        assert_bad_input(self, result, "--to must be a PostgreSQL URL")
