"""Migrations: start-up states, one test per revision, drift, downgrades, runner safety."""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from twisted.internet import defer
from twisted.trial.unittest import SkipTest, TestCase

from sat_storage import Storage, engines, migration
from sat_storage.exceptions import DatabaseNewerError, UnknownDatabaseError
from sat_storage.models import Base, PubsubItem, UTCDateTime
from twisted_tests.db import database_url, migrate, only_on, test_dialect
from twisted_tests.schema import (
    check_step,
    connect,
    empty_database,
    file_digest,
    revision_before,
    schema_of,
    set_revision,
    snapshot,
)

HEAD = migration.head_revision()
FUTURE = "9999_from_the_future"

# The shape of 0001's tables, written without the models (which follow head).
profiles = sa.table("profiles", sa.column("id"), sa.column("name"))
components = sa.table("components", sa.column("profile_id"), sa.column("entry_point"))
param_ind = sa.table(
    "param_ind", sa.column("category"), sa.column("name"), sa.column("profile_id"),
    sa.column("value"),
)  # fmt: skip
nodes_0001 = sa.table(
    "pubsub_nodes", sa.column("id"), sa.column("profile_id"), sa.column("service"),
    sa.column("name"), sa.column("subscribed"), sa.column("sync_state_updated"),
)  # fmt: skip
items_0001 = sa.table(
    "pubsub_items", sa.column("id"), sa.column("node_id"), sa.column("name"),
    sa.column("data"), sa.column("created", UTCDateTime()),
    sa.column("updated", UTCDateTime()),
)  # fmt: skip
ITEM_XML = (
    "<item id='first'><entry xmlns='http://www.w3.org/2005/Atom'>"
    "<title>Migrating a cache</title><content>Words survive upgrades</content>"
    "</entry></item>"
)
WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
files_table = sa.table(
    "files", sa.column("id"), sa.column("version"), sa.column("parent"), sa.column("type"),
    sa.column("name"), sa.column("size"), sa.column("created"), sa.column("profile_id"),
)  # fmt: skip
FILE_ROW = {
    "id": "f1", "version": "", "parent": "", "type": "file", "name": "big.iso",
    "size": 2**31 - 1, "created": 1.5, "profile_id": 1,
}  # fmt: skip


def add_profile(connection: Connection, name: str = "alice") -> None:
    """A profile with a component and an individual parameter (rows that cascade)."""
    connection.execute(sa.insert(profiles).values(id=1, name=name))
    connection.execute(sa.insert(components).values(profile_id=1, entry_point="ep"))
    connection.execute(
        sa.insert(param_ind).values(category="c", name="n", profile_id=1, value="v")
    )


def add_item(connection: Connection) -> None:
    """A profile, a node and an item, in 0001's shape."""
    connection.execute(sa.insert(profiles).values(id=1, name="alice"))
    connection.execute(
        sa.insert(nodes_0001).values(
            id=1, profile_id=1, service="pubsub.example.org", name="urn:xmpp:microblog:0",
            subscribed=False, sync_state_updated=0.0,
        )  # fmt: skip
    )
    connection.execute(
        sa.insert(items_0001).values(
            id=1, node_id=1, name="first", data=ITEM_XML, created=WHEN, updated=WHEN
        )
    )


def count(connection: Connection, table: str) -> int:
    return connection.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar()


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def child_rows(connection: Connection) -> tuple[int, int]:
    """Rows of two tables whose rows belong to a profile."""
    return count(connection, "components"), count(connection, "param_ind")


def index_words(connection: Connection, item_id: int, words: str, head: bool = False) -> None:
    """Index the item ``item_id`` with ``words`` as a writer of the revision does: at
    0007-0008 (SQLite: own-content FTS5) or, with ``head``, at head; PostgreSQL: its
    vector (the same at both)."""
    from sat_storage import fts, fts_layouts

    if connection.dialect.name != "sqlite":
        connection.exec_driver_sql(
            f"UPDATE pubsub_items SET {fts.VECTOR_COLUMN} = "
            + fts.POSTGRESQL_VECTOR.format("%(w)s") + " WHERE id = %(id)s",
            {"w": words, "id": item_id},
        )  # fmt: skip
    elif head:
        fts.sqlite_write(connection.exec_driver_sql, [(item_id, words)])
    else:
        connection.exec_driver_sql(fts_layouts.V0007_SQLITE_WRITE, (item_id, words))


def sqlite_file(url: str) -> Path | None:
    parsed = engines.parse_url(url)
    return engines.sqlite_path(parsed) if engines.is_sqlite(parsed) else None


