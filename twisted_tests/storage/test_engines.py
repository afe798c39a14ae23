"""Engines: the SQLite default, URL handling, pool sizing and transient errors."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from twisted.trial.unittest import TestCase

from sat_storage import Storage, engines
from sat_storage.config import ENV_CONFIG, ENV_DB_URL, Config
from sat_storage.engines import UnsupportedDatabase
from twisted_tests.environ import set_env
from twisted_tests.locks import locked_database, real_locked_error


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pragma(connection: sa.Connection, name: str) -> object:
    return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


class SQLiteDefaultTests(TestCase):
    """The embedded default: ``Storage()`` with nothing configured."""

    async def setUp(self) -> None:
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        self.directory = home / "data" / "sat_storage"
        set_env(
            self,
            **{ENV_DB_URL: None, ENV_CONFIG: str(home / "no-such.conf")},
            XDG_DATA_HOME=str(home / "data"),
        )
        self.storage = Storage()
        await self.storage.initialise()
        self.addCleanup(self.storage.close)
        self.file = self.directory / "sat_storage.sqlite"

    def test_location(self) -> None:
        """The database is $XDG_DATA_HOME/sat_storage/sat_storage.sqlite."""
        self.assertEqual(self.storage.db_url, f"sqlite:///{self.file}")
        self.assertTrue(self.file.is_file())

    def test_directory_mode(self) -> None:
        """The directory is created with mode 0700."""
        self.assertEqual(mode(self.directory), 0o700)

    def test_file_modes(self) -> None:
        """The database file, and its WAL file, have mode 0600."""
        self.assertEqual(mode(self.file), 0o600)
        self.assertEqual(mode(self.file.with_name(self.file.name + "-wal")), 0o600)

    async def test_wal(self) -> None:
        """The journal mode is WAL."""
        value = await self.storage.db.run_with_connection(pragma, "journal_mode")
        self.assertEqual(value, "wal")

    async def test_foreign_keys(self) -> None:
        """Foreign keys are enforced."""
        value = await self.storage.db.run_with_connection(pragma, "foreign_keys")
        self.assertEqual(value, 1)

    async def test_busy_timeout(self) -> None:
        """A busy timeout is set, so a locked database is waited for."""
        value = await self.storage.db.run_with_connection(pragma, "busy_timeout")
        self.assertEqual(value, engines.SQLITE_BUSY_TIMEOUT_MS)

    async def test_one_thread(self) -> None:
        """SQLite gets a single database thread: writes are serialised."""
        self.assertEqual(self.storage.db.pool.max, 1)


class SQLiteUrlTests(TestCase):
    async def test_in_memory(self) -> None:
        """In-memory URLs work: one connection keeps the data between transactions."""
        for url in ("sqlite://", "sqlite:///:memory:"):
            storage = Storage(url)
            await storage.initialise()
            self.addCleanup(storage.close)
            await storage.create_profile("alice")
            profiles, _ = await storage.db.run(storage.load_profiles_txn)
            self.assertEqual(list(profiles), ["alice"], url)

    async def test_uri_file(self) -> None:
        """A ``file:`` URI names a file, created with mode 0600 like any other."""
        path = Path(self.mktemp()).resolve() / "uri.sqlite"
        storage = Storage(f"sqlite:///file:{path}?uri=true")
        await storage.initialise()
        self.addCleanup(storage.close)
        self.assertEqual(mode(path), 0o600)

    def test_uri_memory(self) -> None:
        """``file:`` URIs in memory name no file."""
        for url in ("sqlite:///file::memory:?uri=true", "sqlite:///file:x?mode=memory&uri=true"):
            self.assertIsNone(engines.sqlite_path(engines.parse_url(url)), url)

    def test_other_driver(self) -> None:
        """SQLite through another driver than the sqlite3 module is refused, naming it."""
        with self.assertRaises(UnsupportedDatabase) as caught:
            engines.parse_url("sqlite+aiosqlite:///x.db")
        self.assertIn("aiosqlite", str(caught.exception))


class PostgreSQLUrlTests(TestCase):
    def test_normalised_to_psycopg(self) -> None:
        """``postgresql://`` (and other drivers) become ``postgresql+psycopg://``."""
        for url in ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db"):
            self.assertEqual(engines.parse_url(url).drivername, "postgresql+psycopg", url)
        engine = engines.create_engine("postgresql://u@127.0.0.1/db")
        self.addCleanup(engine.dispose)
        self.assertEqual(engine.dialect.driver, "psycopg")

    def test_pool_fits_threads(self) -> None:
        """The connection pool holds a connection for every database thread."""
        engine = engines.create_engine("postgresql://u@127.0.0.1/db")
        self.addCleanup(engine.dispose)
        self.assertGreaterEqual(engine.pool.size(), engines.thread_count(engine))

    def test_password_kept_for_connecting(self) -> None:
        """Storage keeps the password in the URL it connects with."""
        storage = Storage("postgresql://user:s3cret@127.0.0.1/db")
        engine = engines.create_engine(storage.db_url)
        self.addCleanup(engine.dispose)
        self.assertEqual(engine.url.password, "s3cret")

    def test_password_hidden(self) -> None:
        """The password is hidden by safe_url and in the storage's repr."""
        url = "postgresql://user:s3cret@127.0.0.1/db"
        self.assertNotIn("s3cret", engines.safe_url(url))
        self.assertNotIn("s3cret", repr(Storage(url)))
        self.assertIn("user", repr(Storage(url)))


