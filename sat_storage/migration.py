"""Migration runner: the only way runtime code reaches the Alembic revisions.

At start the storage calls :func:`initialise_schema` in a database thread: an empty
database is created from the models and stamped at head; an older one is upgraded in
process (batch mode on SQLite); one newer than this code is refused untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, MetaData, inspect

from sat_storage.exceptions import DatabaseNewerError, UnknownDatabaseError
from sat_storage.models import Base

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version"

# Tables that migrations create beside the models (full-text search structures) and
# that autogenerate must ignore; the module creating them registers their names here.
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


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter: skip structures that migrations manage outside the models."""
    if type_ == "table" and name is not None:
        return not any(name.startswith(p) for p in UNMAPPED_TABLE_PREFIXES)
    table = getattr(obj, "table", None)
    if table is not None:
        return not any(table.name.startswith(p) for p in UNMAPPED_TABLE_PREFIXES)
    return True


def configure_context(context: Any, connection: Connection, metadata: MetaData) -> None:
    """Configure an Alembic environment context on ``connection`` (used by env.py)."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
        include_object=include_object,
        transaction_per_migration=False,
    )


def current_revision(connection: Connection) -> str | None:
    """Revision the database is stamped with (None: never stamped)."""
    revision = MigrationContext.configure(connection).get_current_revision()
    connection.rollback()
    return revision


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: batch migrations recreate tables; foreign keys must not cascade then."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
        problems = raw.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign key violations after migration: {problems[:5]}")
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


@dataclass(frozen=True)
class SchemaState:
    """What :func:`initialise_schema` found and did."""

    action: str  # "created", "upgraded" or "current"
    previous: str | None
    current: str


def _check_known(connection: Connection, current: str, head: str) -> None:
    script = script_directory()
    try:
        known = script.get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise DatabaseNewerError(
            f"the database is at revision {current!r}, which this code does not know "
            f"(its newest revision is {head!r}): it was migrated by a newer version; "
            "upgrade sat_storage, the database was left untouched"
        )


def initialise_schema(connection: Connection) -> SchemaState:
    """Create, upgrade or accept the schema on ``connection``; refuse a newer one."""
    head = head_revision()
    current = current_revision(connection)
    if current == head:
        return SchemaState("current", current, head)
    if current is None:
        tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
        connection.rollback()
        if tables:
            raise UnknownDatabaseError(
                "the database has tables but no sat_storage revision "
                f"({', '.join(sorted(tables)[:5])}…): refusing to touch it"
            )
        with connection.begin():
            Base.metadata.create_all(connection)
            MigrationContext.configure(connection).stamp(script_directory(), head)
        log.info("database created at revision %s", head)
        return SchemaState("created", None, head)
    _check_known(connection, current, head)
    upgrade(connection, "head")
    log.info("database upgraded from %s to %s", current, head)
    return SchemaState("upgraded", current, head)


def _run(connection: Connection, action: Callable[[Config], None]) -> None:
    with _foreign_keys_off(connection):
        action(alembic_config(connection))
        if connection.in_transaction():
            connection.commit()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade to ``revision`` in process."""
    _run(connection, lambda cfg: command.upgrade(cfg, revision))


def downgrade(connection: Connection, revision: str) -> None:
    """Downgrade to ``revision`` in process (``base`` drops everything)."""
    current = current_revision(connection)
    if current is not None:
        _check_known(connection, current, head_revision())
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