def migrated_database(testcase: TestCase) -> str:
    """URL of a database at head holding one profile; its engine is disposed."""
    url = database_url(testcase)
    migrate(url)
    engine = engines.create_engine(url)
    try:
        with engine.begin() as connection:
            add_profile(connection)
    finally:
        engine.dispose()
    return url


async def initialise(testcase: TestCase, url: str) -> Storage:
    """An initialised storage on ``url``, closed at cleanup."""
    storage = Storage(url)
    await storage.initialise()
    testcase.addCleanup(storage.close)
    return storage


class StartUpTests(TestCase):
    """What ``Storage.initialise`` does with each state of the database."""

    async def test_new_database(self) -> None:
        """An empty database is created from the models and stamped at head."""
        url = empty_database(self)
        storage = await initialise(self, url)
        self.assertEqual(storage.schema_state, migration.SchemaState("created", None, HEAD))
        connection = connect(self, url)
        self.assertEqual(migration.current_revision(connection), HEAD)
        self.assertLessEqual(set(Base.metadata.tables), table_names(connection))

    async def test_up_to_date(self) -> None:
        """A database at head is used as it is: no migration runs, nothing is created."""
        url = migrated_database(self)

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("a migration ran on an up-to-date database")

        self.patch(command, "upgrade", refuse)
        self.patch(migration, "upgrade", refuse)
        self.patch(Base.metadata, "create_all", refuse)
        storage = await initialise(self, url)
        self.assertEqual(storage.schema_state, migration.SchemaState("current", HEAD, HEAD))
        self.assertEqual(storage.get_profiles_list(), ["alice"])

    async def test_old_database(self) -> None:
        """A database at the revision before head is upgraded to head, its data kept."""
        previous = revision_before(HEAD)
        if previous is None:
            raise SkipTest("only one revision: no older database exists yet")
        url = empty_database(self)
        connection = connect(self, url)
        migration.upgrade(connection, previous)
        with connection.begin():
            add_profile(connection)
        connection.close()
        storage = await initialise(self, url)
        self.assertEqual(storage.schema_state, migration.SchemaState("upgraded", previous, HEAD))
        self.assertEqual(storage.get_profiles_list(), ["alice"])

    async def test_upgraded_from_base(self) -> None:
        """The runner builds an empty database up to head; start-up then finds it current."""
        url = empty_database(self)
        connection = connect(self, url)
        migration.upgrade(connection, "head")
        self.assertEqual(migration.current_revision(connection), HEAD)
        storage = await initialise(self, url)
        self.assertEqual(storage.schema_state.action, "current")

    async def test_newer_database(self) -> None:
        """A database stamped by newer code is refused, naming both revisions."""
        url = migrated_database(self)
        set_revision(url, FUTURE)
        storage = Storage(url)
        with self.assertRaises(DatabaseNewerError) as caught:
            await storage.initialise()
        self.assertIn(repr(FUTURE), str(caught.exception))
        self.assertIn(repr(HEAD), str(caught.exception))
        self.assertTrue(storage.closed)

    async def test_newer_database_untouched(self) -> None:
        """A refused newer database is left untouched (SQLite: byte for byte)."""
        url = migrated_database(self)
        set_revision(url, FUTURE)
        path = sqlite_file(url)
        digest = file_digest(path) if path else None
        connection = connect(self, url)
        before = snapshot(connection)
        connection.close()
        with self.assertRaises(DatabaseNewerError):
            await Storage(url).initialise()
        if path:
            self.assertEqual(file_digest(path), digest)
        self.assertEqual(snapshot(connect(self, url)), before)

    async def test_foreign_tables(self) -> None:
        """Tables without any revision are refused, named, and left untouched."""
        url = empty_database(self)
        connection = connect(self, url)
        with connection.begin():
            connection.exec_driver_sql("CREATE TABLE someone_elses (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO someone_elses VALUES (42)")
        before = snapshot(connection)
        connection.close()
        with self.assertRaises(UnknownDatabaseError) as caught:
            await Storage(url).initialise()
        self.assertIn("someone_elses", str(caught.exception))
        self.assertEqual(snapshot(connect(self, url)), before)

    async def test_concurrent_start(self) -> None:
        """Two storages starting together on a new database: one creates it, one uses it."""
        url = empty_database(self)
        first, second = Storage(url), Storage(url)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        await defer.gatherResults([first.initialise(), second.initialise()])
        actions = sorted([first.schema_state.action, second.schema_state.action])
        self.assertEqual(actions, ["created", "current"])
        with connect(self, url).begin() as transaction:
            self.assertEqual(count(transaction.connection, "alembic_version"), 1)


