"""File metadata (the file sharing plugins' records).

A file is identified by ``(id, version)``, ``version=""`` being the current one.
``owner`` is a JID stored as given, with ``JID.full()`` (a bare JID stays bare, so
quotas are usually kept per bare JID): filters compare the same form. ``access``
and ``extra`` are JSON dicts; :meth:`FilesStore.file_update` changes them safely
against concurrent writers (compare-and-swap on the stored JSON text).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Text, cast, delete, func, select, update
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID

from sat_storage.exceptions import ConflictError, NotFound
from sat_storage.models import File, FileType
from sat_storage.storage.base import StorageBase, check_type
from sat_storage.storage.checks import check_enum, check_jid, check_json, check_number, check_text
from sat_storage.storage.generic import add_unique

log = logging.getLogger(__name__)

# Libervia's default projection of get_files, in its order.
FILE_COLUMNS = (
    "id",
    "version",
    "parent",
    "type",
    "file_hash",
    "hash_algo",
    "name",
    "size",
    "namespace",
    "media_type",
    "media_subtype",
    "public_id",
    "created",
    "modified",
    "owner",
    "access",
    "extra",
)
JSON_COLUMNS = ("access", "extra")
MAX_SIZE = 2**63 - 1  # files.size is a BIGINT column


def _json_dict(name: str, value: object) -> None:
    if value is not None:
        check_type(name, value, dict)
        check_json(name, value)


def _file_dict(columns: tuple[str, ...], row: Any) -> dict[str, Any]:
    """A result row as Libervia gives it: type as text, owner as a JID."""
    result = dict(zip(columns, row, strict=True))
    if result.get("type") is not None:
        result["type"] = result["type"].value
    if result.get("owner") is not None:
        result["owner"] = JID(result["owner"])
    return result


class FilesStore(StorageBase):
    """File metadata (the file sharing plugins' records)."""

    #: compare-and-swap attempts of :meth:`file_update` before giving up
    file_update_attempts = 10

    @staticmethod
    def get_files_txn(
        session: Session,
        conditions: list[Any],
        columns: tuple[str, ...],
        unique: bool,
        access: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        selected = columns if access is None or "access" in columns else (*columns, "access")
        stmt = select(*(getattr(File, c) for c in selected)).where(*conditions)
        if unique:
            stmt = stmt.distinct().order_by(*(getattr(File, c) for c in selected))
        else:
            stmt = stmt.order_by(File.created, File.id, File.version)
        files = [_file_dict(selected, row) for row in session.execute(stmt)]
        if access is not None:
            # exact equality of JSON documents, the same on every engine
            files = [f for f in files if f["access"] == access]
            if "access" not in columns:
                for f in files:
                    del f["access"]
        return files

    @defer.inlineCallbacks
    def get_files(
        self,
        client: Any,
        file_id: str | None = None,
        version: str | None = "",
        parent: str | None = None,
        type_: FileType | str | None = None,
        file_hash: str | None = None,
        hash_algo: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        mime_type: str | None = None,
        public_id: str | None = None,
        owner: JID | None = None,
        access: dict[str, Any] | None = None,
        projection: list[str] | None = None,
        unique: bool = False,
    ) -> defer.Deferred[list[dict[str, Any]]]:
        """Files matching every given filter (None = no filter), as dicts.

        ``client`` None is only allowed with ``public_id`` (any profile).
        ``version=""``: the current version (None: every version). ``parent=""``:
        root files. ``mime_type``: ``"type/subtype"`` or ``"type"``. ``access``:
        files whose access rules equal it. ``projection``: the keys (columns) to
        give, default all. ``unique``: drop duplicate results.
        """
        conditions: list[Any] = []
        if client is not None:
            conditions.append(File.profile_id == self.client_profile_id(client))
        elif public_id is None:
            raise ValueError("client can only be None when public_id is given")
        texts = {
            "file_id": (file_id, File.id),
            "version": (version, File.version),
            "parent": (parent, File.parent),
            "file_hash": (file_hash, File.file_hash),
            "hash_algo": (hash_algo, File.hash_algo),
            "name": (name, File.name),
            "namespace": (namespace, File.namespace),
            "public_id": (public_id, File.public_id),
        }
        for arg, (value, column) in texts.items():
            check_text(arg, value, optional=True)
            if value is not None:
                conditions.append(column == value)
        if type_ is not None:
            conditions.append(File.type == check_enum("type_", type_, FileType))
        if mime_type is not None:
            check_text("mime_type", mime_type)
            media_type, _, media_subtype = mime_type.partition("/")
            conditions.append(File.media_type == media_type)
            if media_subtype:
                conditions.append(File.media_subtype == media_subtype)
        check_jid("owner", owner, optional=True)
        if owner is not None:
            conditions.append(File.owner == owner.full())
        _json_dict("access", access)
        check_type("unique", unique, bool)
        if projection is None:
            columns = FILE_COLUMNS
        else:
            check_type("projection", projection, list, tuple)
            columns = tuple(projection)
            for column in columns:
                if column not in FILE_COLUMNS:
                    raise ValueError(f"unknown column in projection: {column!r}")
            if not columns:
                raise ValueError("projection must name at least one column")
        return (yield self.db.run(self.get_files_txn, conditions, columns, unique, access))

    @staticmethod
    def set_file_txn(session: Session, file: File) -> None:
        conflict = add_unique(session, file)
        if conflict == ("public_id",):
            raise ConflictError(f"a file with public_id {file.public_id!r} already exists")
        if conflict is not None:
            raise ConflictError(f"file {file.id!r} version {file.version!r} already exists")

    @defer.inlineCallbacks
    def set_file(
        self,
        client: Any,
        name: str,
        file_id: str,
        version: str = "",
        parent: str | None = None,
        type_: FileType | str = FileType.file,
        file_hash: str | None = None,
        hash_algo: str | None = None,
        size: int | None = None,
        namespace: str | None = None,
        media_type: str | None = None,
        media_subtype: str | None = None,
        public_id: str | None = None,
        created: float | None = None,
        modified: float | None = None,
        owner: JID | None = None,
        access: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> defer.Deferred[None]:
        """Record the metadata of a new file (or a new version of one).

        ``parent``: id of the directory, None or ``""`` for the root. ``created``:
        defaults to now. ``access`` and ``extra``: JSON dicts. ``ConflictError``
        when ``(file_id, version)`` or ``public_id`` is taken.
        """
        profile_id = self.client_profile_id(client)
        check_text("name", name)
        check_text("file_id", file_id)
        check_text("version", version)
        check_text("parent", parent, optional=True)
        for arg, value in {
            "file_hash": file_hash,
            "hash_algo": hash_algo,
            "namespace": namespace,
            "media_type": media_type,
            "media_subtype": media_subtype,
            "public_id": public_id,
        }.items():
            check_text(arg, value, optional=True)
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int):
                raise TypeError(f"size must be an int, got {size!r}")
            if not 0 <= size <= MAX_SIZE:
                raise ValueError(f"size must be between 0 and {MAX_SIZE}, got {size}")
        check_number("created", created, optional=True)
        check_number("modified", modified, optional=True)
        check_jid("owner", owner, optional=True)
        _json_dict("access", access)
        _json_dict("extra", extra)
        file = File(
            id=file_id,
            version=version.strip(),
            parent=parent or "",
            type=check_enum("type_", type_, FileType),
            file_hash=file_hash,
            hash_algo=hash_algo,
            name=name,
            size=size,
            namespace=namespace,
            media_type=media_type,
            media_subtype=media_subtype,
            public_id=public_id,
            created=time.time() if created is None else float(created),
            modified=None if modified is None else float(modified),
            owner=None if owner is None else owner.full(),
            access=access,
            extra=extra,
            profile_id=profile_id,
        )
        yield self.db.run(self.set_file_txn, file)

    @staticmethod
    def file_get_used_space_txn(session: Session, profile_id: int, owner: str) -> int:
        total = session.execute(
            select(func.sum(File.size)).where(
                File.profile_id == profile_id, File.owner == owner, File.type == FileType.file
            )
        ).scalar_one()
        return int(total or 0)

    @defer.inlineCallbacks
    def file_get_used_space(self, client: Any, owner: JID) -> defer.Deferred[int]:
        """Sum of the sizes of the files (not directories) of ``owner``; 0 when none."""
        profile_id = self.client_profile_id(client)
        check_jid("owner", owner)
        return (yield self.db.run(self.file_get_used_space_txn, profile_id, owner.full()))

    @staticmethod
    def file_delete_txn(session: Session, file_id: str) -> None:
        session.execute(delete(File).where(File.id == file_id))

    @defer.inlineCallbacks
    def file_delete(self, file_id: str) -> defer.Deferred[None]:
        """Delete the metadata of every version of a file (not the file itself)."""
        check_text("file_id", file_id)
        yield self.db.run(self.file_delete_txn, file_id)

    @staticmethod
    def _file_key(file_id: str, version: str) -> list[Any]:
        return [File.id == file_id, File.version == version]

    def file_read_json_txn(
        self, session: Session, file_id: str, version: str, column: str
    ) -> str | None:
        """Stored JSON text of ``column`` (None for NULL); ``NotFound`` without file."""
        raw = session.execute(
            select(cast(getattr(File, column), Text)).where(*self._file_key(file_id, version))
        ).one_or_none()
        if raw is None:
            raise NotFound(f"no file {file_id!r} version {version!r}")
        return raw[0]

    def file_swap_json_txn(
        self, session: Session, file_id: str, version: str, column: str, old: str | None, new: Any
    ) -> bool:
        """Set ``column`` to ``new`` if its stored JSON text is still ``old``."""
        orm_column = getattr(File, column)
        unchanged = orm_column.is_(None) if old is None else cast(orm_column, Text) == old
        stmt = update(File).where(*self._file_key(file_id, version), unchanged)
        if session.execute(stmt.values({column: new})).rowcount == 1:
            return True
        self.file_read_json_txn(session, file_id, version, column)  # NotFound when deleted
        return False

    @defer.inlineCallbacks
    def file_update(
        self,
        file_id: str,
        column: str,
        update_cb: Callable[[dict[str, Any]], None],
        version: str = "",
    ) -> defer.Deferred[None]:
        """Change the JSON ``column`` (``access`` or ``extra``) of a file, race-free.

        ``update_cb(value)`` edits the current value (``{}`` when unset) in place, in
        the reactor thread; the result is written only if nobody changed the column
        meanwhile, otherwise it is read again and ``update_cb`` called again, up to
        :attr:`file_update_attempts` times (then ``ConflictError``). ``NotFound``
        when the file does not exist.
        """
        check_text("file_id", file_id)
        check_text("column", column)
        if column not in JSON_COLUMNS:
            raise ValueError(f"column must be one of {JSON_COLUMNS}, got {column!r}")
        if not callable(update_cb):
            raise TypeError(f"update_cb must be callable, got {update_cb!r}")
        check_text("version", version)
        for attempt in range(1, self.file_update_attempts + 1):
            raw = yield self.db.run(self.file_read_json_txn, file_id, version, column)
            value = {} if raw is None else json.loads(raw)
            update_cb(value)
            check_json(f"{column} of file {file_id!r}", value)
            swapped = yield self.db.run(
                self.file_swap_json_txn, file_id, version, column, raw, value
            )
            if swapped:
                return
            log.debug("%s of file %r changed meanwhile (attempt %d)", column, file_id, attempt)
        raise ConflictError(
            f"can't update {column} of file {file_id!r}: changed by other writers "
            f"{self.file_update_attempts} times in a row"
        )