class BadUrlTests(TestCase):
    def test_unsupported(self) -> None:
        """An unsupported engine gives UnsupportedDatabase naming it, password hidden."""
        with self.assertRaises(UnsupportedDatabase) as caught:
            Storage("mysql://user:s3cret@host/db")
        self.assertIn("'mysql'", str(caught.exception))
        self.assertIn("user", str(caught.exception))
        self.assertNotIn("s3cret", str(caught.exception))

    def test_malformed(self) -> None:
        """A URL that does not parse gives UnsupportedDatabase naming it."""
        with self.assertRaises(UnsupportedDatabase) as caught:
            engines.parse_url("not a url")
        self.assertIn("'not a url'", str(caught.exception))

    def test_malformed_hides_password(self) -> None:
        """A malformed URL (bad port) is named with its password hidden."""
        with self.assertRaises(UnsupportedDatabase) as caught:
            engines.parse_url("postgresql://user:s3cret@host:port/db")
        self.assertIn("user:***@host:port/db", str(caught.exception))
        self.assertNotIn("s3cret", str(caught.exception))
        self.assertNotIn("s3cret", engines.safe_url("postgresql://user:s3cret@host:port/db"))


class TransientTests(TestCase):
    def test_sqlite_locked(self) -> None:
        """A raw sqlite3 'database is locked' error is transient."""
        error = real_locked_error(self)
        self.assertIn("database is locked", str(error))
        self.assertTrue(engines.is_transient(error))

    def test_sqlite_locked_wrapped(self) -> None:
        """'database is locked' wrapped by SQLAlchemy is transient."""
        path, _ = locked_database(self)
        engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
        self.addCleanup(engine.dispose)
        with self.assertRaises(OperationalError) as caught, engine.connect() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        self.assertTrue(engines.is_transient(caught.exception))

    def test_postgresql_serialisation(self) -> None:
        """PostgreSQL serialisation failures and deadlocks are transient."""
        self.assertTrue(engines.is_transient(psycopg.errors.SerializationFailure()))
        self.assertTrue(engines.is_transient(psycopg.errors.DeadlockDetected()))

    def test_integrity_error(self) -> None:
        """A constraint violation is not transient."""
        engine = sa.create_engine("sqlite://")
        self.addCleanup(engine.dispose)
        with self.assertRaises(IntegrityError) as caught, engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1), (1)")
        self.assertFalse(engines.is_transient(caught.exception))

    def test_other_errors(self) -> None:
        """Errors that do not come from the database are not transient."""
        self.assertFalse(engines.is_transient(ValueError("database is locked")))
        self.assertFalse(engines.is_transient(sqlite3.OperationalError("no such table: t")))



class SQLiteSynchronousTests(TestCase):
    """``[storage] sqlite_synchronous``: SQLite's durability setting."""

    async def synchronous_of(self, storage: Storage) -> object:
        await storage.initialise()
        self.addCleanup(storage.close)
        return await storage.db.run_with_connection(pragma, "synchronous")

    async def test_default_normal(self) -> None:
        """Without a setting, SQLite runs with ``synchronous = NORMAL`` (1)."""
        url = f"sqlite:///{Path(self.mktemp()).resolve()}"
        self.assertEqual(await self.synchronous_of(Storage(url)), 1)

    async def test_from_config(self) -> None:
        """The config file's ``[storage] sqlite_synchronous = full`` gives FULL (2)."""
        path = Path(self.mktemp())
        path.write_text("[storage]\nsqlite_synchronous = full\n")
        url = f"sqlite:///{Path(self.mktemp()).resolve()}"
        storage = Storage(url, config=Config.from_path(path))
        self.assertEqual(await self.synchronous_of(storage), 2)

    async def test_argument_wins(self) -> None:
        """``Storage(sqlite_synchronous=...)`` overrides the config file."""
        path = Path(self.mktemp())
        path.write_text("[storage]\nsqlite_synchronous = full\n")
        url = f"sqlite:///{Path(self.mktemp()).resolve()}"
        storage = Storage(url, config=Config.from_path(path), sqlite_synchronous="extra")
        self.assertEqual(await self.synchronous_of(storage), 3)

    def test_bad_value(self) -> None:
        """An unknown value is a ValueError naming the setting and the value."""
        with self.assertRaisesRegex(ValueError, r"sqlite_synchronous: 'sometimes'"):
            Storage("sqlite://", sqlite_synchronous="sometimes")


class SQLitePageSizeTests(TestCase):
    """A new SQLite database gets ``engines.SQLITE_PAGE_SIZE``; an existing one keeps its."""

    async def page_size_of(self, path: Path) -> object:
        storage = Storage(f"sqlite:///{path.resolve()}")
        await storage.initialise()
        self.addCleanup(storage.close)
        return await storage.db.run_with_connection(pragma, "page_size")

    async def test_new_database(self) -> None:
        """A database the storage creates has the package's page size."""
        self.assertEqual(await self.page_size_of(Path(self.mktemp())), engines.SQLITE_PAGE_SIZE)

    async def test_existing_database_kept(self) -> None:
        """A file written with 4 KiB pages (in WAL mode, as the storage's) keeps them."""
        path = Path(self.mktemp())
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA page_size = 4096")
        connection.execute("PRAGMA journal_mode = WAL")  # writes the file's header
        connection.close()
        self.assertNotEqual(engines.SQLITE_PAGE_SIZE, 4096)
        self.assertEqual(await self.page_size_of(path), 4096)