class RunnerTests(TestCase):
    """The migration runner's own guarantees."""

    def test_newer_database_refused(self) -> None:
        """upgrade, downgrade and stamp refuse a database stamped by newer code."""
        url = migrated_database(self)
        set_revision(url, FUTURE)
        connection = connect(self, url)
        for run in (migration.upgrade, migration.downgrade, migration.stamp):
            with self.assertRaises(DatabaseNewerError):
                run(connection, "base")
        self.assertEqual(migration.current_revision(connection), FUTURE)

    def test_refuses_open_transaction(self) -> None:
        """A connection inside a transaction is refused with a clear error."""
        connection = connect(self, empty_database(self))
        connection.exec_driver_sql("SELECT 1")
        with self.assertRaises(RuntimeError) as caught:
            migration.upgrade(connection, "head")
        self.assertIn("transaction", str(caught.exception))

    def test_history(self) -> None:
        """history() lists every revision newest first, each naming its parent."""
        history = migration.history()
        self.assertEqual(history[0]["revision"], HEAD)
        self.assertIsNone(history[-1]["down_revision"])
        for newer, older in zip(history, history[1:], strict=False):
            self.assertEqual(newer["down_revision"], older["revision"])


EXTRA_REVISION = '''"""a revision added by the test"""
import sqlalchemy as sa
from alembic import op

revision = "9000"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade():
    {upgrade}


def downgrade():
    {downgrade}
'''

# On SQLite, changing a column's nullability recreates the table (batch mode): the
# old table is dropped, which would cascade to every profile-owned row if foreign
# keys were on.
RECREATE_PROFILES = (
    'with op.batch_alter_table("profiles") as batch:\n'
    '        batch.alter_column("name", existing_type=sa.Text(), nullable={nullable})'
)

# Recreating pubsub_nodes (batch mode) while the item count triggers of pubsub_items name it
RECREATE_NODES = (
    'with op.batch_alter_table("pubsub_nodes") as batch:\n'
    '        batch.alter_column("analyser", existing_type=sa.Text(), nullable={nullable})'
)


class ExtraRevisionTests(TestCase):
    """The runner's handling of revisions, shown with a revision added by the test."""

    def add_revision(self, upgrade: str, downgrade: str = "pass") -> Path:
        """Make the runner see the shipped revisions plus one more, ``9000``, at head.

        Build the test's databases before: from now on, head is ``9000``.
        """
        directory = Path(self.mktemp()).resolve() / "migrations"
        shutil.copytree(
            migration.migrations_dir(), directory, ignore=shutil.ignore_patterns("__pycache__")
        )
        text = EXTRA_REVISION.format(head=HEAD, upgrade=upgrade, downgrade=downgrade)
        (directory / "versions" / "9000_test.py").write_text(text)
        self.patch(migration, "migrations_dir", lambda: directory)
        return directory

    def test_recreated_table_keeps_children(self) -> None:
        """A batch migration recreating a parent table keeps the rows that reference it."""
        connection = connect(self, migrated_database(self))
        self.add_revision(
            RECREATE_PROFILES.format(nullable=True), RECREATE_PROFILES.format(nullable=False)
        )
        migration.upgrade(connection, "9000")
        with connection.begin():
            self.assertEqual(child_rows(connection), (1, 1))
        migration.downgrade(connection, HEAD)
        with connection.begin():
            self.assertEqual(child_rows(connection), (1, 1))

    def test_recreated_nodes_keep_counting(self) -> None:
        """A batch migration recreating pubsub_nodes runs, and item writes still count."""
        connection = connect(self, migrated_database(self))
        self.add_revision(
            RECREATE_NODES.format(nullable=False), RECREATE_NODES.format(nullable=True)
        )
        with connection.begin():
            connection.execute(sa.insert(nodes_0001).values(
                id=1, profile_id=1, service="s", name="n", subscribed=False,
                sync_state_updated=0.0,
            ))  # fmt: skip
            connection.execute(sa.text("UPDATE pubsub_nodes SET analyser = 'a'"))
        migration.upgrade(connection, "9000")
        with connection.begin():
            connection.execute(sa.insert(items_0001).values(
                id=1, node_id=1, name="first", data=ITEM_XML, created=WHEN, updated=WHEN
            ))  # fmt: skip
            stmt = sa.select(sa.column("item_count")).select_from(sa.table("pubsub_nodes"))
            self.assertEqual(connection.scalar(stmt), 1)

    def test_alembic_command_keeps_children(self) -> None:
        """Alembic's own command (alembic.ini, env.py) keeps them too."""
        url = migrated_database(self)
        directory = self.add_revision(RECREATE_PROFILES.format(nullable=True))
        config = AlembicConfig(str(directory / "alembic.ini"))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        self.patch(sys, "path", list(sys.path))  # alembic.ini's prepend_sys_path
        command.upgrade(config, "9000")
        connection = connect(self, url)
        self.assertEqual(migration.current_revision(connection), "9000")
        with connection.begin():
            self.assertEqual(child_rows(connection), (1, 1))

    def test_foreign_keys_back_on(self) -> None:
        """After a migration, the connection enforces foreign keys again."""
        connection = connect(self, migrated_database(self))
        self.add_revision(RECREATE_PROFILES.format(nullable=True))
        migration.upgrade(connection, "9000")
        with self.assertRaises(sa.exc.IntegrityError), connection.begin():
            connection.execute(sa.insert(components).values(profile_id=999, entry_point="x"))

    @only_on("sqlite")
    def test_dangling_references_rolled_back(self) -> None:
        """A migration that leaves dangling references is refused and rolled back whole."""
        connection = connect(self, migrated_database(self))
        self.add_revision('op.execute("DELETE FROM profiles")')
        with self.assertRaises(RuntimeError) as caught:
            migration.upgrade(connection, "9000")
        self.assertIn("foreign key violations", str(caught.exception))
        self.assertEqual(migration.current_revision(connection), HEAD)
        with connection.begin():
            self.assertEqual(count(connection, "profiles"), 1)

    def test_failed_migration_rolled_back(self) -> None:
        """A migration that fails half way leaves the database as it was."""
        connection = connect(self, migrated_database(self))
        self.add_revision(
            'op.add_column("profiles", sa.Column("extra", sa.Text()))\n'
            '    op.execute("SELECT * FROM no_such_table")'
        )
        with self.assertRaises(sa.exc.OperationalError if connection.dialect.name == "sqlite"
                               else sa.exc.ProgrammingError):  # fmt: skip
            migration.upgrade(connection, "9000")
        self.assertEqual(migration.current_revision(connection), HEAD)
        columns = [c["name"] for c in inspect(connection).get_columns("profiles")]
        self.assertNotIn("extra", columns)


