"""Plugin schemas at start: created, added, upgraded, refused, reported, isolated."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection, inspect
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sat_storage import Storage, branches, migration, schemas
from sat_storage.exceptions import SchemaUnavailableError
from twisted_tests.db import database_url, make_storage
from twisted_tests.schema import connect, empty_database
from twisted_tests.schemas.helpers import install_example, install_table_schema

HEAD = migration.head_revision()
notes = sa.table("notes", sa.column("id"), sa.column("profile_id"), sa.column("title"),
                 sa.column("body"))  # fmt: skip


def columns(connection: Connection, table: str) -> set[str]:
    found = {c["name"] for c in inspect(connection).get_columns(table)}
    connection.rollback()
    return found


def has_table(connection: Connection, table: str) -> bool:
    found = inspect(connection).has_table(table)
    connection.rollback()
    return found


def add_note(connection: Connection, title: str = "keep me") -> None:
    """A profile and a note, in revision 1's shape."""
    with connection.begin():
        connection.execute(sa.text("INSERT INTO profiles (id, name) VALUES (1, 'alice')"))
        connection.execute(sa.insert(notes).values(id=1, profile_id=1, title=title, body="b"))


def note_rows(connection: Connection) -> list[tuple[object, ...]]:
    rows = [tuple(r) for r in connection.execute(sa.select(notes).order_by(notes.c.id))]
    connection.rollback()
    return rows


class StartUpTests(TestCase):
    """What ``Storage.initialise`` does with plugin schemas."""

    async def test_fresh_database(self) -> None:
        """A new database gets the core at head and the plugin's tables at its head."""
        install_example(self)
        url = empty_database(self)
        storage = await make_storage(self, url)
        self.assertEqual(storage.schema_state.action, "created")
        state = storage.plugin_schemas["notes"]
        self.assertEqual((state.action, state.previous, state.current, state.head),
                         ("created", None, "notes_0002", "notes_0002"))  # fmt: skip
        connection = connect(self, url)
        self.assertEqual(columns(connection, "notes"),
                         {"id", "profile_id", "title", "body", "pinned"})  # fmt: skip
        self.assertEqual(migration.current_revision(connection), HEAD)
        self.assertEqual(branches.installed_branches(connection), {"notes": "notes_0002"})

    async def test_existing_core_database(self) -> None:
        """A core-only database (with data) gets the plugin's tables; the core is untouched."""
        url = database_url(self)
        storage = await make_storage(self, url)
        await storage.create_profile("alice")
        await storage.close()
        install_example(self)
        storage = await make_storage(self, url)
        self.assertEqual(storage.schema_state.action, "current")
        self.assertEqual(storage.plugin_schemas["notes"].action, "created")
        self.assertEqual(storage.get_profiles_list(), ["alice"])
        self.assertTrue(has_table(connect(self, url), "notes"))

    async def test_plugin_upgraded(self) -> None:
        """Plugin code 1 -> 2: its branch is upgraded at the next start, its rows kept."""
        url = database_url(self)
        first = install_example(self, revision=1)
        storage = await make_storage(self, url)
        self.assertEqual(storage.plugin_schemas["notes"].current, "notes_0001")
        await storage.close()
        connection = connect(self, url)
        self.assertNotIn("pinned", columns(connection, "notes"))
        add_note(connection)
        first.uninstall()
        install_example(self, revision=2)
        storage = await make_storage(self, url)
        state = storage.plugin_schemas["notes"]
        self.assertEqual((state.action, state.previous, state.current),
                         ("upgraded", "notes_0001", "notes_0002"))  # fmt: skip
        self.assertEqual(note_rows(connection), [(1, 1, "keep me", "b")])
        pinned = connection.execute(sa.text("SELECT pinned FROM notes")).scalar_one()
        self.assertIs(bool(pinned), False)

    async def test_current(self) -> None:
        """A plugin schema already at its head is left as it is."""
        url = database_url(self)
        install_example(self)
        await (await make_storage(self, url)).close()
        storage = await make_storage(self, url)
        state = storage.plugin_schemas["notes"]
        self.assertEqual((state.action, state.previous), ("current", "notes_0002"))

    async def test_removed_plugin(self) -> None:
        """A plugin uninstalled: its tables and rows stay, it is reported, the core starts."""
        url = database_url(self)
        example = install_example(self)
        await (await make_storage(self, url)).close()
        connection = connect(self, url)
        add_note(connection)
        example.uninstall()
        storage = await make_storage(self, url)
        state = storage.plugin_schemas["notes"]
        self.assertEqual((state.action, state.current), ("not installed", "notes_0002"))
        self.assertEqual(note_rows(connection), [(1, 1, "keep me", "b")])
        self.assertEqual(storage.get_profiles_list(), ["alice"])

    async def test_newer_schema_refused(self) -> None:
        """A schema migrated by newer plugin code is refused, named, left untouched."""
        url = database_url(self)
        install_example(self)
        await (await make_storage(self, url)).close()
        connection = connect(self, url)
        with connection.begin():
            connection.execute(sa.text(
                "UPDATE alembic_version_notes SET version_num = 'notes_0009'"
            ))  # fmt: skip
        storage = await make_storage(self, url)
        state = storage.plugin_schemas["notes"]
        self.assertEqual(state.action, "failed")
        self.assertIn("'notes_0009'", state.error)
        self.assertIn("newer version of the plugin", state.error)
        self.assertIn("'notes_0002'", state.error)
        self.assertEqual(storage.schema_state.action, "current")
        self.assertEqual(branches.installed_branches(connection), {"notes": "notes_0009"})

    async def test_failing_migration(self) -> None:
        """A schema whose migration raises is rolled back and reported; the others go on."""
        install_example(self)
        install_table_schema(self, "broken", extra='raise RuntimeError("boom in broken")')
        url = empty_database(self)
        storage = await make_storage(self, url)
        self.assertEqual(storage.schema_state.action, "created")
        self.assertEqual(storage.plugin_schemas["notes"].action, "created")
        broken = storage.plugin_schemas["broken"]
        self.assertEqual(broken.action, "failed")
        self.assertIn("RuntimeError: boom in broken", broken.error)
        connection = connect(self, url)
        self.assertFalse(has_table(connection, "broken_items"))
        self.assertEqual(branches.installed_branches(connection).get("broken"), None)

    async def test_two_plugins(self) -> None:
        """Two schemas: independent branches, each its own version table and revisions."""
        install_example(self)
        install_table_schema(self, "tags")
        url = database_url(self)
        storage = await make_storage(self, url)
        self.assertEqual(
            {name: s.current for name, s in storage.plugin_schemas.items()},
            {"notes": "notes_0002", "tags": "tags_0001"},
        )
        await storage.close()
        connection = connect(self, url)
        tags = schemas.discover().schemas["tags"]
        branches.downgrade(connection, tags, "base")
        self.assertFalse(has_table(connection, "tags_items"))
        self.assertTrue(has_table(connection, "notes"))
        self.assertEqual(branches.installed_branches(connection),
                         {"notes": "notes_0002", "tags": None})  # fmt: skip
        self.assertEqual(migration.current_revision(connection), HEAD)

    async def test_concurrent_start(self) -> None:
        """Two storages starting together on a new database: the plugin's tables once."""
        install_example(self)
        url = empty_database(self)
        first, second = Storage(url), Storage(url)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        await defer.gatherResults([first.initialise(), second.initialise()])
        actions = sorted([first.plugin_schemas["notes"].action,
                          second.plugin_schemas["notes"].action])  # fmt: skip
        self.assertEqual(actions, ["created", "current"])

    async def test_tables_without_revision(self) -> None:
        """The schema's tables present but no revision: refused, tables untouched."""
        url = database_url(self)
        await (await make_storage(self, url)).close()
        connection = connect(self, url)
        with connection.begin():
            connection.execute(sa.text("CREATE TABLE notes (x INTEGER)"))
        install_example(self)
        storage = await make_storage(self, url)
        state = storage.plugin_schemas["notes"]
        self.assertEqual(state.action, "failed")
        self.assertIn("tables notes exist but the schema has no revision", state.error)
        self.assertEqual(columns(connection, "notes"), {"x"})


