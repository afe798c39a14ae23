"""Plugin branches: the host, the gateway, downgrades, drift and the authors' recipe."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from twisted.trial.unittest import TestCase

from sat_storage import branches, migration, schemas
from sat_storage.host import Host
from twisted_tests.db import database_url, make_storage
from twisted_tests.schema import connect, empty_database
from twisted_tests.schemas.helpers import EXAMPLE, install_example, install_table_schema
from twisted_tests.schemas.test_startup import add_note, columns, has_table, note_rows

HEAD = migration.head_revision()


def notes_schema() -> schemas.PluginSchema:
    return schemas.installed("notes")


class HostTests(TestCase):
    """The host loads a plugin only when its tables are ready."""

    async def make_host(self, *extra: str) -> Host:
        paths = [str(install_example(self).root)]
        if "broken" in extra:
            broken = install_table_schema(
                self, "broken", extra='raise RuntimeError("boom")', plugin="BROKEN"
            )
            paths.append(str(broken.root))
        config = Path(self.mktemp())
        config.write_text("[xmpp]\ntls = plaintext\n")
        host = Host(config, database_url(self), plugin_path=paths)
        await host.start()
        self.addCleanup(host.stop)
        return host

    async def test_plugin_with_tables_loaded(self) -> None:
        """The example plugin is loaded beside its schema."""
        host = await self.make_host()
        self.assertEqual(sorted(host.plugins), ["NOTES"])
        self.assertTrue(host.memory.storage.plugin_schemas["notes"].ready)

    async def test_failing_schema_plugin_not_loaded(self) -> None:
        """A schema whose migration raises: core and other plugins fine, its plugin skipped."""
        host = await self.make_host("broken")
        self.assertEqual(sorted(host.plugins), ["NOTES"])
        self.assertIn("schema 'broken' is not ready", str(host.plugin_errors["BROKEN"]))
        self.assertIn("boom", str(host.plugin_errors["BROKEN"]))
        self.assertEqual(host.memory.storage.schema_state.current, HEAD)

    async def test_declared_schema_refused(self) -> None:
        """A plugin naming a schema (PLUGIN_INFO['schemas']) that failed is not loaded."""
        url = database_url(self)
        install_example(self)
        await (await make_storage(self, url)).close()
        connection = connect(self, url)
        with connection.begin():
            connection.execute(sa.text("UPDATE alembic_version_notes SET version_num = 'notes_9'"))
        config = Path(self.mktemp())
        config.write_text("")
        host = Host(config, url)
        await host.start()
        self.addCleanup(host.stop)
        self.assertNotIn("NOTES", host.plugins)
        self.assertIn("'notes_9'", str(host.plugin_errors["NOTES"]))

    async def test_plugin_txn_through_gateway(self) -> None:
        """The plugin's *_txn functions write and read its table (on the suite's engine)."""
        host = await self.make_host()
        await host.memory.storage.create_profile("alice")
        await host.memory.storage.create_profile("bob")
        plugin = host.plugins["NOTES"]
        first = await plugin.add_note("alice", "shopping", "bread")
        await plugin.add_note("alice", "ideas")
        await plugin.add_note("bob", "other")
        await plugin.pin_note(first)
        self.assertEqual(
            await plugin.get_notes("alice"), [("shopping", "bread", True), ("ideas", "", False)]
        )
        await host.memory.storage.delete_profile("alice")
        self.assertEqual(await plugin.get_notes("bob"), [("other", "", False)])

    async def test_plugin_txn_rolled_back(self) -> None:
        """A plugin transaction that fails is rolled back whole."""
        host = await self.make_host()
        from sat_notes import store

        await host.memory.storage.create_profile("alice")
        profile_id = host.memory.storage.get_profile_id("alice")

        def add_then_fail(session: sa.orm.Session) -> None:
            store.add_note_txn(session, profile_id, "lost")
            raise ValueError("changed my mind")

        with self.assertRaises(ValueError):
            await host.memory.storage.run_txn("notes", add_then_fail)
        self.assertEqual(await host.plugins["NOTES"].get_notes("alice"), [])


class DowngradeTests(TestCase):
    """A plugin branch moves alone; the core refuses to go below what a branch needs."""

    async def at_head_with_note(self) -> sa.Connection:
        install_example(self)
        url = empty_database(self)
        connection = connect(self, url)
        migration.upgrade(connection, "head")
        branches.upgrade(connection, notes_schema(), "notes_0001")
        add_note(connection)
        self.assertEqual(branches.upgrade(connection, notes_schema()), ("notes_0001", "notes_0002"))
        return connection

    async def test_downgrade_one_step(self) -> None:
        """notes_0002 -> notes_0001: the column goes, the rows and the core stay."""
        connection = await self.at_head_with_note()
        core_before = migration.current_revision(connection)
        result = branches.downgrade(connection, notes_schema(), "notes_0001")
        self.assertEqual(result, ("notes_0002", "notes_0001"))
        self.assertNotIn("pinned", columns(connection, "notes"))
        self.assertEqual(note_rows(connection), [(1, 1, "keep me", "b")])
        self.assertEqual(migration.current_revision(connection), core_before)

    async def test_downgrade_to_base(self) -> None:
        """base drops the plugin's tables only; the core's rows stay."""
        connection = await self.at_head_with_note()
        self.assertEqual(branches.downgrade(connection, notes_schema(), "base")[1], None)
        self.assertFalse(has_table(connection, "notes"))
        self.assertEqual(migration.current_revision(connection), HEAD)
        count = connection.execute(sa.text("SELECT count(*) FROM profiles")).scalar_one()
        self.assertEqual(count, 1)

    async def test_unknown_target(self) -> None:
        """A revision outside the branch is refused, naming the branch's revisions."""
        connection = await self.at_head_with_note()
        with self.assertRaisesRegex(branches.BranchError, "choose head, base or notes_0002"):
            branches.downgrade(connection, notes_schema(), "0001")

    async def test_core_downgrade_guarded(self) -> None:
        """The core may not go below the revision an installed branch depends on."""
        connection = await self.at_head_with_note()
        with self.assertRaisesRegex(branches.BranchError, "downgrade it first"):
            branches.check_core_downgrade(connection, schemas.discover(), "base")
        branches.check_core_downgrade(connection, schemas.discover(), "0001")

    async def test_core_missing(self) -> None:
        """A branch on a database without the core is refused; nothing is created."""
        install_example(self)
        connection = connect(self, empty_database(self))
        with self.assertRaisesRegex(branches.BranchError, "needs core revision 0001"):
            branches.upgrade(connection, notes_schema())
        self.assertFalse(has_table(connection, "profiles"))