class MigrationStepTests(TestCase):
    """One test per revision: old shape, upgrade one step, data kept, downgrade one step.

    A new revision NNNN gets a ``test_step_NNNN`` here (see twisted_tests/schema.py).
    """

    def test_every_revision_tested(self) -> None:
        """Every shipped revision has its step test in this class."""
        revisions = [r["revision"] for r in migration.history()]
        missing = [r for r in revisions if not hasattr(self, f"test_step_{r}")]
        self.assertEqual(missing, [], "add a test_step_<revision> for each")

    def test_step_0001(self) -> None:
        """0001 creates every table of the initial schema; its downgrade drops them."""

        def created(connection: Connection) -> None:
            self.assertEqual(table_names(connection), TABLES_0001)
            add_item(connection)
            self.assertEqual(count(connection, "pubsub_items"), 1)

        def dropped(connection: Connection) -> None:
            self.assertEqual(table_names(connection), {"alembic_version"})

        check_step(self, "0001", after_upgrade=created, after_downgrade=dropped)

    def test_step_0002(self) -> None:
        """0002 indexes the items already cached for full-text search; downgrade keeps them."""
        from sat_storage import fts

        def searchable(connection: Connection) -> None:
            stmt, _rank = fts.match(
                sa.select(PubsubItem.id), fts.parse_query("upgrades"), connection.dialect.name
            )
            self.assertEqual(connection.execute(stmt).scalars().all(), [1])
            row = connection.execute(sa.select(items_0001)).one()
            self.assertEqual((row.name, row.data, row.created), ("first", ITEM_XML, WHEN))

        def kept(connection: Connection) -> None:
            columns = {c["name"] for c in inspect(connection).get_columns("pubsub_items")}
            self.assertNotIn(fts.TEXT_COLUMN, columns)
            self.assertNotIn(fts.TABLE, inspect(connection).get_table_names())
            row = connection.execute(sa.select(items_0001)).one()
            self.assertEqual((row.name, row.data, row.created), ("first", ITEM_XML, WHEN))

        check_step(self, "0002", before_upgrade=add_item, after_upgrade=searchable,
                   after_downgrade=kept)  # fmt: skip

    def test_step_0003(self) -> None:
        """0003 widens files.size to 64 bits, keeping existing rows; downgrade narrows it."""

        def add_file(connection: Connection) -> None:
            add_profile(connection)
            connection.execute(sa.insert(files_table).values(FILE_ROW))

        def widened(connection: Connection) -> None:
            self.assertEqual(connection.execute(sa.select(files_table)).one()._asdict(), FILE_ROW)
            connection.execute(sa.update(files_table).values(size=5 * 2**30))
            self.assertEqual(connection.scalar(sa.select(files_table.c.size)), 5 * 2**30)
            connection.execute(sa.update(files_table).values(size=FILE_ROW["size"]))

        def narrowed(connection: Connection) -> None:
            self.assertEqual(connection.execute(sa.select(files_table)).one()._asdict(), FILE_ROW)

        check_step(self, "0003", before_upgrade=add_file, after_upgrade=widened,
                   after_downgrade=narrowed)  # fmt: skip

    def test_step_0004(self) -> None:
        """0004 adds the sync lease to pubsub_nodes (none on existing nodes); downgrade drops it."""
        lease = sa.table("pubsub_nodes", sa.column("sync_owner"), sa.column("sync_lease_expires"))
        nodes = sa.table("pubsub_nodes", sa.column("id"), sa.column("name"),
                         sa.column("sync_state"))  # fmt: skip
        kept = (1, "urn:xmpp:microblog:0", "in_progress")

        def interrupted_node(connection: Connection) -> None:
            add_item(connection)
            connection.execute(sa.update(nodes).values(sync_state="in_progress"))

        def node_row(connection: Connection) -> tuple[object, ...]:
            return tuple(connection.execute(sa.select(nodes)).one())

        def leased(connection: Connection) -> None:
            self.assertEqual(node_row(connection), kept)
            self.assertEqual(tuple(connection.execute(sa.select(lease)).one()), (None, None))
            connection.execute(sa.update(lease).values(sync_owner="h:1:x", sync_lease_expires=2.5))
            self.assertEqual(tuple(connection.execute(sa.select(lease)).one()), ("h:1:x", 2.5))

        def dropped(connection: Connection) -> None:
            columns = {c["name"] for c in inspect(connection).get_columns("pubsub_nodes")}
            self.assertFalse(columns & {"sync_owner", "sync_lease_expires"})
            self.assertEqual(node_row(connection), kept)
            self.assertEqual(count(connection, "pubsub_items"), 1)

        check_step(self, "0004", before_upgrade=interrupted_node, after_upgrade=leased,
                   after_downgrade=dropped)  # fmt: skip

    def test_step_0005(self) -> None:
        """0005 adds the empty sort key tables (values cascade with items); downgrade drops them."""
        keys = sa.table("pubsub_sort_keys", sa.column("id"), sa.column("path"),
                        sa.column("direction"), sa.column("type"))  # fmt: skip
        values = sa.table("pubsub_item_sort_values", sa.column("key_id"), sa.column("item_id"),
                          sa.column("rank"), sa.column("num"))  # fmt: skip

        def added(connection: Connection) -> None:
            self.assertEqual((count(connection, "pubsub_sort_keys"),
                              count(connection, "pubsub_item_sort_values")), (0, 0))  # fmt: skip
            connection.execute(sa.insert(keys).values(id=1, path='["published"]',
                                                      direction="desc", type="number"))  # fmt: skip
            connection.execute(sa.insert(values).values(key_id=1, item_id=1, rank=0, num=None))
            connection.execute(sa.text("DELETE FROM pubsub_items"))
            self.assertEqual(count(connection, "pubsub_item_sort_values"), 0)  # cascaded
            connection.execute(sa.insert(items_0001).values(
                id=1, node_id=1, name="first", data=ITEM_XML, created=WHEN, updated=WHEN
            ))  # fmt: skip

        def dropped(connection: Connection) -> None:
            names = set(inspect(connection).get_table_names())
            self.assertFalse(names & {"pubsub_sort_keys", "pubsub_item_sort_values"})
            self.assertEqual(count(connection, "pubsub_items"), 1)

        check_step(self, "0005", before_upgrade=add_item, after_upgrade=added,
                   after_downgrade=dropped)  # fmt: skip

    def test_step_0006(self) -> None:
        """0006 adds the item count (filled) and items version, kept by triggers from then
        on; downgrade drops triggers and columns, nodes and items kept."""
        counters = sa.table("pubsub_nodes", sa.column("id"), sa.column("item_count"),
                            sa.column("items_version"))  # fmt: skip

        def two_nodes(connection: Connection) -> None:
            add_item(connection)  # node 1 holds one item
            connection.execute(sa.insert(nodes_0001).values(
                id=2, profile_id=1, service="pubsub.example.org", name="empty",
                subscribed=False, sync_state_updated=0.0,
            ))  # fmt: skip

        def row(connection: Connection, node_id: int) -> tuple[int, int]:
            stmt = sa.select(counters.c.item_count, counters.c.items_version)
            return tuple(connection.execute(stmt.where(counters.c.id == node_id)).one())

        def counted(connection: Connection) -> None:
            self.assertEqual((row(connection, 1), row(connection, 2)), ((1, 0), (0, 0)))
            connection.execute(sa.insert(items_0001).values(
                id=2, node_id=2, name="second", data=ITEM_XML, created=WHEN, updated=WHEN
            ))  # fmt: skip
            connection.execute(sa.update(items_0001).where(items_0001.c.id == 1).values(data="x"))
            self.assertEqual(row(connection, 2)[0], 1)
            self.assertEqual(row(connection, 1)[0], 1)
            self.assertTrue(row(connection, 1)[1] > 0 and row(connection, 2)[1] > 0)
            connection.execute(sa.text("DELETE FROM pubsub_items WHERE id = 2"))
            self.assertEqual(row(connection, 2)[0], 0)

        def dropped(connection: Connection) -> None:
            columns = {c["name"] for c in inspect(connection).get_columns("pubsub_nodes")}
            self.assertFalse(columns & {"item_count", "items_version"})
            self.assertEqual((count(connection, "pubsub_nodes"),
                              count(connection, "pubsub_items")), (2, 1))  # fmt: skip
            connection.execute(sa.text("DELETE FROM pubsub_items"))  # no trigger left to fail

        check_step(self, "0006", before_upgrade=two_nodes, after_upgrade=counted,
                   after_downgrade=dropped)  # fmt: skip

    def test_step_0007(self) -> None:
        """0007 moves the items' words out of pubsub_items, still searchable and kept in
        step with deletes; downgrade brings the column back, filled and indexed."""
        from sat_storage import fts

        words = fts.item_text(ITEM_XML)

        def columns(connection: Connection) -> set[str]:
            return {c["name"] for c in inspect(connection).get_columns("pubsub_items")}

        def found(connection: Connection, query: str) -> list[int]:
            stmt, _rank = fts.match(
                sa.select(PubsubItem.id), fts.parse_query(query), connection.dialect.name
            )
            return connection.execute(stmt).scalars().all()

        def cached(connection: Connection) -> None:
            add_item(connection)  # with its words, as 0002-0006 cached items
            connection.execute(sa.text(f"UPDATE pubsub_items SET {fts.TEXT_COLUMN} = :w"),
                               {"w": words})  # fmt: skip

        def moved(connection: Connection) -> None:
            self.assertNotIn(fts.TEXT_COLUMN, columns(connection))
            self.assertEqual(found(connection, "upgrades"), [1])
            row = connection.execute(sa.select(items_0001)).one()
            self.assertEqual((row.name, row.data, row.created), ("first", ITEM_XML, WHEN))
            connection.execute(sa.insert(items_0001).values(
                id=2, node_id=1, name="second", data=ITEM_XML, created=WHEN, updated=WHEN
            ))  # fmt: skip
            connection.execute(sa.text("DELETE FROM pubsub_items WHERE id = 1"))
            self.assertEqual(found(connection, "upgrades"), [])  # its entry went with it
            connection.execute(sa.text("DELETE FROM pubsub_items WHERE id = 2"))
            connection.execute(sa.insert(items_0001).values(
                id=1, node_id=1, name="first", data=ITEM_XML, created=WHEN, updated=WHEN
            ))  # fmt: skip
            index_words(connection, 1, words)

        def back(connection: Connection) -> None:
            self.assertIn(fts.TEXT_COLUMN, columns(connection))
            text = connection.execute(sa.text(f"SELECT {fts.TEXT_COLUMN} FROM pubsub_items"))
            self.assertEqual(text.scalar_one(), words)
            self.assertEqual(found(connection, "upgrades"), [1])
            connection.execute(sa.text("DELETE FROM pubsub_items"))  # 0002's structures
            self.assertEqual(found(connection, "upgrades"), [])

        check_step(self, "0007", before_upgrade=cached, after_upgrade=moved,
                   after_downgrade=back)  # fmt: skip

    def test_step_0008(self) -> None:
        """0008 replaces the sort values' foreign key to items by a delete trigger (values
        kept, still deleted with their item); downgrade brings the foreign key back."""
        keys = sa.table("pubsub_sort_keys", sa.column("id"), sa.column("path"),
                        sa.column("direction"), sa.column("type"))  # fmt: skip
        values = sa.table("pubsub_item_sort_values", sa.column("key_id"), sa.column("item_id"),
                          sa.column("rank"), sa.column("num"))  # fmt: skip

        def item_keys(connection: Connection) -> list[str]:
            return [fk["referred_table"] for fk in
                    inspect(connection).get_foreign_keys("pubsub_item_sort_values")]  # fmt: skip

        def second_item(connection: Connection) -> None:
            connection.execute(sa.insert(items_0001).values(
                id=2, node_id=1, name="second", data=ITEM_XML, created=WHEN, updated=WHEN
            ))  # fmt: skip
            connection.execute(sa.insert(values).values(key_id=1, item_id=2, rank=0, num=None))

        def valued(connection: Connection) -> None:
            add_item(connection)
            connection.execute(sa.insert(keys).values(id=1, path='["published"]',
                                                      direction="desc", type="number"))  # fmt: skip
            connection.execute(sa.insert(values).values(key_id=1, item_id=1, rank=0, num=None))

        def by_trigger(connection: Connection) -> None:
            self.assertEqual(item_keys(connection), ["pubsub_sort_keys"])
            self.assertEqual(count(connection, "pubsub_item_sort_values"), 1)
            second_item(connection)
            connection.execute(sa.text("DELETE FROM pubsub_items WHERE id = 2"))
            rows = connection.execute(sa.select(values.c.item_id)).scalars().all()
            self.assertEqual(rows, [1])  # the deleted item's value only

        def by_foreign_key(connection: Connection) -> None:
            self.assertEqual(sorted(item_keys(connection)), ["pubsub_items", "pubsub_sort_keys"])
            self.assertEqual(count(connection, "pubsub_item_sort_values"), 1)
            second_item(connection)
            connection.execute(sa.text("DELETE FROM pubsub_items WHERE id = 2"))
            rows = connection.execute(sa.select(values.c.item_id)).scalars().all()
            self.assertEqual(rows, [1])  # cascaded

        check_step(self, "0008", before_upgrade=valued, after_upgrade=by_trigger,
                   after_downgrade=by_foreign_key)  # fmt: skip

    def test_step_0009(self) -> None:
        """0009 gives the SQLite words a table of their own (the FTS5 index its external
        content): still found, and deleted with their item; downgrade brings back 0007's
        own-content table, filled. PostgreSQL: nothing changes."""
        from sat_storage import fts

        words = fts.item_text(ITEM_XML)
        sqlite = test_dialect() == "sqlite"

        def found(connection: Connection, query: str) -> list[int]:
            stmt, _rank = fts.match(
                sa.select(PubsubItem.id), fts.parse_query(query), connection.dialect.name
            )
            return sorted(connection.execute(stmt).scalars().all())

        def second_item(connection: Connection, text: str, head: bool) -> None:
            connection.execute(sa.insert(items_0001).values(
                id=2, node_id=1, name="second", data=ITEM_XML, created=WHEN, updated=WHEN
            ))  # fmt: skip
            index_words(connection, 2, text, head)

        def cached(connection: Connection) -> None:
            add_item(connection)
            index_words(connection, 1, words)

        def moved(connection: Connection) -> None:
            self.assertEqual(found(connection, "upgrades"), [1])
            if sqlite:
                stored = connection.exec_driver_sql(f"SELECT id, fts_text FROM {fts.WORDS_TABLE}")
                self.assertEqual(stored.all(), [(1, words)])
                connection.exec_driver_sql(
                    f"INSERT INTO {fts.TABLE}({fts.TABLE}, rank) VALUES ('integrity-check', 1)"
                )
            second_item(connection, "zebra crossing", head=True)
            self.assertEqual(found(connection, "zebra"), [2])
            connection.execute(sa.text("DELETE FROM pubsub_items WHERE id = 2"))
            self.assertEqual((found(connection, "zebra"), found(connection, "upgrades")), ([], [1]))
            if sqlite:
                self.assertEqual(count(connection, fts.WORDS_TABLE), 1)  # its words went too

        def back(connection: Connection) -> None:
            self.assertNotIn(fts.WORDS_TABLE, table_names(connection))
            self.assertEqual(found(connection, "upgrades"), [1])
            second_item(connection, "zebra crossing", head=False)
            self.assertEqual(found(connection, "zebra"), [2])
            connection.execute(sa.text("DELETE FROM pubsub_items WHERE id = 2"))
            self.assertEqual(found(connection, "zebra"), [])

        check_step(self, "0009", before_upgrade=cached, after_upgrade=moved,
                   after_downgrade=back)  # fmt: skip

    def test_step_0010(self) -> None:
        """0010 drops the index on items' creation time (a purge by creation date still
        finds its items) and, on SQLite, sizes FTS5's leaves to the file's pages (8 KiB:
        8,100 bytes; the index still finds its entries); downgrade brings both back."""
        from sat_storage import fts

        sqlite = test_dialect() == "sqlite"

        def item_indexes(connection: Connection) -> set[str]:
            return {index["name"] for index in inspect(connection).get_indexes("pubsub_items")}

        def leaf_size(connection: Connection) -> int | None:
            rows = connection.exec_driver_sql(
                f"SELECT v FROM {fts.TABLE}_config WHERE k = 'pgsz'"
            ).scalars()
            return rows.one_or_none()

        def older(connection: Connection) -> int:
            stmt = sa.select(sa.func.count()).where(items_0001.c.created < WHEN + timedelta(1))
            return connection.execute(stmt).scalar_one()

        def cached(connection: Connection) -> None:
            add_item(connection)
            index_words(connection, 1, fts.item_text(ITEM_XML), head=True)
            self.assertIn("pubsub_items__created", item_indexes(connection))

        def dropped(connection: Connection) -> None:
            self.assertNotIn("pubsub_items__created", item_indexes(connection))
            self.assertIn("pubsub_items__updated", item_indexes(connection))
            self.assertEqual(older(connection), 1)
            if sqlite:
                page = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
                self.assertEqual(page, 8192)  # the storage's new files
                self.assertEqual(leaf_size(connection), 8100)
                connection.exec_driver_sql(
                    f"INSERT INTO {fts.TABLE}({fts.TABLE}, rank) VALUES ('integrity-check', 1)"
                )

        def back(connection: Connection) -> None:
            self.assertIn("pubsub_items__created", item_indexes(connection))
            self.assertEqual(older(connection), 1)
            if sqlite:
                self.assertEqual(leaf_size(connection), 4050)  # FTS5's default

        check_step(self, "0010", before_upgrade=cached, after_upgrade=dropped,
                   after_downgrade=back)  # fmt: skip

    def test_downgrade_0003_refuses_big_sizes(self) -> None:
        """A size that does not fit 32 bits stops the downgrade, naming it; nothing changes."""
        connection = connect(self, empty_database(self))
        migration.upgrade(connection, "0003")
        with connection.begin():
            add_profile(connection)
            connection.execute(sa.insert(files_table).values({**FILE_ROW, "size": 3 * 2**31}))
        with self.assertRaisesRegex(RuntimeError, str(3 * 2**31)):
            migration.downgrade(connection, "0002")
        self.assertEqual(migration.current_revision(connection), "0003")
        self.assertEqual(connection.scalar(sa.select(files_table.c.size)), 3 * 2**31)
        connection.rollback()


