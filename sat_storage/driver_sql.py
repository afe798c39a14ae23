"""Read-only statements run by the driver alone: compiled once, no per-call SQLAlchemy.

A :class:`DriverStatement` is a Core ``SELECT`` compiled once per dialect into the
driver's SQL text (bound parameters by name, no literal values). A :class:`Reader`
(given by :meth:`sat_storage.gateway.Gateway.read` to its function) runs it on a
DBAPI cursor and returns the rows as the driver gives them, through the result
processors of the selected columns' types when they have any: the values a
SQLAlchemy ``Row`` of the same statement would hold. No execution context, no
compiled-cache look-up, no ``Row`` objects: for the small hot reads (a page of
items), that machinery cost several times the statement itself.

Only statements whose bound parameters need no conversion (integers, text) and no
expansion (``IN`` lists) are accepted: :class:`DriverStatement` raises ``ValueError``
when compiled otherwise, so a statement that would bind differently from
SQLAlchemy's execution is never run here.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError

from sat_storage import engines

__all__ = ["BoundStatement", "DriverStatement", "Reader", "execute_and_capture"]

Processors = tuple[Callable[[Any], Any] | None, ...] | None
#: (SQL text, for a positional driver the getter of the parameters' values in order
#: from a mapping of them (a tuple) else None, the values of the parameters the
#: statement sets itself)
Compiled = tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]] | None, dict[str, Any]]


def _in_order(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The values of ``names``, in that order, from a mapping (always a tuple)."""
    if len(names) > 1:
        return operator.itemgetter(*names)  # type: ignore[return-value]
    if names:
        name = names[0]
        return lambda params: (params[name],)
    return lambda params: ()


class DriverStatement:
    """A Core ``SELECT``, compiled once per dialect (see the module docstring)."""

    __slots__ = ("statement", "_compiled", "_processors")

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, Compiled] = {}
        self._processors: dict[str, Processors] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        """The statement compiled for ``dialect`` (see :data:`Compiled`)."""
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = self._compile(dialect)
        return found

    def processors(self, dialect: Dialect, description: Sequence[Any]) -> Processors:
        """The result processors of the columns (None: no column has one), as
        SQLAlchemy takes them: from the types and the driver's column types of
        ``description`` (the cursor's, at the first execution on ``dialect``)."""
        try:
            return self._processors[dialect.name]
        except KeyError:
            pass
        found = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(self.statement.selected_columns, description, strict=True)
        )
        result = self._processors[dialect.name] = found if any(found) else None
        return result

    def _compile(self, dialect: Dialect) -> Compiled:
        compiled = self.statement.compile(dialect=dialect)
        for name, bind in compiled.binds.items():
            if bind.expanding or bind.type.dialect_impl(dialect).bind_processor(dialect):
                raise ValueError(f"bound parameter {name!r} needs SQLAlchemy's execution")
        order = _in_order(compiled.positiontup or ()) if dialect.positional else None
        # parameters the dialect added with their value (SQLite: LIMIT ? OFFSET 0)
        own = {name: bind.value for name, bind in compiled.binds.items() if bind.value is not None}
        return compiled.string, order, own


class BoundStatement(DriverStatement):
    """A Core ``SELECT`` holding all its values, with the driver SQL text and the
    parameters that SQLAlchemy's execution sent for it on one dialect
    (:func:`execute_and_capture`): replayed as they are, whatever their types (the
    parameters were processed by that execution)."""

    __slots__ = ("dialect_name", "sql", "bound")

    def __init__(self, statement: sa.Select[Any], dialect_name: str, sql: str, bound: Any) -> None:
        super().__init__(statement)
        self.dialect_name = dialect_name
        self.sql = sql
        self.bound = bound


def execute_and_capture(
    connection: sa.Connection, statement: sa.Select[Any]
) -> tuple[Sequence[sa.Row[Any]], BoundStatement | None]:
    """The rows of ``statement`` run by SQLAlchemy on ``connection``, and the
    :class:`BoundStatement` of what it sent the driver (None unless that was exactly
    one statement, parameters as a tuple or a dict)."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_args: Any) -> None:
        sent.append((sql, parameters))

    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        rows = connection.execute(statement).all()
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)
    if len(sent) != 1 or not isinstance(sent[0][1], tuple | dict):
        return rows, None
    sql, parameters = sent[0]
    copied = tuple(parameters) if isinstance(parameters, tuple) else dict(parameters)
    return rows, BoundStatement(statement, connection.dialect.name, sql, copied)


class Reader:
    """Runs :class:`DriverStatement` objects on one DBAPI cursor (in a database thread).

    Statements are reported to the engine's ``before_cursor_execute`` listeners (with
    no connection and no context), so that tests and benchmarks watching the engine
    see them; driver errors are raised as SQLAlchemy raises them (``DBAPIError``
    subclasses, ``connection_invalidated`` set for a lost connection).
    """

    __slots__ = ("cursor", "dialect", "engine", "invalidated")

    def __init__(self, cursor: Any, engine: Engine) -> None:
        self.cursor = cursor
        self.engine = engine
        self.dialect = engine.dialect
        self.invalidated = False  # a lost connection was seen: the pool must drop it

    def rows(
        self, statement: DriverStatement, params: Mapping[str, Any] | None = None
    ) -> Sequence[Any]:
        """The rows of ``statement`` with ``params`` (every bound parameter by name;
        none for a :class:`BoundStatement`, which holds its own)."""
        rows, processors = self.unprocessed_rows(statement, params)
        if processors is None:
            return rows
        pairs = [(p, index) for index, p in enumerate(processors)]
        return [tuple(row[i] if p is None else p(row[i]) for p, i in pairs) for row in rows]

    def unprocessed_rows(
        self, statement: DriverStatement, params: Mapping[str, Any] | None = None
    ) -> tuple[Sequence[Any], Processors]:
        """The rows of ``statement`` as the driver gives them, and the result processors
        of its columns (None: no column has one), for a caller that converts only the
        values it reads."""
        bound: Any
        if isinstance(statement, BoundStatement):
            if statement.dialect_name != self.dialect.name:
                raise ValueError(f"a statement bound for {statement.dialect_name}")
            sql, bound = statement.sql, statement.bound
        else:
            sql, order, own = statement.compiled(self.dialect)
            if own:
                params = {**own, **(params or {})}
            if order is None:
                bound = params or {}
            else:
                bound = order(params or {})
        dispatch = self.engine.dispatch.before_cursor_execute
        if dispatch:
            dispatch(None, self.cursor, sql, bound, None, False)
        try:
            self.cursor.execute(sql, bound)
            rows = self.cursor.fetchall()
        except self.dialect.loaded_dbapi.Error as e:
            lost = engines.is_lost_connection(self.dialect, e, self.cursor.connection)
            self.invalidated = self.invalidated or lost
            raise DBAPIError.instance(
                sql, bound, e, self.dialect.loaded_dbapi.Error, connection_invalidated=lost
            ) from e
        return rows, statement.processors(self.dialect, self.cursor.description)
