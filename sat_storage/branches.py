"""Alembic branches of plugin schemas: start-up, upgrade, downgrade, status.

Each plugin schema (:mod:`sat_storage.schemas`) is an Alembic branch of its own: its
base revision has no ``down_revision``, the schema's name as branch label and
``depends_on`` the core revision it needs; its revision ids start with the name
(``notes_0001``). Its revisions are resolved in one graph with the core's (so
``depends_on`` works) but recorded in a version table of its own,
``alembic_version_<name>``: the core and every plugin upgrade and downgrade
independently, and a removed plugin leaves its tables and its version table as they
are (reported, never touched). While a branch migrates, the core's revision is
written into its version table inside the same transaction, so that Alembic sees the
dependency satisfied and never runs a core revision; it is removed before the commit.

Every run happens in the runner's frame (:func:`sat_storage.migration.migrating`):
one transaction under the schema lock, SQLite foreign keys checked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, inspect

from sat_storage import migration
from sat_storage.exceptions import DatabaseNewerError, UnknownDatabaseError
from sat_storage.schemas import CORE, Discovery, PluginSchema

log = logging.getLogger(__name__)

VERSION_PREFIX = migration.BRANCH_VERSION_PREFIX
#: BranchState.action of a schema whose tables are ready.
READY = ("created", "upgraded", "current")


class BranchError(Exception):
    """A plugin schema's revisions are unusable, or a migration request is refused."""


@dataclass(frozen=True)
class BranchState:
    """What start-up found and did for one plugin schema.

    ``action``: ``created``, ``upgraded``, ``current``, ``failed`` (``error`` says why;
    its plugins are not loaded) or ``not installed`` (in the database, no code).
    """

    name: str
    action: str
    previous: str | None = None
    current: str | None = None
    head: str | None = None
    error: str | None = None
    distribution: str | None = None

    @property
    def ready(self) -> bool:
        """True when the schema's tables are at its code's head."""
        return self.action in READY


def version_table(name: str) -> str:
    """The version table of branch ``name`` (the core's is ``alembic_version``)."""
    return migration.VERSION_TABLE if name == CORE else VERSION_PREFIX + name


def alembic_config(schema: PluginSchema, connection: Connection | None = None) -> Config:
    """In-process Alembic configuration of ``schema``'s branch (core revisions included)."""
    config = migration.alembic_config(connection)
    locations = [str(migration.migrations_dir() / "versions"), str(schema.version_location)]
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(locations))
    config.attributes["schema"] = schema
    return config


def script_directory(schema: PluginSchema) -> ScriptDirectory:
    """The core's revisions and ``schema``'s, checked (:class:`BranchError` naming why)."""
    script = ScriptDirectory.from_config(alembic_config(schema))
    try:
        revisions = list(script.walk_revisions("base", "heads"))
    except KeyError as e:
        raise BranchError(
            f"schema {schema.name!r}: a revision depends on {e.args[0]!r}, which neither "
            "this sat_storage nor the plugin has (upgrade sat_storage?)"
        ) from None
    core = {rev.revision for rev in migration.script_directory().walk_revisions()}
    own = [rev for rev in revisions if rev.revision not in core]
    if not own:
        raise BranchError(f"schema {schema.name!r}: no revision in {schema.version_location}")
    prefix = schema.name + "_"
    for rev in own:
        if not rev.revision.startswith(prefix):
            raise BranchError(
                f"schema {schema.name!r}: revision id {rev.revision!r} must start with {prefix!r}"
            )
        for parent in _parents(rev):
            if not parent.startswith(prefix) and parent not in core:
                raise BranchError(f"schema {schema.name!r}: {rev.revision} needs {parent!r}")
    bases = [rev for rev in own if rev.down_revision is None]
    if len(bases) != 1 or schema.name not in bases[0].branch_labels:
        raise BranchError(
            f"schema {schema.name!r}: needs exactly one base revision (down_revision None) "
            f"with branch_labels = ({schema.name!r},); found {[r.revision for r in bases]}"
        )
    for rev in own:
        if not isinstance(rev.down_revision, (str, type(None))):
            raise BranchError(f"schema {schema.name!r}: {rev.revision} merges; keep it linear")
    return script


def _parents(rev: Script) -> tuple[str, ...]:
    down = rev.down_revision
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    deps = rev.dependencies or ()
    return downs + ((deps,) if isinstance(deps, str) else tuple(deps))


def head(script: ScriptDirectory, name: str) -> str:
    """The newest revision of branch ``name``."""
    found = script.revision_map.get_current_head(name)
    assert found is not None
    return found


def _ancestors(script: ScriptDirectory, revisions: Iterator[str] | list[str]) -> set[str]:
    """``revisions`` and every revision they follow or depend on."""
    seen: set[str] = set()
    todo = list(revisions)
    while todo:
        revision = todo.pop()
        if revision in seen:
            continue
        seen.add(revision)
        todo.extend(_parents(script.get_revision(revision)))
    return seen


def _rows(connection: Connection, table: str) -> list[str]:
    if not inspect(connection).has_table(table):
        return []
    versions = sa.table(table, sa.column("version_num"))
    return list(connection.execute(sa.select(versions.c.version_num)).scalars())


