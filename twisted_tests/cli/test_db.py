"""``sat-storage db``: status, upgrade, downgrade, history."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from sat_storage import engines, migration
from twisted_tests.cli.helpers import assert_bad_input, run_cli
from twisted_tests.db import database_url, make_storage, sqlite_url
from twisted_tests.schema import set_revision


class StatusTests(TestCase):
    """``db status``."""

    async def test_missing_sqlite_file(self) -> None:
        """A SQLite file that does not exist is reported, and not created."""
        url = sqlite_url(self)
        result = await run_cli(self, "--json", "db", "status", db_url=url)
        self.assertEqual(result.code, 0, str(result))
        report = result.json()
        self.assertEqual((report["exists"], report["current"]), (False, None))
        self.assertFalse(engines.sqlite_path(engines.parse_url(url)).exists())

    async def test_revisions_and_row_counts(self) -> None:
        """An initialised database shows its revision, head, and rows per table."""
        url = database_url(self)
        storage = await make_storage(self, url)
        await storage.create_profile("alice")
        await storage.close()
        result = await run_cli(self, "--json", "db", "status", db_url=url)
        report = result.json()
        self.assertEqual(report["current"], migration.head_revision())
        self.assertEqual(report["head"], migration.head_revision())
        self.assertEqual(report["state"], "up to date")
        self.assertEqual(report["tables"]["profiles"], 1)
        self.assertEqual(report["tables"]["pubsub_items"], 0)
        self.assertEqual(report["engine"], engines.parse_url(url).get_backend_name())

    async def test_table_for_people(self) -> None:
        """Without --json, the status is printed as fields and a table."""
        url = database_url(self)
        await (await make_storage(self, url)).close()
        result = await run_cli(self, "db", "status", db_url=url)
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("head revision: " + migration.head_revision(), result.out)
        self.assertIn("pubsub_nodes", result.out)

    async def test_newer_database(self) -> None:
        """A database migrated by a newer version is reported as such."""
        url = database_url(self)
        await (await make_storage(self, url)).close()
        set_revision(url, "9999")
        report = (await run_cli(self, "--json", "db", "status", db_url=url)).json()
        self.assertEqual((report["current"], report["state"]), ("9999", "newer than this code"))

    async def test_unreachable_database(self) -> None:
        """A server that does not answer: one line naming the URL, password hidden, exit 1."""
        url = "postgresql://user:s3cret@127.0.0.1:1/nothing"
        result = await run_cli(self, "db", "status", db_url=url)
        assert_bad_input(self, result, "cannot open the database", "127.0.0.1:1")
        self.assertNotIn("s3cret", result.err)


class UpgradeTests(TestCase):
    """``db upgrade``."""

    async def test_creates_schema(self) -> None:
        """An empty database is created at head."""
        url = database_url(self, migrated=False)
        result = await run_cli(self, "--json", "db", "upgrade", db_url=url)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(
            result.json(),
            {"previous": None, "current": migration.head_revision(), "action": "created"},
        )

    async def test_current_database(self) -> None:
        """A database at head is left as it is."""
        url = database_url(self)
        await (await make_storage(self, url)).close()
        result = await run_cli(self, "--json", "db", "upgrade", db_url=url)
        self.assertEqual(result.json()["action"], "current")

    async def test_explicit_revision(self) -> None:
        """An explicit revision is migrated to from an empty database."""
        url = database_url(self, migrated=False)
        oldest = migration.history()[-1]["revision"]
        result = await run_cli(self, "--json", "db", "upgrade", oldest, db_url=url)
        self.assertEqual(result.json()["current"], oldest)

    async def test_unknown_revision(self) -> None:
        """An unknown revision is refused before touching the database."""
        url = sqlite_url(self)
        result = await run_cli(self, "db", "upgrade", "nope", db_url=url)
        assert_bad_input(self, result, "unknown revision 'nope'")
        self.assertFalse(engines.sqlite_path(engines.parse_url(url)).exists())

    async def test_newer_database_refused(self) -> None:
        """A database newer than the code is refused with exit 1 and left untouched."""
        url = database_url(self)
        await (await make_storage(self, url)).close()
        set_revision(url, "9999")
        result = await run_cli(self, "db", "upgrade", db_url=url)
        assert_bad_input(self, result, "9999")


class DowngradeTests(TestCase):
    """``db downgrade``."""

    async def migrated_database(self) -> str:
        """A database at head, closed again."""
        url = database_url(self)
        await (await make_storage(self, url)).close()
        return url

    async def current(self, url: str) -> str | None:
        """The revision the database is at."""
        return (await run_cli(self, "--json", "db", "status", db_url=url)).json()["current"]

    async def test_refused_without_confirmation(self) -> None:
        """Answering no (or no terminal) aborts with exit 1; nothing changes."""
        url = await self.migrated_database()
        result = await run_cli(self, "db", "downgrade", "base", db_url=url, stdin="n\n")
        self.assertEqual(result.code, 1, str(result))
        self.assertIn("aborted", result.err)
        self.assertEqual(await self.current(url), migration.head_revision())

    async def test_confirmed_on_terminal(self) -> None:
        """Answering yes downgrades."""
        url = await self.migrated_database()
        result = await run_cli(self, "db", "downgrade", "base", db_url=url, stdin="y\n")
        self.assertEqual(result.code, 0, str(result))
        self.assertIsNone(await self.current(url))

    async def test_yes_option(self) -> None:
        """--yes downgrades without asking; JSON gives both revisions."""
        url = await self.migrated_database()
        result = await run_cli(self, "--yes", "--json", "db", "downgrade", "base", db_url=url)
        self.assertEqual(
            result.json(),
            {"previous": migration.head_revision(), "current": None, "action": "downgraded"},
        )

    async def test_unknown_revision(self) -> None:
        """An unknown revision is refused with exit 1."""
        url = await self.migrated_database()
        result = await run_cli(self, "--yes", "db", "downgrade", "head~", db_url=url)
        assert_bad_input(self, result, "unknown revision")

    async def test_missing_database(self) -> None:
        """Downgrading a SQLite file that does not exist is bad input."""
        result = await run_cli(self, "--yes", "db", "downgrade", "base", db_url=sqlite_url(self))
        assert_bad_input(self, result, "no database")


class HistoryTests(TestCase):
    """``db history``."""

    async def test_marks_current_and_head(self) -> None:
        """Every revision is listed newest first; current and head are marked."""
        url = database_url(self)
        await (await make_storage(self, url)).close()
        history = (await run_cli(self, "--json", "db", "history", db_url=url)).json()
        revisions = [rev["revision"] for rev in history["revisions"]]
        self.assertEqual(revisions, [rev["revision"] for rev in migration.history()])
        head = [rev for rev in history["revisions"] if rev["head"]]
        self.assertEqual([rev["revision"] for rev in head], [migration.head_revision()])
        self.assertTrue(head[0]["current"])

    async def test_without_database(self) -> None:
        """History works before the database exists: nothing is current."""
        history = (await run_cli(self, "--json", "db", "history", db_url=sqlite_url(self))).json()
        self.assertIsNone(history["current"])
        self.assertFalse(any(rev["current"] for rev in history["revisions"]))
