"""``sat-storage db`` with plugin schemas: status per branch, upgrade/downgrade a branch."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from sat_storage import migration
from twisted_tests.cli.helpers import assert_bad_input, run_cli
from twisted_tests.db import database_url, make_storage
from twisted_tests.schema import connect
from twisted_tests.schemas.helpers import install_example
from twisted_tests.schemas.test_startup import has_table

HEAD = migration.head_revision()


class BranchCommandTests(TestCase):
    """Branches on the command line (the example plugin installed)."""

    async def database(self) -> str:
        """A database with the core and the notes schema at their heads."""
        install_example(self)
        url = database_url(self)
        await (await make_storage(self, url)).close()
        return url

    async def test_status_lists_branches(self) -> None:
        """db status gives each branch with its current and head revisions."""
        url = await self.database()
        result = await run_cli(self, "--json", "db", "status", db_url=url)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(result.json()["branches"], [
            {"branch": "core", "current": HEAD, "head": HEAD, "state": "up to date"},
            {"branch": "notes", "current": "notes_0002", "head": "notes_0002",
             "state": "up to date"},
        ])  # fmt: skip
        self.assertEqual(result.json()["tables"]["notes"], 0)

    async def test_status_for_people(self) -> None:
        """Without --json, a Branches table."""
        url = await self.database()
        result = await run_cli(self, "db", "status", db_url=url)
        self.assertIn("Branches", result.out)
        self.assertRegex(result.out, r"notes\s+\S*\s*notes_0002\s+\S*\s*notes_0002")

    async def test_downgrade_and_upgrade_branch(self) -> None:
        """db downgrade notes REV / db upgrade notes move that branch only."""
        url = await self.database()
        result = await run_cli(self, "--yes", "--json", "db", "downgrade", "notes", "base",
                               db_url=url)  # fmt: skip
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(result.json(), {"branch": "notes", "previous": "notes_0002",
                                         "current": None, "action": "downgraded"})  # fmt: skip
        connection = connect(self, url)
        self.assertFalse(has_table(connection, "notes"))
        self.assertEqual(migration.current_revision(connection), HEAD)
        result = await run_cli(self, "--json", "db", "upgrade", "notes", "notes_0001", db_url=url)
        self.assertEqual(result.json()["current"], "notes_0001")
        result = await run_cli(self, "db", "upgrade", "notes", db_url=url)
        self.assertIn("notes: upgraded: notes_0001 -> notes_0002", result.out)

    async def test_core_downgrade_refused(self) -> None:
        """The core does not go below what the notes branch needs; nothing changes."""
        url = await self.database()
        result = await run_cli(self, "--yes", "db", "downgrade", "core", "base", db_url=url)
        assert_bad_input(self, result, "schema 'notes'", "db downgrade notes base")
        self.assertTrue(has_table(connect(self, url), "notes"))

    async def test_unknown_branch_revision(self) -> None:
        """A revision outside the branch is refused with the branch's choices."""
        url = await self.database()
        result = await run_cli(self, "db", "upgrade", "notes", "0002", db_url=url)
        assert_bad_input(self, result, "choose head, base or")

    async def test_upgrade_everything(self) -> None:
        """db upgrade on an empty database: the core, then every plugin schema."""
        install_example(self)
        url = database_url(self, migrated=False)
        result = await run_cli(self, "--json", "db", "upgrade", db_url=url)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(result.json()["action"], "created")
        notes = result.json()["branches"]["notes"]
        self.assertEqual((notes["action"], notes["current"]), ("created", "notes_0002"))
