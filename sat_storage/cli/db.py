"""``sat-storage db``: schema status, upgrade, downgrade and revision history.

Revisions are reached only through :mod:`sat_storage.migration` (the core) and
:mod:`sat_storage.branches` (plugin schemas). ``upgrade`` and ``downgrade`` take an
optional branch first: ``core`` or a plugin schema's name (``db upgrade notes``).
"""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy import Connection

from sat_storage import branches, libervia, migration, schemas
from sat_storage.cli.runtime import (
    BadInput,
    Options,
    Runtime,
    pass_options,
    run_async,
    yes_option,
)
from sat_storage.exceptions import DatabaseNewerError, UnknownDatabaseError

UPGRADE_TARGETS = ("head",)
DOWNGRADE_TARGETS = ("base",)


def known_revisions() -> list[str]:
    """Revisions shipped with this code, newest first."""
    return [str(rev["revision"]) for rev in migration.history()]


def check_revision(revision: str, special: tuple[str, ...]) -> str:
    """``revision`` if this code knows it (or it is one of ``special``), else BadInput."""
    known = known_revisions()
    if revision in known or revision in special:
        return revision
    choices = ", ".join([*special, *known])
    raise BadInput(f"unknown revision {revision!r}: choose one of {choices}")


def schema_state(current: str | None, has_tables: bool) -> str:
    """How the database's revision compares with this code's."""
    if current is None:
        return "not a sat_storage database" if has_tables else "empty"
    if current == migration.head_revision():
        return "up to date"
    if current in known_revisions():
        return "upgrade available"
    if libervia.detect.is_libervia(current):
        return "Libervia 0.9 database: 'sat-storage db upgrade' adopts it (backup first)"
    if isinstance(libervia.detect.unknown_revision_error(current, migration.head_revision()),
                  libervia.UnknownRevisionError):  # fmt: skip
        return "unknown revision"
    return "newer than this code"


def libervia_status(db_url: str) -> dict[str, Any] | None:
    """Status of a Libervia 0.9 file, read without opening it for writing (None: not one)."""
    try:
        found = libervia.libervia_file(db_url)
    except (libervia.UnknownRevisionError, DatabaseNewerError):
        return None
    if found is None:
        return None
    return {"current": found[1], "tables": {}, "libervia": True}


FTS5_SHADOW_SUFFIXES = ("_config", "_content", "_data", "_docsize", "_idx")


def visible_tables(names: list[str]) -> list[str]:
    """Table names without SQLite FTS5's shadow tables (``X_data`` of a table ``X``)."""
    present = set(names)
    return sorted(
        name
        for name in names
        if not any(
            name.endswith(suffix) and name[: -len(suffix)] in present
            for suffix in FTS5_SHADOW_SUFFIXES
        )
    )


def inspect_database(connection: Connection) -> dict[str, Any]:
    """Revision, server version and row count of every table (DB thread)."""
    tables = visible_tables(sa.inspect(connection).get_table_names())
    connection.rollback()
    current = migration.current_revision(connection)
    counts = {
        name: connection.execute(
            sa.select(sa.func.count()).select_from(sa.table(name))
        ).scalar_one()
        for name in tables
        if name != migration.VERSION_TABLE
    }
    connection.rollback()
    version = connection.dialect.server_version_info or ()
    return {
        "server_version": ".".join(str(part) for part in version) or None,
        "current": current,
        "tables": counts,
    }


def read_current(connection: Connection) -> dict[str, Any]:
    """Current revision and whether the database holds any table (DB thread)."""
    tables = set(sa.inspect(connection).get_table_names()) - {migration.VERSION_TABLE}
    connection.rollback()
    return {"current": migration.current_revision(connection), "has_tables": bool(tables)}


@click.group()
def db() -> None:
    """Database schema: status, upgrade, downgrade, history; port to PostgreSQL."""


