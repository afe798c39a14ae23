"""Migration runner: the only way runtime code reaches the Alembic revisions.

At start the storage calls :func:`initialise_schema` in a database thread: an empty
database is created from the models and stamped at head; an older one is upgraded in
process (batch mode on SQLite); one newer than this code is refused untouched.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory, write_hooks
from alembic.util.exc import CommandError
from sqlalchemy import Connection, MetaData, inspect, text

from sat_storage import item_counts, sort_values  # noqa: F401  (create_all makes their triggers)
from sat_storage.exceptions import UnknownDatabaseError
from sat_storage.models import Base

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version"
# Key of the PostgreSQL advisory lock held while the schema is checked or migrated.
SCHEMA_LOCK = 0x5A7_5C4E

# Tables (and columns, indexes) that migrations create beside the models (full-text
# search structures, sat_storage.fts) and that autogenerate must ignore; the module
# creating them registers their name prefixes here.
UNMAPPED_TABLE_PREFIXES: list[str] = []


def migrations_dir() -> Path:
    """Directory of the Alembic environment (installed as ``sat_storage.migrations``)."""
    import sat_storage.migrations

    return Path(sat_storage.migrations.__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration for in-process use, bound to ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    """The revisions shipped with this code."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows."""
    head = script_directory().get_current_head()
    assert head is not None, "no migration revision found"
    return head


IncludeObject = Callable[[Any, "str | None", str, bool, Any], bool]


def models_description(schema: Any = None) -> str:
    """Which models a run compares with (autogenerate): module, file, tables.

    Warns when they are not the files of the current directory's project (a wheel
    install hides a checkout's edits: install it editable, ``pip install -e .``).
    """
    if schema is None:
        import sat_storage.models as models

        what, origin, metadata = "sat_storage.models", models.__file__, Base.metadata
    else:
        what, origin, metadata = schema.entry, schema.origin, schema.metadata
    text = f"models {what} from {origin} ({len(metadata.tables)} tables)"
    here = Path.cwd()
    project = (here / "setup.cfg").is_file() or (here / "pyproject.toml").is_file()
    if origin and project and not Path(origin).resolve().is_relative_to(here.resolve()):
        text += (
            f"; they are not the files of {here}: for schema work install it editable "
            "(pip install -e .), else autogenerate compares the installed copy"
        )
    return text


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter of the core: skip what migrations manage outside the models.

    Skipped: any table, column or index whose name starts with one of
    ``UNMAPPED_TABLE_PREFIXES``, and everything of such a table; tables of other
    branches (plugin schemas) that are not in the core's models.
    """
    if name is not None and name.startswith(tuple(UNMAPPED_TABLE_PREFIXES)):
        return False
    if type_ == "table" and reflected and compare_to is None:
        return name not in OTHER_BRANCH_TABLES and not name.startswith(BRANCH_VERSION_PREFIX)
    table = getattr(obj, "table", None)
    if type_ != "table" and table is not None:
        return not table.name.startswith(tuple(UNMAPPED_TABLE_PREFIXES)) and (
            table.name not in OTHER_BRANCH_TABLES
        )
    return True


#: Tables of installed plugin schemas: autogenerate of the core ignores them, and
#: their version tables (see :func:`ignore_tables_of`, called by env.py).
OTHER_BRANCH_TABLES: set[str] = set()
BRANCH_VERSION_PREFIX = "alembic_version_"


def ignore_tables_of(schemas: Any) -> None:
    """Let the core's autogenerate leave the tables of these plugin schemas alone."""
    OTHER_BRANCH_TABLES.update(table for schema in schemas for table in schema.tables)


def only_tables_of(metadata: MetaData) -> IncludeObject:
    """Autogenerate filter of a plugin branch: its own tables only, nothing else."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in metadata.tables
        table = getattr(obj, "table", None)
        return table is None or table.name in metadata.tables

    return include


def compare_options(include: IncludeObject | None = None) -> dict[str, Any]:
    """How autogenerate (and the drift tests) compare a database with models.

    ``include``: the filter (default: the core's, :func:`include_object`).
    """
    return {
        "compare_type": True,
        "compare_server_default": True,
        "include_object": include or include_object,
    }


def configure_context(
    context: Any,
    connection: Connection,
    metadata: MetaData,
    *,
    version_table: str = VERSION_TABLE,
    include_object: IncludeObject | None = None,
    **options: Any,
) -> None:
    """Configure an Alembic environment context on ``connection`` (used by env.py)."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=False,
        version_table=version_table,
        **compare_options(include_object),
        **options,
    )


def current_revision(connection: Connection) -> str | None:
    """Revision the database is stamped with (None: never stamped)."""
    revision = core_revision(connection)
    connection.rollback()
    return revision