def branch_revision(connection: Connection, name: str) -> str | None:
    """The revision branch ``name`` is at in the database (None: not there)."""
    rows = [row for row in _rows(connection, version_table(name)) if row.startswith(name + "_")]
    if len(rows) > 1:
        raise BranchError(f"schema {name!r}: several revisions recorded: {rows}")
    return rows[0] if rows else None


def required_core(script: ScriptDirectory, name: str, revision: str) -> set[str]:
    """The core revisions branch ``name`` needs at ``revision``."""
    return {rev for rev in _ancestors(script, [revision]) if not rev.startswith(name + "_")}


@contextmanager
def core_visible(
    connection: Connection, schema: PluginSchema, script: ScriptDirectory
) -> Iterator[None]:
    """Show Alembic the core's revision in ``schema``'s version table while it migrates."""
    table = version_table(schema.name)
    context = MigrationContext.configure(connection, opts={"version_table": table})
    context._ensure_version_table()
    core = migration.core_revision(connection)
    rows = _rows(connection, table)
    versions = sa.table(table, sa.column("version_num"))
    if core is not None and core not in _ancestors(script, rows):
        connection.execute(sa.insert(versions).values(version_num=core))
    yield
    prefix = schema.name + "_"
    for row in _rows(connection, table):
        if not row.startswith(prefix):
            connection.execute(sa.delete(versions).where(versions.c.version_num == row))


def _check_core(
    connection: Connection, schema: PluginSchema, script: ScriptDirectory, target: str
) -> None:
    """Refuse to bring the branch to ``target`` when the core is not where it needs."""
    core = migration.core_revision(connection)
    have = _ancestors(script, [core]) if core is not None else set()
    missing = sorted(required_core(script, schema.name, target) - have)
    if missing:
        raise BranchError(
            f"schema {schema.name!r} at {target} needs core revision {missing[-1]}; the core "
            f"is at {core or 'nothing'}: upgrade the core first (sat-storage db upgrade core)"
        )


def _run(
    connection: Connection,
    schema: PluginSchema,
    action: Callable[[Config, ScriptDirectory, str | None], None],
) -> tuple[str | None, str | None]:
    """Run ``action`` in the runner's frame; (previous, current) revisions of the branch."""
    script = script_directory(schema)
    with migration.migrating(connection):
        current = branch_revision(connection, schema.name)
        if current is not None:
            _check_known(script, schema, current)
        action(alembic_config(schema, connection), script, current)
        return current, branch_revision(connection, schema.name)


def _check_known(script: ScriptDirectory, schema: PluginSchema, current: str) -> None:
    try:
        script.get_revision(current)
    except Exception:
        raise DatabaseNewerError(
            f"schema {schema.name!r} is at revision {current!r}, which the installed plugin "
            f"code does not know (its newest is {head(script, schema.name)!r}): it was "
            "migrated by a newer version of the plugin; upgrade the plugin, its tables "
            "were left untouched"
        ) from None


def initialise_branch(connection: Connection, schema: PluginSchema) -> BranchState:
    """Create or upgrade ``schema``'s tables to its head; refuse a newer or foreign state."""
    script = script_directory(schema)
    newest = head(script, schema.name)

    def to_head(config: Config, script: ScriptDirectory, current: str | None) -> None:
        if current == newest:
            return
        if current is None:
            present = [t for t in schema.tables if inspect(connection).has_table(t)]
            if present:
                raise UnknownDatabaseError(
                    f"schema {schema.name!r}: tables {', '.join(present)} exist but the "
                    "schema has no revision: refusing to touch them"
                )
        _check_core(connection, schema, script, newest)
        command.upgrade(config, f"{schema.name}@head")

    previous, current = _run(connection, schema, to_head)
    action = "current" if previous == newest else "created" if previous is None else "upgraded"
    if action != "current":
        log.info("schema %s %s: %s -> %s", schema.name, action, previous or "nothing", current)
    return BranchState(schema.name, action, previous, current, newest, None, schema.distribution)


def branch_target(schema: PluginSchema, script: ScriptDirectory, revision: str) -> str:
    """``head``/``base`` of the branch, or one of its revision ids (else BranchError)."""
    if revision in ("head", "base"):
        return f"{schema.name}@{revision}"
    own = [rev.revision for rev in script.walk_revisions("base", "heads")]
    if revision in own and revision.startswith(schema.name + "_"):
        return revision
    known = ", ".join(r for r in own if r.startswith(schema.name + "_"))
    raise BranchError(
        f"unknown revision {revision!r} of schema {schema.name!r}: choose head, base or {known}"
    )


def upgrade(
    connection: Connection, schema: PluginSchema, revision: str = "head"
) -> tuple[str | None, str | None]:
    """Upgrade ``schema``'s branch alone to ``revision``; (previous, current)."""

    def run(config: Config, script: ScriptDirectory, current: str | None) -> None:
        target = branch_target(schema, script, revision)
        _check_core(
            connection, schema, script, head(script, schema.name) if "@" in target else target
        )
        command.upgrade(config, target)

    return _run(connection, schema, run)


