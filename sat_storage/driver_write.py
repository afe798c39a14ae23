"""Write statements run by the driver alone: the hot write path without a Session.

:meth:`sat_storage.gateway.Gateway.write` gives its function a :class:`Writer`: a
DBAPI cursor inside one transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL in
psycopg's pipeline mode, so that statements whose results are not read are sent
together, with the commit, in as few round trips as the results read ask for).
:class:`SessionSQL` offers the same two methods on a ``Session``'s connection, so
that one write function serves both (a ``*_txn`` twin sharing a transaction).

Statements are SQL text of the driver's parameter style, compiled once per dialect
(:func:`compile_driver`). Statements are reported to the engine's
``before_cursor_execute`` listeners (with no connection and no context), and driver
errors are raised as SQLAlchemy raises them (``DBAPIError`` subclasses, such as
``IntegrityError``; ``connection_invalidated`` set for a lost connection).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sat_storage import engines
from sat_storage.driver_sql import Reader

__all__ = ["CompiledWrite", "DriverSQL", "SessionSQL", "Writer", "bind", "compile_driver"]

Params = Sequence[Any] | Mapping[str, Any]


class DriverSQL(Protocol):
    """What a write function runs its driver SQL through (:class:`Writer`, :class:`SessionSQL`)."""

    dialect: Dialect

    def execute(self, sql: str, params: Params | list[Params] = ()) -> None:
        """Run ``sql`` (a list of parameter sets: once per set); its result is not read
        (PostgreSQL's :class:`Writer`: sent with the next statement whose rows are fetched,
        or with the commit)."""

    def fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` and return its rows (PostgreSQL's :class:`Writer`: a round trip)."""


class SessionSQL:
    """:class:`DriverSQL` on the connection of a ``Session`` (its transaction)."""

    __slots__ = ("connection", "dialect")

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()
        self.dialect = self.connection.dialect

    def execute(self, sql: str, params: Params | list[Params] = ()) -> None:
        self.connection.exec_driver_sql(sql, params)  # type: ignore[arg-type]

    def fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.connection.exec_driver_sql(sql, params)]  # type: ignore[arg-type]


class Writer(Reader):
    """:class:`DriverSQL` on one DBAPI cursor of :meth:`Gateway.write`'s transaction
    (a :class:`~sat_storage.driver_sql.Reader` too, for compiled ``SELECT`` statements)."""

    __slots__ = ()

    def execute(self, sql: str, params: Params | list[Params] = ()) -> None:
        many = isinstance(params, list)
        self._report(sql, params, many)
        try:
            if many:
                self.cursor.executemany(sql, params)
            else:
                self.cursor.execute(sql, params)
        except self.dialect.loaded_dbapi.Error as e:
            raise self.wrapped(e, sql, params) from e

    def fetch(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        self._report(sql, params, False)
        try:
            self.cursor.execute(sql, params)
            return list(self.cursor.fetchall())
        except self.dialect.loaded_dbapi.Error as e:
            raise self.wrapped(e, sql, params) from e

    def _report(self, sql: str, params: Any, many: bool) -> None:
        dispatch = self.engine.dispatch.before_cursor_execute
        if dispatch:
            dispatch(None, self.cursor, sql, params, None, many)

    def wrapped(self, error: Exception, sql: str | None, params: Any) -> DBAPIError:
        """``error`` of the driver as SQLAlchemy raises it (a lost connection noted)."""
        lost = engines.is_lost_connection(self.dialect, error, self.cursor.connection)
        self.invalidated = self.invalidated or lost
        return DBAPIError.instance(
            sql, params, error, self.dialect.loaded_dbapi.Error, connection_invalidated=lost
        )


#: (SQL text, parameter names in order for a positional driver else None, the values
#: of the parameters the statement holds itself)
CompiledWrite = tuple[str, tuple[str, ...] | None, dict[str, Any]]


def compile_driver(
    statement: sa.Executable, dialect: Dialect, names: Sequence[str]
) -> CompiledWrite:
    """``statement`` as driver SQL for ``dialect``: parameters ``names`` (bound with the
    value None in ``statement``) are given at each execution (:func:`bind`) as the
    driver takes them, every other one holds its value. Lists of constant
    values (``IN``) are rendered as one parameter each. ``ValueError`` for a
    parameter whose value would need SQLAlchemy's processing to bind."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    if "__[POSTCOMPILE_" in compiled.string:
        raise ValueError("a list parameter without its values needs SQLAlchemy's execution")
    for name, bind in compiled.binds.items():
        if name in names:
            continue  # given at each execution as the driver takes it
        if bind.type.dialect_impl(dialect).bind_processor(dialect):
            raise ValueError(f"bound parameter {name!r} needs SQLAlchemy's execution")
    own = {k: v for k, v in compiled.construct_params().items() if k not in names}
    order = tuple(compiled.positiontup or ()) if dialect.positional else None
    return compiled.string, order, own


def bind(compiled: CompiledWrite, params: Mapping[str, Any]) -> Params:
    """The driver parameters of ``compiled`` (:func:`compile_driver`) with ``params``."""
    _sql, order, own = compiled
    values = {**own, **params}
    return values if order is None else tuple(values[name] for name in order)
