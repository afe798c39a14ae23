"""The developers' Alembic workflow: output, formatting hook, which models are compared."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from sat_storage import migration
from twisted_tests.cli.helpers import isolated_env
from twisted_tests.db import sqlite_url

ROOT = Path(__file__).resolve().parents[2]


class AlembicCommandTests(TestCase):
    """``alembic -c migrations/alembic.ini ...`` as a developer runs it."""

    async def alembic(self, *args: str, env: dict[str, str] | None = None) -> str:
        env = env or isolated_env(self)
        env["SAT_STORAGE_DB_URL"] = sqlite_url(self)
        argv = ["-m", "alembic", "-c", str(ROOT / "migrations" / "alembic.ini"), *args]
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable, argv, env=env, path=str(ROOT)
        )
        text = (out + err).decode()
        self.assertEqual(code, 0, text)
        return text

    async def test_upgrade_prints_steps(self) -> None:
        """alembic upgrade logs each step it runs, and which models the branch has."""
        text = await self.alembic("upgrade", "head")
        self.assertIn(f"Running upgrade  -> {migration.history()[-1]['revision']}", text)
        self.assertIn(f"Running upgrade {migration.history()[1]['revision']} -> ", text)
        self.assertIn("branch core: models sat_storage.models from ", text)

    async def test_downgrade_prints_steps(self) -> None:
        """alembic downgrade logs its steps too."""
        env = isolated_env(self)
        url = sqlite_url(self)
        env["SAT_STORAGE_DB_URL"] = url
        argv = ["-m", "alembic", "-c", str(ROOT / "migrations" / "alembic.ini")]
        for args in (["upgrade", "head"], ["downgrade", "-1"]):
            out, err, code = await utils.getProcessOutputAndValue(
                sys.executable, [*argv, *args], env=env, path=str(ROOT)
            )
        self.assertIn(f"Running downgrade {migration.head_revision()} -> ", (out + err).decode())


class RevisionHookTests(TestCase):
    """The post-write hook of ``alembic revision``."""

    def test_without_ruff(self) -> None:
        """No ruff anywhere: the file is left as written, with a warning, no traceback."""
        path = Path(self.mktemp())
        path.write_text("x  =  1\n")
        self.patch(migration.shutil, "which", lambda name: None)
        self.patch(migration.sys, "executable", str(Path(self.mktemp()) / "python"))
        with self.assertLogs("sat_storage.migration", "WARNING") as logs:
            migration.ruff_format_if_installed(str(path), {})
        self.assertIn("ruff is not installed", logs.output[0])
        self.assertEqual(path.read_text(), "x  =  1\n")

    def test_with_ruff(self) -> None:
        """With ruff (the test extra), the new revision is formatted."""
        if not (Path(sys.executable).parent / "ruff").is_file():
            self.skipTest("ruff is not installed beside this Python")
        path = Path(self.mktemp())
        path.write_text("x  =  1\n")
        migration.ruff_format_if_installed(str(path), {})
        self.assertEqual(path.read_text(), "x = 1\n")


class ModelsDescriptionTests(TestCase):
    """Which models autogenerate compares, said in one line."""

    def test_names_the_file(self) -> None:
        """The core's models are named with their file."""
        import sat_storage.models

        self.assertIn(sat_storage.models.__file__, migration.models_description())

    def test_warns_outside_checkout(self) -> None:
        """Run from a project whose files are not the ones imported: a hint to install -e."""
        project = Path(self.mktemp())
        project.mkdir()
        (project / "setup.cfg").write_text("")
        cwd = os.getcwd()
        os.chdir(project)
        self.addCleanup(os.chdir, cwd)
        self.assertIn("pip install -e .", migration.models_description())
