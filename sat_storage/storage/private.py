"""Private data (text and JSON values), general and per profile.

Four tables, picked by ``binary`` and ``profile``: ``private_gen`` / ``private_ind``
hold text, ``private_gen_bin`` / ``private_ind_bin`` hold any JSON-serialisable
value (stored as JSON, never pickled). ``profile=None`` means the general tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage import engines
from sat_storage.models import PrivateGen, PrivateGenBin, PrivateInd, PrivateIndBin
from sat_storage.storage.base import StorageBase, check_type
from sat_storage.storage.checks import batched, check_json, check_strings, check_text

PrivateTable = type[PrivateGen] | type[PrivateInd] | type[PrivateGenBin] | type[PrivateIndBin]


def private_table(binary: bool, individual: bool) -> PrivateTable:
    """Mapped class holding private values of that kind."""
    if individual:
        return PrivateIndBin if binary else PrivateInd
    return PrivateGenBin if binary else PrivateGen


class PrivateStore(StorageBase):
    """Private data (text and JSON values), general and per profile."""

    def _private_target(
        self, namespace: object, binary: object, profile: object
    ) -> tuple[PrivateTable, int | None]:
        """Check the common arguments; the table to use and the profile id (or None)."""
        check_text("namespace", namespace)
        check_type("binary", binary, bool)
        profile_id = None if profile is None else self.get_profile_id(profile)  # type: ignore[arg-type]
        return private_table(binary, profile_id is not None), profile_id  # type: ignore[arg-type]

    @staticmethod
    def _private_where(table: PrivateTable, namespace: str, profile_id: int | None) -> list[Any]:
        conditions = [table.namespace == namespace]
        if profile_id is not None:
            conditions.append(table.profile_id == profile_id)  # type: ignore[union-attr]
        return conditions

    def get_privates_txn(
        self,
        session: Session,
        table: PrivateTable,
        namespace: str,
        keys: list[str] | None,
        profile_id: int | None,
    ) -> dict[str, Any]:
        where = self._private_where(table, namespace, profile_id)
        if keys is None:
            rows = session.execute(select(table.key, table.value).where(*where))
            return {key: value for key, value in rows}
        found: dict[str, Any] = {}
        for batch in batched(sorted(set(keys))):
            stmt = select(table.key, table.value).where(*where, table.key.in_(batch))
            found.update((key, value) for key, value in session.execute(stmt))
        return found

    @defer.inlineCallbacks
    def get_privates(
        self,
        namespace: str,
        keys: Any = None,
        binary: bool = False,
        profile: str | None = None,
    ) -> defer.Deferred[dict[str, Any]]:
        """Private values of ``namespace`` as ``{key: value}``.

        ``keys``: an iterable of keys to get (missing ones are left out), None for all;
        an empty one gives ``{}``. ``binary``: the JSON tables. ``profile``: the
        profile's values, None for the general ones.
        """
        table, profile_id = self._private_target(namespace, binary, profile)
        key_list = None if keys is None else check_strings("keys", keys)
        if key_list == []:
            return {}
        return (yield self.db.run(self.get_privates_txn, table, namespace, key_list, profile_id))

    def set_private_value_txn(
        self,
        session: Session,
        table: PrivateTable,
        namespace: str,
        key: str,
        value: Any,
        profile_id: int | None,
    ) -> None:
        row = {"namespace": namespace, "key": key, "value": value}
        index = ["namespace", "key"]
        if profile_id is not None:
            row["profile_id"] = profile_id
            index.append("profile_id")
        session.execute(engines.upsert(self.dialect, table.__table__, index, ["value"]), row)

    @defer.inlineCallbacks
    def set_private_value(
        self,
        namespace: str,
        key: str,
        value: Any,
        binary: bool = False,
        profile: str | None = None,
    ) -> defer.Deferred[None]:
        """Set (insert or replace) a private value.

        Text tables take a ``str``; with ``binary`` any JSON-serialisable value
        (tuples come back as lists), else ``TypeError`` naming the key.
        """
        table, profile_id = self._private_target(namespace, binary, profile)
        check_text("key", key)
        if binary:
            check_json(f"value of private key {key!r}", value)
        else:
            check_text(f"value of private key {key!r}", value)
        yield self.db.run(self.set_private_value_txn, table, namespace, key, value, profile_id)

    def del_private_value_txn(
        self,
        session: Session,
        table: PrivateTable,
        namespace: str,
        key: str | None,
        profile_id: int | None,
    ) -> None:
        where = self._private_where(table, namespace, profile_id)
        if key is not None:
            where.append(table.key == key)
        session.execute(delete(table).where(*where))

    @defer.inlineCallbacks
    def del_private_value(
        self,
        namespace: str,
        key: str,
        binary: bool = False,
        profile: str | None = None,
    ) -> defer.Deferred[None]:
        """Delete one private value (nothing happens when it does not exist)."""
        table, profile_id = self._private_target(namespace, binary, profile)
        check_text("key", key)
        yield self.db.run(self.del_private_value_txn, table, namespace, key, profile_id)

    @defer.inlineCallbacks
    def del_private_namespace(
        self,
        namespace: str,
        binary: bool = False,
        profile: str | None = None,
    ) -> defer.Deferred[None]:
        """Delete every private value of ``namespace`` (of ``profile``, or general ones)."""
        table, profile_id = self._private_target(namespace, binary, profile)
        yield self.db.run(self.del_private_value_txn, table, namespace, None, profile_id)
