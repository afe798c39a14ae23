"""``sat-storage db``: schema status, upgrade, downgrade and revision history.

Revisions are reached only through :mod:`sat_storage.migration`.
"""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy import Connection

from sat_storage import migration
from sat_storage.cli.runtime import (
    BadInput,
    Options,
    Runtime,
    pass_options,
    run_async,
    yes_option,
)

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
    return "newer than this code"


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
    """Database schema: status, upgrade, downgrade, history."""


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
        if report["exists"]:
            gateway = await runtime.gateway()
            report.update(await gateway.run_with_connection(inspect_database))
        report["state"] = schema_state(report["current"], bool(report["tables"]))
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


@db.command()
@click.argument("revision", required=False, default="head")
@pass_options
def upgrade(options: Options, revision: str) -> None:
    """Create or upgrade the schema to REVISION (default: head)."""
    check_revision(revision, UPGRADE_TARGETS)

    async def work(runtime: Runtime) -> dict[str, Any]:
        gateway = await runtime.gateway()
        return await gateway.run_with_connection(_run_migration, _upgrade, revision)

    result = run_async(options, work)
    options.output.emit(
        result,
        lambda: options.output.message(
            f"{result['action']}: {result['previous'] or 'empty'} -> {result['current']}"
        ),
    )


def _downgrade(connection: Connection, revision: str) -> dict[str, Any]:
    previous = migration.current_revision(connection)
    migration.downgrade(connection, revision)
    return {"previous": previous, "current": migration.current_revision(connection)}


@db.command()
@click.argument("revision")
@yes_option
@pass_options
def downgrade(options: Options, revision: str) -> None:
    """Downgrade the schema to REVISION ('base' drops every table); asks first."""
    check_revision(revision, DOWNGRADE_TARGETS)

    async def work(runtime: Runtime) -> dict[str, Any]:
        if runtime.database_missing():
            raise BadInput(f"no database at {options.safe_db_url}")
        gateway = await runtime.gateway()
        before = await gateway.run_with_connection(read_current)
        if before["current"] is None:
            raise BadInput(f"the database at {options.safe_db_url} has no revision to downgrade")
        if before["current"] == revision:
            return {"previous": revision, "current": revision, "action": "current"}
        await runtime.confirm(
            f"Downgrade {options.safe_db_url} from {before['current']} to {revision}? "
            "Data in the tables and columns added since is lost."
        )
        result = await gateway.run_with_connection(_run_migration, _downgrade, revision)
        return dict(result, action="downgraded")

    result = run_async(options, work)
    options.output.emit(
        result,
        lambda: options.output.message(
            f"{result['action']}: {result['previous']} -> {result['current'] or 'base'}"
        ),
    )


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