def core_revision(connection: Connection) -> str | None:
    """The core's revision, read in the caller's transaction (None: never stamped)."""
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _schema_transaction(connection: Connection) -> Iterator[None]:
    """One transaction that no other start-up or migration of the database runs beside.

    SQLite: ``BEGIN IMMEDIATE`` (the engine's) takes the write lock; PostgreSQL: a
    transaction-scoped advisory lock. Detection and change happen in it, so two
    processes starting on the same new database cannot both create it.
    """
    if connection.in_transaction():
        raise RuntimeError(
            "the migration runner needs a connection outside any transaction "
            "(commit or roll back first)"
        )
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        yield


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: batch migrations recreate tables; foreign keys must not cascade then.

    The pragma is a silent no-op inside a transaction: it is read back, and a
    connection whose foreign keys stay on is refused (a DROP TABLE would cascade).
    ``legacy_alter_table`` is on too: renaming the recreated table into place must not
    check triggers of other tables that name it (the item count triggers name
    ``pubsub_nodes``), which would fail while it is gone.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("PRAGMA legacy_alter_table = ON")
    try:
        if raw.execute("PRAGMA foreign_keys").fetchone()[0]:
            raise RuntimeError(
                "cannot turn SQLite foreign keys off for the migration: the connection "
                "is inside a transaction"
            )
        yield
    finally:
        raw.execute("PRAGMA legacy_alter_table = OFF")
        raw.execute("PRAGMA foreign_keys = ON")


def _check_foreign_keys(connection: Connection) -> None:
    """SQLite: refuse (roll back) a migration that leaves dangling references."""
    if connection.dialect.name != "sqlite":
        return
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(
            "foreign key violations after migration (table, rowid, parent, fk index): "
            f"{[tuple(p) for p in problems[:5]]}; the migration was rolled back"
        )


@dataclass(frozen=True)
class SchemaState:
    """What :func:`initialise_schema` found and did."""

    action: str  # "created", "upgraded" or "current"
    previous: str | None
    current: str


def _check_known(current: str, head: str) -> None:
    """Raise unless this code knows revision ``current``.

    :class:`DatabaseNewerError` for a newer revision of this package, else
    :class:`~sat_storage.libervia.errors.UnknownRevisionError`.
    """
    try:
        known = script_directory().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        from sat_storage.libervia.detect import unknown_revision_error  # imports migration

        raise unknown_revision_error(current, head)


def initialise_schema(connection: Connection) -> SchemaState:
    """Create, upgrade or accept the schema on ``connection``; refuse a newer one.

    ``connection`` must not be inside a transaction.
    """
    head = head_revision()
    with _schema_transaction(connection):
        current = core_revision(connection)
        if current == head:
            return SchemaState("current", current, head)
        if current is None:
            tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
            if tables:
                raise UnknownDatabaseError(
                    "the database has tables but no sat_storage revision "
                    f"({', '.join(sorted(tables)[:5])}…): refusing to touch it"
                )
            Base.metadata.create_all(connection)
            MigrationContext.configure(connection).stamp(script_directory(), head)
            log.info("database created at revision %s", head)
            return SchemaState("created", None, head)
        _check_known(current, head)
    upgrade(connection, "head")
    log.info("database upgraded from %s to %s", current, head)
    return SchemaState("upgraded", current, head)


@contextmanager
def migrating(connection: Connection) -> Iterator[None]:
    """The frame of every migration on ``connection`` (the runner's and Alembic's CLI).

    One transaction, which no other start-up or migration of the database runs
    beside; on SQLite, foreign keys are off during it (batch mode recreates tables)
    and checked before the commit. ``connection`` must not be inside a transaction.
    """
    with _foreign_keys_off(connection), _schema_transaction(connection):
        yield
        _check_foreign_keys(connection)


def _run(connection: Connection, action: Callable[[Config], None]) -> None:
    """Run an Alembic command in process, refusing a database newer than this code."""
    with migrating(connection):
        current = core_revision(connection)
        if current is not None:
            _check_known(current, head_revision())
        action(alembic_config(connection))


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade to ``revision`` in process, in one transaction."""
    _run(connection, lambda cfg: command.upgrade(cfg, revision))


def downgrade(connection: Connection, revision: str) -> None:
    """Downgrade to ``revision`` in process, in one transaction (``base`` drops everything)."""
    _run(connection, lambda cfg: command.downgrade(cfg, revision))


def stamp(connection: Connection, revision: str) -> None:
    """Record ``revision`` without running migrations."""
    _run(connection, lambda cfg: command.stamp(cfg, revision))


def history() -> list[dict[str, str | None]]:
    """Every revision, newest first: ``{revision, down_revision, doc}``."""
    return [
        {
            "revision": rev.revision,
            "down_revision": rev.down_revision if isinstance(rev.down_revision, str) else None,
            "doc": rev.doc,
        }
        for rev in script_directory().walk_revisions()
    ]


@write_hooks.register("ruff_format_if_installed")
def ruff_format_if_installed(filename: str, options: dict[str, Any]) -> None:
    """Post-write hook of ``alembic revision``: ``ruff format`` the new file, if ruff is here.

    Without ruff (not a runtime dependency), the revision is written unformatted and a
    line says so, instead of a ``FileNotFoundError`` traceback.
    """
    beside = Path(sys.executable).parent / "ruff"  # a venv's, when it is not on PATH
    ruff = shutil.which("ruff") or (str(beside) if beside.is_file() else None)
    if ruff is None:
        log.warning("ruff is not installed: %s left unformatted", filename)
        return
    subprocess.run([ruff, "format", "--quiet", filename], check=True)