class RecipeTests(TestCase):
    """The authors' recipe (doc/example_plugin/alembic.ini) and the drift test."""

    def recipe_config(self, url: str, directory: Path = EXAMPLE) -> AlembicConfig:
        config = AlembicConfig(str(directory / "alembic.ini"))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        self.patch(sys, "path", list(sys.path))
        return config

    def migrate(self, url: str) -> None:
        """The core through its alembic.ini, then the branch through the recipe's."""
        core = AlembicConfig(str(migration.migrations_dir() / "alembic.ini"))
        core.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        command.upgrade(core, "head")
        command.upgrade(self.recipe_config(url), "notes@head")

    def test_no_drift(self) -> None:
        """After base -> head of the branch, autogenerate finds nothing in its models."""
        install_example(self)
        url = empty_database(self)
        self.migrate(url)
        connection = connect(self, url)
        metadata = notes_schema().metadata
        options = migration.compare_options(migration.only_tables_of(metadata))
        context = MigrationContext.configure(
            connection, opts=dict(options, target_metadata=metadata)
        )
        self.assertEqual(compare_metadata(context, metadata), [])
        self.assertEqual(branches.installed_branches(connection), {"notes": "notes_0002"})

    def test_drift_detected(self) -> None:
        """The comparison is not blind: the branch one revision behind shows the column."""
        install_example(self)
        url = empty_database(self)
        self.migrate(url)
        command.downgrade(self.recipe_config(url), "notes_0001")
        connection = connect(self, url)
        metadata = notes_schema().metadata
        options = migration.compare_options(migration.only_tables_of(metadata))
        context = MigrationContext.configure(
            connection, opts=dict(options, target_metadata=metadata)
        )
        diff = compare_metadata(context, metadata)
        self.assertEqual([(d[0], d[3].name) for d in diff], [("add_column", "pinned")])

    def test_autogenerate_own_models_only(self) -> None:
        """alembic revision --autogenerate in the plugin's directory: an empty revision."""
        install_example(self)
        url = empty_database(self)
        self.migrate(url)
        directory = Path(self.mktemp()).resolve()
        shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns("__pycache__"))
        config = self.recipe_config(url, directory)
        command.revision(config, "nothing", autogenerate=True, head="notes@head",
                         rev_id="notes_0003")  # fmt: skip
        (written,) = (directory / "sat_notes" / "versions").glob("notes_0003_*.py")
        text = written.read_text()
        self.assertRegex(text, r"down_revision: str \| None = .notes_0002.")
        self.assertNotIn("op.", text)  # nothing to do: the branch is in step with its models

    def test_core_drift_ignores_plugin_tables(self) -> None:
        """The core's comparison (as env.py sets it up) leaves a plugin's tables alone."""
        install_example(self)
        url = empty_database(self)
        self.migrate(url)
        self.patch(migration, "OTHER_BRANCH_TABLES", set())
        migration.ignore_tables_of(schemas.discover().schemas.values())
        connection = connect(self, url)
        context = MigrationContext.configure(
            connection,
            opts=dict(migration.compare_options(), target_metadata=migration.Base.metadata),
        )
        self.assertEqual(compare_metadata(context, migration.Base.metadata), [])