def downgrade(
    connection: Connection, schema: PluginSchema, revision: str
) -> tuple[str | None, str | None]:
    """Downgrade ``schema``'s branch alone to ``revision`` (``base`` drops its tables)."""

    def run(config: Config, script: ScriptDirectory, current: str | None) -> None:
        command.downgrade(config, branch_target(schema, script, revision))

    return _run(connection, schema, run)


def installed_branches(connection: Connection) -> dict[str, str | None]:
    """Every plugin branch recorded in the database: name -> revision."""
    names = [
        t[len(VERSION_PREFIX) :]
        for t in inspect(connection).get_table_names()
        if t.startswith(VERSION_PREFIX)
    ]
    found = {name: branch_revision(connection, name) for name in sorted(names)}
    connection.rollback()
    return found


def check_core_downgrade(connection: Connection, discovery: Discovery, target: str) -> None:
    """Refuse a core downgrade below what an installed plugin schema needs."""
    recorded = installed_branches(connection)
    below = set() if target == "base" else _ancestors(migration.script_directory(), [target])
    for name, revision in recorded.items():
        schema = discovery.schemas.get(name)
        if revision is None or schema is None:
            continue
        needed = required_core(script_directory(schema), name, revision) - below
        if needed:
            raise BranchError(
                f"schema {name!r} (at {revision}) needs core revision {max(needed)}: "
                f"downgrade it first (sat-storage db downgrade {name} base)"
            )


def initialise_plugin_schemas(
    connection: Connection, discovery: Discovery
) -> dict[str, BranchState]:
    """Bring every installed plugin schema to its head, one at a time; report the rest.

    A failing schema is rolled back and reported (``failed``); the others go on. Branches
    in the database with no installed code are reported ``not installed``, untouched.
    """
    states: dict[str, BranchState] = {
        name: BranchState(name, "failed", error=str(error))
        for name, error in discovery.errors.items()
    }
    for name, schema in discovery.schemas.items():
        try:
            states[name] = initialise_branch(connection, schema)
        except Exception as e:
            if connection.in_transaction():
                connection.rollback()
            reason = f"{type(e).__name__}: {e}"
            log.error("schema %s failed, its plugins are not loaded: %s", name, reason)
            states[name] = BranchState(
                name, "failed", error=reason, distribution=schema.distribution
            )
    for name, revision in installed_branches(connection).items():
        if name not in states:
            log.warning(
                "schema %s (revision %s) is in the database but no installed plugin declares "
                "it: its tables are left as they are",
                name,
                revision,
            )
            states[name] = BranchState(name, "not installed", revision, revision)
    return states


def environment(context: Any, connection: Connection, schema: PluginSchema) -> None:
    """env.py's run for a plugin branch: its metadata, its version table, core visible.

    A step that would apply a core revision (the core older than the branch needs, or
    absent) stops the run; the transaction, core step included, is rolled back.
    """
    prefix = schema.name + "_"

    def only_own_steps(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        revision = step.up_revision_id  # the revision whose script ran
        if not revision.startswith(prefix):
            raise BranchError(
                f"schema {schema.name!r} needs core revision {revision}, which the core "
                "has not reached: upgrade the core first (sat-storage db upgrade core); "
                "nothing was changed"
            )

    migration.configure_context(
        context,
        connection,
        schema.metadata,
        version_table=version_table(schema.name),
        include_object=migration.only_tables_of(schema.metadata),
        on_version_apply=only_own_steps,
    )
    with context.begin_transaction(), core_visible(connection, schema, context.script):
        context.run_migrations()


def status(connection: Connection, discovery: Discovery) -> list[dict[str, Any]]:
    """Every plugin branch, installed or recorded: name, current, head, state."""
    recorded = installed_branches(connection)
    rows = []
    for name in sorted({*discovery.schemas, *discovery.errors, *recorded}):
        current, newest = recorded.get(name), None
        schema = discovery.schemas.get(name)
        if schema is None:
            error = discovery.errors.get(name)
            state = (
                f"refused: {error.reason}" if error else "not installed (tables left as they are)"
            )
        else:
            try:
                script = script_directory(schema)
                newest = head(script, schema.name)
            except Exception as e:  # a revision file that does not even import
                state = f"refused: {type(e).__name__}: {e}"
            else:
                state = _state(script, current, newest)
        rows.append({"branch": name, "current": current, "head": newest, "state": state})
    return rows


def status_without_database(discovery: Discovery) -> list[dict[str, Any]]:
    """The installed plugin branches and their heads (no database to compare with)."""
    rows = []
    for name in sorted({*discovery.schemas, *discovery.errors}):
        newest = None
        if name in discovery.schemas:
            try:
                newest = head(script_directory(discovery.schemas[name]), name)
            except Exception:  # reported by status() once there is a database
                pass
        rows.append({"branch": name, "current": None, "head": newest})
    return rows


def _state(script: ScriptDirectory, current: str | None, newest: str) -> str:
    if current == newest:
        return "up to date"
    if current is None:
        return "not created yet"
    try:
        script.get_revision(current)
    except Exception:
        return "newer than this code"
    return "upgrade available"
