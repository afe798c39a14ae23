"""Configuration: the config file and where the database URL comes from."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import TestCase

from sat_storage import Storage
from sat_storage.config import ENV_CONFIG, ENV_DB_URL, Config, ConfigError, resolve_db_url
from twisted_tests.environ import set_env

EXPLICIT = "sqlite:////explicit/db.sqlite"
FROM_ENV = "sqlite:////environment/db.sqlite"
FROM_FILE = "sqlite:////config-file/db.sqlite"


class ConfigTestCase(TestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()
        self.data_home = self.dir / "data"
        # No URL from the environment, no config file outside the test's directory.
        set_env(
            self,
            **{ENV_DB_URL: None, ENV_CONFIG: None},
            XDG_DATA_HOME=str(self.data_home),
            XDG_CONFIG_HOME=str(self.dir / "config"),
        )

    def write(self, text: str | bytes, name: str = "sat_storage.conf") -> Path:
        path = self.dir / name
        if isinstance(text, str):
            text = text.encode("utf-8")
        path.write_bytes(text)
        return path

    def config_with_url(self) -> Config:
        return Config.from_path(self.write(f"[storage]\ndb_url = {FROM_FILE}\n"))


class ResolveDbUrlTests(ConfigTestCase):
    def test_explicit_first(self) -> None:
        """An explicit URL wins over the environment and the config file."""
        set_env(self, **{ENV_DB_URL: FROM_ENV})
        self.assertEqual(resolve_db_url(EXPLICIT, self.config_with_url()), EXPLICIT)

    def test_environment_second(self) -> None:
        """Without an explicit URL, $SAT_STORAGE_DB_URL wins over the config file."""
        set_env(self, **{ENV_DB_URL: FROM_ENV})
        self.assertEqual(resolve_db_url(None, self.config_with_url()), FROM_ENV)

    def test_config_file_third(self) -> None:
        """Without explicit URL nor environment, the config file's [storage] db_url is used."""
        self.assertEqual(resolve_db_url(None, self.config_with_url()), FROM_FILE)

    def test_config_file_from_environment(self) -> None:
        """With no config given, the file named by $SAT_STORAGE_CONFIG is read."""
        path = self.write(f"[storage]\ndb_url = {FROM_FILE}\n")
        set_env(self, **{ENV_CONFIG: str(path)})
        self.assertEqual(resolve_db_url(), FROM_FILE)

    def test_config_file_in_xdg_config_home(self) -> None:
        """With no config given nor named, $XDG_CONFIG_HOME/sat_storage/sat_storage.conf is read."""
        directory = self.dir / "config" / "sat_storage"
        directory.mkdir(parents=True)
        (directory / "sat_storage.conf").write_text(f"[storage]\ndb_url = {FROM_FILE}\n")
        self.assertEqual(resolve_db_url(), FROM_FILE)

    def test_sqlite_default_last(self) -> None:
        """With nothing configured, the URL is the SQLite file in $XDG_DATA_HOME/sat_storage."""
        config = Config.from_path(self.write("[storage]\n"))
        expected = f"sqlite:///{self.data_home / 'sat_storage' / 'sat_storage.sqlite'}"
        self.assertEqual(resolve_db_url(None, config), expected)

    def test_storage_uses_the_order(self) -> None:
        """Storage() resolves its URL in the same order (here: from the config file)."""
        storage = Storage(config=self.config_with_url())
        self.assertEqual(storage.db_url, FROM_FILE)


class ConfigFileTests(ConfigTestCase):
    def test_values(self) -> None:
        """Values are read by section; a missing one gives the default, [DEFAULT] is global."""
        config = Config.from_path(self.write("[DEFAULT]\nlang = fr\n[storage]\nx = 1\n"))
        self.assertEqual(config.get("storage", "x"), "1")
        self.assertEqual(config.get("storage", "lang"), "fr")
        self.assertEqual(config.get(None, "lang"), "fr")
        self.assertEqual(config.get("nowhere", "y", "default"), "default")

    def test_malformed(self) -> None:
        """A file that is not INI gives a ConfigError naming the file."""
        path = self.write("db_url = no section header\n")
        with self.assertRaises(ConfigError) as caught:
            Config.from_path(path)
        self.assertIn(str(path), str(caught.exception))

    def test_duplicate_option(self) -> None:
        """An option given twice in a section gives a ConfigError naming the file."""
        path = self.write("[storage]\ndb_url = a\ndb_url = b\n")
        with self.assertRaises(ConfigError) as caught:
            Config.from_path(path)
        self.assertIn(str(path), str(caught.exception))

    def test_not_utf8(self) -> None:
        """A file that is not UTF-8 text gives a ConfigError naming the file."""
        path = self.write(b"[storage]\ndb_url = \xff\xfe\n")
        with self.assertRaises(ConfigError) as caught:
            Config.from_path(path)
        self.assertIn(str(path), str(caught.exception))

    def test_malformed_default_location(self) -> None:
        """A malformed file at a default location is not ignored: ConfigError naming it."""
        path = self.write("garbage\n")
        set_env(self, **{ENV_CONFIG: str(path)})
        with self.assertRaises(ConfigError) as caught:
            Config()
        self.assertIn(str(path), str(caught.exception))

    def test_missing_explicit(self) -> None:
        """An explicitly named config file that does not exist gives a ConfigError naming it."""
        path = self.dir / "missing.conf"
        with self.assertRaises(ConfigError) as caught:
            Config.from_path(path)
        self.assertIn(str(path), str(caught.exception))

    def test_missing_default_location(self) -> None:
        """Default locations may be absent: the configuration is then empty."""
        set_env(self, **{ENV_CONFIG: os.fspath(self.dir / "absent.conf")})
        self.assertEqual(Config().sections(), [])
