"""Configuration: the backend config file, XDG locations and the database URL."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

ENV_DB_URL = "SAT_STORAGE_DB_URL"
ENV_CONFIG = "SAT_STORAGE_CONFIG"
APP_NAME = "sat_storage"
CONFIG_FILE_NAME = "sat_storage.conf"
STORAGE_SECTION = "storage"


def data_dir() -> Path:
    """``$XDG_DATA_HOME/sat_storage`` (``~/.local/share/sat_storage`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / APP_NAME


def default_config_paths() -> list[Path]:
    """Config files read when none is given, later ones overriding earlier ones."""
    if os.environ.get(ENV_CONFIG):
        return [Path(os.environ[ENV_CONFIG])]
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return [Path("/etc") / CONFIG_FILE_NAME, Path(config_home) / APP_NAME / CONFIG_FILE_NAME]


class ConfigError(ValueError):
    """The configuration file is missing or malformed."""


class Config:
    """The backend configuration: an INI file whose ``[DEFAULT]`` section is global."""

    def __init__(self, paths: list[Path] | None = None, must_exist: bool = False) -> None:
        self.parser = configparser.ConfigParser(interpolation=None)
        self.paths = default_config_paths() if paths is None else list(paths)
        for path in self.paths:
            if not path.is_file():
                if must_exist:
                    raise ConfigError(f"configuration file not found: {path}")
                continue
            self._read(path)

    def _read(self, path: Path) -> None:
        """Read one file; every problem is a :class:`ConfigError` naming it."""
        try:
            with open(path, encoding="utf-8") as f:
                self.parser.read_file(f, source=str(path))
        except configparser.Error as e:
            raise ConfigError(f"malformed configuration file {path}: {e}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"configuration file {path} is not UTF-8 text: {e}") from None
        except OSError as e:
            raise ConfigError(f"cannot read configuration file {path}: {e.strerror}") from None

    @classmethod
    def from_path(cls, path: str | os.PathLike | None) -> Config:
        """Read ``path`` (which must exist) or, when None, the default locations."""
        if path is None:
            return cls()
        return cls([Path(path)], must_exist=True)

    def get(self, section: str | None, name: str, default: object = None) -> object:
        """Value of ``name`` in ``section`` (None = ``[DEFAULT]``), or ``default``."""
        if section is None or section == "DEFAULT":
            return self.parser.defaults().get(name, default)
        if not self.parser.has_section(section):
            return self.parser.defaults().get(name, default)
        return self.parser.get(section, name, fallback=default)

    def sections(self) -> list[str]:
        """Names of the sections, ``[DEFAULT]`` excluded."""
        return self.parser.sections()


def default_sqlite_url() -> str:
    """URL of the embedded default database, in the XDG data directory."""
    return f"sqlite:///{data_dir() / 'sat_storage.sqlite'}"


def resolve_db_url(explicit: str | None = None, config: Config | None = None) -> str:
    """Database URL: explicit argument > ``$SAT_STORAGE_DB_URL`` > config > SQLite default."""
    if explicit:
        return explicit
    if os.environ.get(ENV_DB_URL):
        return os.environ[ENV_DB_URL]
    if config is None:
        config = Config()
    from_config = config.get(STORAGE_SECTION, "db_url")
    if from_config:
        return str(from_config)
    return default_sqlite_url()
