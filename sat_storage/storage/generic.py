"""Generic access to mapped objects: get, add, delete (Libervia's generic methods).

Objects cross back to the reactor thread detached from their session, with their
columns loaded; relationships are only usable when asked for (``joined_loads``),
any other one raises on access (models' ``lazy="raise"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import UniqueConstraint, and_, exists, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Mapper, Session, selectinload
from sqlalchemy.orm.relationships import RelationshipProperty
from twisted.internet import defer

from sat_storage.exceptions import ConflictError
from sat_storage.models import Base
from sat_storage.storage.base import StorageBase


def unique_conflict(session: Session, obj: Base) -> tuple[str, ...] | None:
    """Columns of a unique key (primary key first) that an existing row shares with
    ``obj``, or None. Used to tell a duplicate from other integrity errors."""
    mapper: Mapper[Any] = inspect(type(obj))
    table = mapper.local_table
    keys = [table.primary_key]  # type: ignore[attr-defined]
    keys += [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    for key in keys:
        columns = list(key.columns)
        values = [getattr(obj, mapper.get_property_by_column(c).key) for c in columns]
        if any(value is None for value in values):
            continue  # NULLs never conflict
        condition = and_(*(c == value for c, value in zip(columns, values, strict=True)))
        if session.execute(select(exists().where(condition))).scalar_one():
            return tuple(c.name for c in columns)
    return None


def add_unique(session: Session, obj: Base) -> tuple[str, ...] | None:
    """Insert ``obj`` in a savepoint; on a duplicate, the columns of the unique key it
    breaks (the transaction stays usable). Other integrity errors are raised."""
    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        conflict = unique_conflict(session, obj)
        if conflict is None:
            raise
        return conflict
    return None


def _mapper(name: str, db_cls: object) -> Mapper[Any]:
    if not isinstance(db_cls, type) or not issubclass(db_cls, Base):
        raise TypeError(f"{name} must be a mapped class of sat_storage.models, got {db_cls!r}")
    return inspect(db_cls)


def _attribute(name: str, db_cls: type, attribute: object, relationship: bool) -> Any:
    """Check that ``attribute`` is a column (or relationship) attribute of ``db_cls``."""
    kind = "relationship" if relationship else "column"
    if not isinstance(attribute, InstrumentedAttribute) or not issubclass(db_cls, attribute.class_):
        raise TypeError(f"{name} must be a {kind} attribute of {db_cls.__name__}: {attribute!r}")
    if isinstance(attribute.property, RelationshipProperty) != relationship:
        raise TypeError(f"{name} must be a {kind} attribute of {db_cls.__name__}: {attribute!r}")
    return attribute


def _stored(name: str, obj: object) -> None:
    """``obj`` must be a mapped object that is in the database (persistent or detached)."""
    state = inspect(obj, raiseerr=False)
    if state is None or not isinstance(obj, Base):
        raise TypeError(f"{name} must be a mapped object, got {obj!r}")
    if not state.has_identity:
        raise ValueError(f"{name} is not stored in the database: {obj!r}")


class GenericStore(StorageBase):
    """Generic access to mapped objects: get, add, delete."""

    @staticmethod
    def get_txn(
        session: Session,
        db_cls: type[Base],
        conditions: list[Any],
        loads: list[Any],
    ) -> Base | None:
        stmt = select(db_cls).where(*conditions).options(*(selectinload(a) for a in loads))
        return session.scalars(stmt).one_or_none()

    @defer.inlineCallbacks
    def get(
        self,
        client: Any,
        db_cls: type[Base],
        db_id_col: Any,
        id_value: Any,
        joined_loads: Iterable[Any] | None = None,
    ) -> defer.Deferred[Base | None]:
        """The ``db_cls`` object whose ``db_id_col`` equals ``id_value``, or None.

        ``client``: restrict to its profile (the class must have ``profile_id``), None
        for any. ``joined_loads``: relationship attributes loaded with the object.
        """
        mapper = _mapper("db_cls", db_cls)
        conditions = [_attribute("db_id_col", db_cls, db_id_col, relationship=False) == id_value]
        if client is not None:
            if "profile_id" not in mapper.columns:
                raise ValueError(f"{db_cls.__name__} has no profile: use client=None")
            conditions.append(db_cls.profile_id == self.client_profile_id(client))  # type: ignore[attr-defined]
        loads = [
            _attribute(f"joined_loads[{index}]", db_cls, attribute, relationship=True)
            for index, attribute in enumerate(joined_loads or ())
        ]
        return (yield self.db.run(self.get_txn, db_cls, conditions, loads))

    @staticmethod
    def add_txn(session: Session, db_obj: Base) -> None:
        conflict = add_unique(session, db_obj)
        if conflict is not None:
            raise ConflictError(
                f"{type(db_obj).__name__} with the same {', '.join(conflict)} already exists"
            )

    @defer.inlineCallbacks
    def add(self, db_obj: Base) -> defer.Deferred[None]:
        """Insert a new object, or save changes of one got from :meth:`get`.

        ``ConflictError`` (naming the key) when it duplicates a stored row.
        """
        if not isinstance(db_obj, Base):
            raise TypeError(f"db_obj must be a mapped object, got {db_obj!r}")
        yield self.db.run(self.add_txn, db_obj)

    @staticmethod
    def delete_txn(session: Session, objects: list[Base], session_add: list[Base]) -> None:
        for obj in session_add:
            session.add(obj)
        for obj in objects:
            session.delete(obj)

    @defer.inlineCallbacks
    def delete(
        self, db_obj: Base | list[Base], session_add: list[Base] | None = None
    ) -> defer.Deferred[None]:
        """Delete a stored object or a list of them (rows they own cascade).

        ``session_add``: other objects to save in the same transaction.
        """
        objects = db_obj if isinstance(db_obj, list) else [db_obj]
        for index, obj in enumerate(objects):
            _stored(f"db_obj[{index}]" if isinstance(db_obj, list) else "db_obj", obj)
        others = list(session_add or [])
        for index, obj in enumerate(others):
            if not isinstance(obj, Base):
                raise TypeError(f"session_add[{index}] must be a mapped object, got {obj!r}")
        if objects or others:
            yield self.db.run(self.delete_txn, objects, others)
