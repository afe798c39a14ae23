"""Tables of plugin schemas: reached through the same gateway as the core's.

A plugin owning tables (:mod:`sat_storage.schemas`) writes its own ``*_txn``
functions (a SQLAlchemy ``Session`` first) and runs them with :meth:`run_txn`: one
transaction in a database thread, a Deferred back, on every engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer

from sat_storage.branches import BranchState
from sat_storage.exceptions import SchemaUnavailableError
from sat_storage.storage.base import StorageBase, check_type

T = TypeVar("T")


class PluginTablesStore(StorageBase):
    """``run_txn`` and the state of every plugin schema found at start."""

    plugin_schemas: dict[str, BranchState]  # by schema name, filled by initialise()

    def run_txn(
        self, schema: str, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> defer.Deferred[T]:
        """Run ``fn(session, *args, **kwargs)`` in one transaction on ``schema``'s tables.

        ``ValueError`` when ``schema`` is not installed, :class:`SchemaUnavailableError`
        when its tables are not ready (failed or refused at start); both before the
        database is touched. Commit on return, roll back on raise (see
        :meth:`sat_storage.gateway.Gateway.run`).
        """
        check_type("schema", schema, str)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        state = self.plugin_schemas.get(schema)
        if state is None or state.action == "not installed":
            names = ", ".join(sorted(self.plugin_schemas)) or "none"
            raise ValueError(f"schema {schema!r} is not installed (plugin schemas: {names})")
        if not state.ready:
            raise SchemaUnavailableError(f"schema {schema!r} is not available: {state.error}")
        return self.db.run(fn, *args, **kwargs)

    def failed_schemas(self) -> dict[str, BranchState]:
        """The plugin schemas that could not be brought to their head, by name."""
        return {name: s for name, s in self.plugin_schemas.items() if s.action == "failed"}
