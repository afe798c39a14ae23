"""Schemas of plugins: tables a plugin distribution owns, found through entry points.

A distribution declares its schema in the ``sat_storage.schema`` entry point group::

    [options.entry_points]
    sat_storage.schema =
        notes = sat_notes.schema

The entry names an object (usually a module) with ``metadata`` (the plugin's own
``sqlalchemy.MetaData``; a declarative ``Base`` is accepted too) and
``version_location`` (the directory of its Alembic revisions). The entry's name is
the schema's name: its Alembic branch label, the prefix of its revision ids
(``notes_0001``), the ``BRANCH`` argument of ``sat-storage db upgrade``.

:func:`discover` lists the installed schemas, :func:`installed` finds one by name;
this is the API for tools that need every table of the database (``db port``):
``schema.metadata.sorted_tables`` are the plugin's tables. The migration branches
themselves are run by :mod:`sat_storage.branches`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData

from sat_storage.entry_points import group_entry_points

log = logging.getLogger(__name__)

GROUP = "sat_storage.schema"
#: Name of the package's own branch (its revisions are ``0001``, ``0002``, ...).
CORE = "core"
NAME_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
#: Names a schema may not take (the core's branch, Alembic's and the CLI's words).
RESERVED = (CORE, "head", "heads", "base")


class SchemaError(Exception):
    """A plugin schema cannot be used; names the entry point and the reason."""

    def __init__(self, name: str, entry: str, reason: str) -> None:
        self.name = name
        self.entry = entry
        self.reason = reason
        super().__init__(f"schema {name!r} ({entry}, entry point group {GROUP!r}): {reason}")


@dataclass(frozen=True)
class PluginSchema:
    """An installed plugin schema: its name (branch), models and revisions."""

    name: str
    metadata: MetaData = field(compare=False)
    version_location: Path
    entry: str  # "name = value", how errors name it
    distribution: str | None = None  # the distribution declaring it
    origin: str | None = None  # file of the entry point's module

    @property
    def tables(self) -> list[str]:
        """Names of the plugin's tables, parents first."""
        return [table.name for table in self.metadata.sorted_tables]


@dataclass
class Discovery:
    """What :func:`discover` found: usable schemas and the refused ones, by name."""

    schemas: dict[str, PluginSchema] = field(default_factory=dict)
    errors: dict[str, SchemaError] = field(default_factory=dict)


def load(ep: importlib.metadata.EntryPoint) -> PluginSchema:
    """Import one entry point and check it (:class:`SchemaError` if unusable)."""
    entry = f"{ep.name} = {ep.value}"

    def error(reason: str) -> SchemaError:
        return SchemaError(ep.name, entry, reason)

    if not NAME_RE.match(ep.name) or ep.name in RESERVED:
        raise error(f"name must match {NAME_RE.pattern} and not be one of {RESERVED}")
    try:
        target = ep.load()
    except Exception as e:
        log.debug("import of schema %s failed", entry, exc_info=True)
        raise error(f"import failed: {type(e).__name__}: {e}") from e
    metadata = _metadata(target)
    if metadata is None:
        raise error("has no 'metadata' (sqlalchemy.MetaData) nor declarative 'Base'")
    if not metadata.tables:
        raise error("its metadata has no table")
    location = getattr(target, "version_location", None)
    if not isinstance(location, (str, Path)) or not Path(location).is_dir():
        raise error(f"'version_location' is not a directory: {location!r}")
    dist = getattr(ep, "dist", None)
    module = sys.modules.get(getattr(target, "__module__", None) or ep.module)
    origin = getattr(target, "__file__", None) or getattr(module, "__file__", None)
    return PluginSchema(
        ep.name, metadata, Path(location).resolve(), entry, dist.name if dist else None, origin
    )


def _metadata(target: Any) -> MetaData | None:
    for candidate in (target, getattr(target, "metadata", None), getattr(target, "Base", None)):
        if isinstance(candidate, MetaData):
            return candidate
        if isinstance(getattr(candidate, "metadata", None), MetaData):
            return candidate.metadata
    return None


def discover(path: list[str] | None = None, core_tables: set[str] | None = None) -> Discovery:
    """Every installed plugin schema; duplicates and table clashes refused, named.

    ``core_tables``: tables a plugin may not declare (default: the core models').
    """
    if core_tables is None:
        from sat_storage.models import Base

        core_tables = set(Base.metadata.tables)
    found = Discovery()
    candidates: dict[str, list[PluginSchema]] = {}
    for ep in group_entry_points(GROUP, path):
        try:
            schema = load(ep)
        except SchemaError as e:
            _refuse(found, e)
            continue
        candidates.setdefault(ep.name, []).append(schema)
    owners: dict[str, str] = dict.fromkeys(core_tables, CORE)
    for name, schemas in sorted(candidates.items()):
        if len(schemas) > 1:
            entries = ", ".join(schema.entry for schema in schemas)
            _refuse(found, SchemaError(name, schemas[0].entry, f"declared twice: {entries}"))
            continue
        schema = schemas[0]
        clashes = {table: owners[table] for table in schema.tables if table in owners}
        if clashes:
            reason = ", ".join(f"table {t!r} belongs to {o!r}" for t, o in clashes.items())
            _refuse(found, SchemaError(name, schema.entry, reason))
            continue
        owners.update(dict.fromkeys(schema.tables, name))
        found.schemas[name] = schema
    return found


def _refuse(found: Discovery, error: SchemaError) -> None:
    found.errors.setdefault(error.name, error)
    log.error("%s; its tables are not created or upgraded", error)


def installed(name: str, path: list[str] | None = None) -> PluginSchema:
    """The installed schema ``name``; ``ValueError`` naming the installed ones otherwise."""
    found = discover(path)
    if name in found.schemas:
        return found.schemas[name]
    if name in found.errors:
        raise ValueError(str(found.errors[name]))
    names = ", ".join(sorted(found.schemas)) or "none"
    raise ValueError(f"schema {name!r} is not installed (installed plugin schemas: {names})")