TABLES_0001 = {
    "alembic_version", "profiles", "components", "param_gen", "param_ind", "private_gen",
    "private_ind", "private_gen_bin", "private_ind_bin", "history", "message", "subject",
    "thread", "files", "pubsub_nodes", "pubsub_subs", "pubsub_items",
}  # fmt: skip


class DriftTests(TestCase):
    """The migrations, the models and ``create_all`` agree."""

    def migrate_with_alembic(self, url: str) -> None:
        """base -> head through Alembic's own command and the shipped alembic.ini."""
        config = AlembicConfig(str(migration.migrations_dir() / "alembic.ini"))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        self.patch(sys, "path", list(sys.path))  # alembic.ini's prepend_sys_path
        command.upgrade(config, "head")

    def test_models_match_migrations(self) -> None:
        """After base -> head, autogenerate finds no difference with the models."""
        url = empty_database(self)
        self.migrate_with_alembic(url)
        connection = connect(self, url)
        context = MigrationContext.configure(
            connection, opts=dict(migration.compare_options(), target_metadata=Base.metadata)
        )
        self.assertEqual(compare_metadata(context, Base.metadata), [])

    def test_create_all_matches_migrations(self) -> None:
        """A database created from the models has the schema of one built by migrations."""
        created = connect(self, empty_database(self))
        self.assertEqual(migration.initialise_schema(created).action, "created")
        migrated = connect(self, empty_database(self))
        migration.upgrade(migrated, "head")
        self.assertEqual(schema_of(created), schema_of(migrated))

    def test_down_to_base_and_back(self) -> None:
        """head -> base drops everything; base -> head rebuilds the same schema."""
        connection = connect(self, empty_database(self))
        migration.upgrade(connection, "head")
        at_head = schema_of(connection)
        migration.downgrade(connection, "base")
        self.assertEqual(table_names(connection), {"alembic_version"})
        self.assertIsNone(migration.current_revision(connection))
        migration.upgrade(connection, "head")
        self.assertEqual(schema_of(connection), at_head)

    def test_each_downgrade_step(self) -> None:
        """Every revision downgrades to its parent, one step at a time, data kept."""
        connection = connect(self, empty_database(self))
        migration.upgrade(connection, "head")
        with connection.begin():
            add_item(connection)
        for revision in [r["revision"] for r in migration.history()]:
            self.assertEqual(migration.current_revision(connection), revision)
            migration.downgrade(connection, "-1")
            expected = revision_before(revision)
            self.assertEqual(migration.current_revision(connection), expected)
            if expected is not None:
                with connection.begin():
                    self.assertEqual(count(connection, "pubsub_items"), 1)
