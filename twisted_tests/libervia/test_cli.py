"""``sat-storage db status`` and ``db upgrade`` on a Libervia 0.9 database."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from sat_storage import migration
from sat_storage.libervia import detect
from twisted_tests.cli.helpers import run_cli
from twisted_tests.libervia.fixture import execute, fixture_copy, url_of
from twisted_tests.libervia.test_refusals import SYSTEM_PICKLE, digest


class LiberviaCliTests(TestCase):
    async def test_status_reads_only(self) -> None:
        """status names the Libervia revision and the way forward; the file is unchanged."""
        path = fixture_copy(self)
        before = digest(path)
        result = await run_cli(self, "--json", "db", "status", db_url=url_of(path))
        self.assertEqual(result.code, 0, str(result))
        report = result.json()
        self.assertEqual(report["current"], detect.HEAD)
        self.assertIn("Libervia 0.9 database", report["state"])
        self.assertEqual(digest(path), before)

    async def test_upgrade_names_the_backup(self) -> None:
        """upgrade adopts the file and prints where the backup is."""
        path = fixture_copy(self)
        result = await run_cli(self, "db", "upgrade", db_url=url_of(path))
        self.assertEqual(result.code, 0, str(result))
        backup = f"{path}.libervia-0.9.bak"
        self.assertIn(f"adopted: {detect.HEAD} -> {migration.head_revision()}", result.out)
        self.assertIn(f"backup: {backup}", result.out.replace("\n", ""))  # long paths wrap
        self.assertEqual(detect.read_revision(path), migration.head_revision())
        self.assertEqual(detect.read_revision(path.with_name(path.name + ".libervia-0.9.bak")),
                         detect.HEAD)  # fmt: skip

    async def test_upgrade_refused(self) -> None:
        """A forbidden pickle: exit 1, one line naming the row, the file unchanged."""
        path = fixture_copy(self)
        execute(path, "UPDATE history SET extra = ? WHERE uid = 'uid-1'", SYSTEM_PICKLE)
        before = digest(path)
        result = await run_cli(self, "db", "upgrade", db_url=url_of(path))
        self.assertEqual(result.code, 1, str(result))
        self.assertIn("history row uid='uid-1'", result.err)
        self.assertEqual(digest(path), before)

    async def test_any_command_reports_the_adoption(self) -> None:
        """A command that opens the storage adopts the file and names the backup on stderr."""
        path = fixture_copy(self)
        result = await run_cli(self, "--json", "profile", "list", db_url=url_of(path))
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("adopted the Libervia 0.9 database", result.err)
        self.assertIn(f"backup: {path}.libervia-0.9.bak", result.err.replace("\n", ""))
        self.assertEqual(sorted(p["name"] for p in result.json()),
                         ["adopted", "gateway", "guarded"])  # fmt: skip