class DeclarationTests(TestCase):
    """Schemas badly declared are refused, named, without stopping the others."""

    async def check_refused(self, expected: str, **kwargs: object) -> None:
        install_table_schema(self, "odd", **kwargs)
        storage = await make_storage(self, database_url(self))
        state = storage.plugin_schemas["odd"]
        self.assertEqual(state.action, "failed")
        self.assertIn(expected, state.error)

    async def test_revision_not_namespaced(self) -> None:
        """Revision ids must start with the schema's name."""
        await self.check_refused("revision id 'x_0001' must start with 'odd_'", revision="x_0001")

    async def test_table_of_the_core(self) -> None:
        """A schema may not declare a core table."""
        await self.check_refused("table 'profiles' belongs to 'core'", table="profiles")

    async def test_bad_name(self) -> None:
        """The entry point's name is the branch: lower-case letters, digits and _."""
        install_table_schema(self, "Odd")
        storage = await make_storage(self, database_url(self))
        self.assertIn("name must match", storage.plugin_schemas["Odd"].error)


class RunTxnTests(TestCase):
    """``storage.run_txn``: the gateway for plugin tables, guarded."""

    async def test_unknown_schema(self) -> None:
        """A schema that is not installed is a ValueError naming it."""
        storage = await make_storage(self)
        with self.assertRaisesRegex(ValueError, "schema 'nope' is not installed"):
            storage.run_txn("nope", lambda session: None)

    async def test_failed_schema(self) -> None:
        """A schema that failed at start: SchemaUnavailableError with the reason."""
        install_table_schema(self, "broken", extra='raise RuntimeError("boom")')
        storage = await make_storage(self)
        with self.assertRaisesRegex(SchemaUnavailableError, "boom"):
            storage.run_txn("broken", lambda session: None)