@db.command()
@pass_options
def status(options: Options) -> None:
    """Engine, URL, current and head revisions, rows per table."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        report: dict[str, Any] = {
            "engine": sa.engine.make_url(options.db_url).get_backend_name(),
            "url": options.safe_db_url,
            "exists": not runtime.database_missing(),
            "server_version": None,
            "current": None,
            "head": migration.head_revision(),
            "tables": {},
        }
        discovery = schemas.discover()
        plugin_rows = [
            dict(row, current=None, state="no database yet")
            for row in branches.status_without_database(discovery)
        ]
        adopted = libervia_status(options.db_url) if report["exists"] else None
        if adopted is not None:  # the engine would switch it to WAL: a write
            report.update(adopted)
        elif report["exists"]:
            gateway = await runtime.gateway()
            report.update(await gateway.run_with_connection(inspect_database))
            plugin_rows = await gateway.run_with_connection(branches.status, discovery)
        report["state"] = schema_state(report["current"], bool(report["tables"]))
        core = {"branch": schemas.CORE, "current": report["current"], "head": report["head"]}
        report["branches"] = [dict(core, state=report["state"]), *plugin_rows]
        return report

    report = run_async(options, work)

    def render() -> None:
        out = options.output
        version = report["server_version"]
        out.fields(
            [
                ("engine", f"{report['engine']} {version}" if version else report["engine"]),
                ("url", report["url"]),
                ("current revision", report["current"] or "none"),
                ("head revision", report["head"]),
                ("state", report["state"] if report["exists"] else "no database file yet"),
            ]
        )
        rows = [
            (row["branch"], row["current"] or "none", row["head"] or "", row["state"])
            for row in report["branches"]
        ]
        out.table(["branch", "current", "head", "state"], rows, title="Branches")
        if report["tables"]:
            out.table(["table", "rows"], sorted(report["tables"].items()), title="Tables")

    options.output.emit(report, render)


def _upgrade(connection: Connection, revision: str) -> dict[str, Any]:
    """Upgrade to ``revision``: the start-up path for head, Alembic otherwise."""
    before = read_current(connection)
    if revision == "head":
        state = migration.initialise_schema(connection)
        return {"previous": state.previous, "current": state.current, "action": state.action}
    if before["current"] is not None and before["current"] not in known_revisions():
        raise BadInput(
            f"the database is at revision {before['current']!r}, unknown to this code "
            "(migrated by a newer version): left untouched"
        )
    migration.upgrade(connection, revision)
    current = migration.current_revision(connection)
    action = "current" if current == before["current"] else "upgraded"
    return {"previous": before["current"], "current": current, "action": action}


def _run_migration(connection: Connection, fn: Any, revision: str) -> dict[str, Any]:
    try:
        return fn(connection, revision)
    except CommandError as e:
        raise BadInput(f"cannot migrate to {revision!r}: {e}") from None


def split_target(
    first: str | None, second: str | None, discovery: schemas.Discovery
) -> tuple[str | None, str | None]:
    """``(branch, revision)`` from ``[BRANCH] [REVISION]`` (branch None: every branch).

    A first argument that is neither ``core`` nor a plugin schema's name is a core
    revision (``db upgrade 0003``, as before branches existed).
    """
    names = {schemas.CORE, *discovery.schemas}
    if first in names:
        return first, second
    if second is not None:
        choices = ", ".join(sorted(names))
        raise BadInput(f"unknown branch {first!r}: choose one of {choices}")
    if first in (None, "head"):
        return None, "head"
    return schemas.CORE, first


def _upgrade_all(connection: Connection, discovery: schemas.Discovery) -> dict[str, Any]:
    """Core to head, then every plugin schema, as the storage does at start."""
    result = _upgrade(connection, "head")
    states = branches.initialise_plugin_schemas(connection, discovery)
    if states:  # the core's keys alone when no plugin schema is around
        result["branches"] = {name: state.__dict__ for name, state in states.items()}
    return result


def _upgrade_branch(
    connection: Connection, schema: schemas.PluginSchema, revision: str
) -> dict[str, Any]:
    previous, current = branches.upgrade(connection, schema, revision)
    action = "current" if previous == current else "upgraded"
    return {"branch": schema.name, "previous": previous, "current": current, "action": action}


def _branch_errors(connection: Connection, fn: Any, *args: Any) -> Any:
    """Run ``fn(connection, *args)`` (DB thread); refusals become one line (BadInput)."""
    try:
        return fn(connection, *args)
    except (branches.BranchError, CommandError, DatabaseNewerError, UnknownDatabaseError) as e:
        raise BadInput(str(e)) from None


@db.command()
@click.argument("branch", required=False)
@click.argument("revision", required=False)
@pass_options
def upgrade(options: Options, branch: str | None, revision: str | None) -> None:
    """Create or upgrade the schema: every branch to its head, or BRANCH to REVISION.

    BRANCH is ``core`` or a plugin schema's name; without it the argument is a
    revision of the core (default: head, and every plugin schema to its head).
    """
    discovery = schemas.discover()
    branch, revision = split_target(branch, revision, discovery)
    if branch == schemas.CORE:
        check_revision(revision or "head", UPGRADE_TARGETS)

    async def work(runtime: Runtime) -> dict[str, Any]:
        whole = branch in (None, schemas.CORE) and (revision or "head") == "head"
        adoption = await adopt(options.db_url, runtime.reactor) if whole else None
        gateway = await runtime.gateway()
        if branch is None:
            result = await gateway.run_with_connection(_branch_errors, _upgrade_all, discovery)
        elif branch == schemas.CORE:
            result = await gateway.run_with_connection(_run_migration, _upgrade, revision or "head")
        else:
            schema = discovery.schemas[branch]
            return await gateway.run_with_connection(
                _branch_errors, _upgrade_branch, schema, revision or "head"
            )
        if adoption is not None:
            result.update(
                action="adopted",
                previous=adoption.revision,
                backup=str(adoption.backup),
                rows=adoption.row_count,
            )
        return result

    result = run_async(options, work)

    def render() -> None:
        name = f"{result['branch']}: " if "branch" in result else ""
        before = result["previous"] or "empty"
        change = f"{name}{result['action']}: {before} -> {result['current']}"
        if "backup" in result:
            change += f" (Libervia 0.9 database, {result['rows']} rows)"
        options.output.message(change)
        if "backup" in result:
            options.output.message(f"backup: {result['backup']}")
        for state in result.get("branches", {}).values():
            line = f"{state['name']}: {state['action']}: {state['previous'] or 'empty'}"
            line += f" -> {state['current']}" if state["current"] else ""
            options.output.message(line + (f" ({state['error']})" if state["error"] else ""))

    options.output.emit(result, render)


async def adopt(db_url: str, reactor: Any) -> Any:
    """Adopt a Libervia 0.9 file (:func:`sat_storage.libervia.adopt`); errors are bad input."""
    try:
        return await libervia.adopt(db_url, reactor)
    except (libervia.AdoptionError, libervia.UnknownRevisionError, DatabaseNewerError) as e:
        raise BadInput(str(e)) from None


def _downgrade(
    connection: Connection, revision: str, discovery: schemas.Discovery
) -> dict[str, Any]:
    branches.check_core_downgrade(connection, discovery, revision)
    previous = migration.current_revision(connection)
    migration.downgrade(connection, revision)
    return {"previous": previous, "current": migration.current_revision(connection)}


def _downgrade_branch(
    connection: Connection, schema: schemas.PluginSchema, revision: str
) -> dict[str, Any]:
    previous, current = branches.downgrade(connection, schema, revision)
    return {"branch": schema.name, "previous": previous, "current": current}


def _current_of(connection: Connection, branch: str) -> str | None:
    if branch == schemas.CORE:
        return read_current(connection)["current"]
    current = branches.branch_revision(connection, branch)
    connection.rollback()
    return current


@db.command()
@click.argument("branch")
@click.argument("revision", required=False)
@yes_option
@pass_options
def downgrade(options: Options, branch: str, revision: str | None) -> None:
    """Downgrade BRANCH (``core`` or a plugin schema; default core) to REVISION; asks first.

    ``base`` drops the branch's tables (the core's: every table). The core does not go
    below a revision that an installed plugin schema needs (downgrade that one first).
    """
    discovery = schemas.discover()
    branch, target = split_target(branch, revision, discovery)
    if branch is None or target is None:
        raise BadInput("name the revision to downgrade to (base drops the branch's tables)")
    if branch == schemas.CORE:
        check_revision(target, DOWNGRADE_TARGETS)

    async def work(runtime: Runtime) -> dict[str, Any]:
        if runtime.database_missing():
            raise BadInput(f"no database at {options.safe_db_url}")
        gateway = await runtime.gateway()
        current = await gateway.run_with_connection(_current_of, branch)
        what = "the database" if branch == schemas.CORE else f"schema {branch!r} in"
        if current is None:
            raise BadInput(f"{what} {options.safe_db_url} has no revision to downgrade")
        if current == target:
            return {"previous": target, "current": target, "action": "current"}
        await runtime.confirm(
            f"Downgrade {what} {options.safe_db_url} from {current} to {target}? "
            "Data in the tables and columns added since is lost."
        )
        if branch == schemas.CORE:
            result = await gateway.run_with_connection(_core_downgrade, target, discovery)
        else:
            schema = discovery.schemas[branch]
            result = await gateway.run_with_connection(
                _branch_errors, _downgrade_branch, schema, target
            )
        return dict(result, action="downgraded")

    result = run_async(options, work)
    name = f"{result['branch']}: " if "branch" in result else ""
    options.output.emit(
        result,
        lambda: options.output.message(
            f"{name}{result['action']}: {result['previous']} -> {result['current'] or 'base'}"
        ),
    )


def _core_downgrade(
    connection: Connection, revision: str, discovery: schemas.Discovery
) -> dict[str, Any]:
    try:
        return _downgrade(connection, revision, discovery)
    except branches.BranchError as e:
        raise BadInput(str(e)) from None
    except CommandError as e:
        raise BadInput(f"cannot migrate to {revision!r}: {e}") from None


@db.command()
@pass_options
def history(options: Options) -> None:
    """Every revision this code knows, newest first; marks current and head."""

    async def work(runtime: Runtime) -> str | None:
        if runtime.database_missing():
            return None
        gateway = await runtime.gateway()
        return (await gateway.run_with_connection(read_current))["current"]

    current = run_async(options, work)
    head = migration.head_revision()
    revisions = [
        dict(rev, current=rev["revision"] == current, head=rev["revision"] == head)
        for rev in migration.history()
    ]

    def render() -> None:
        rows = [
            (
                rev["revision"],
                rev["down_revision"] or "",
                " ".join(mark for mark in ("current", "head") if rev[mark]),
                rev["doc"],
            )
            for rev in revisions
        ]
        options.output.table(["revision", "down", "", "description"], rows)

    options.output.emit({"current": current, "head": head, "revisions": revisions}, render)
