"""SQLAlchemy mapping of the schema, modelled on Libervia 0.9's.

The whole schema is in this one module on purpose (over 500 lines): tables refer to
each other, migrations and the Libervia adoption compare against it as one, and it is
read side by side with Libervia's own ``sqla_mapping.py``.

Relationships default to ``lazy="raise"``: everything a caller needs is loaded
inside the database thread, so nothing lazy crosses back to the reactor.
"""

from __future__ import annotations

import enum
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from twisted.words.xish import domish

from sat_storage.xml_tools import parse_xml, to_xml

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JSONValue(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL; Python None is SQL NULL.

    Any JSON-serialisable value reads back exactly. On SQLite the column has NUMERIC
    affinity, which would store the JSON text of a bare number as a number (``2**70``
    as a float, ``3.0`` as the integer 3): such a document is bound as a BLOB of its
    JSON text instead (objects, arrays, strings, booleans stay text).
    """

    impl = JSON(none_as_null=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        process = super().bind_processor(dialect)
        if dialect.name != "sqlite":
            return process

        def sqlite_process(value: Any) -> Any:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return json.dumps(value).encode()
            return process(value) if process is not None else value

        return sqlite_process

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB(none_as_null=True))
        return dialect.type_descriptor(JSON(none_as_null=True))


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored and compared in UTC; given back as an aware datetime.

    An aware datetime is converted to UTC whatever its zone; a naive one is taken
    as UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite stores text: keep one fixed-width, offset-free form so that text
        # comparison is time comparison.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class XmlElement(TypeDecorator[domish.Element]):
    """An XML element, stored as text; loaded as a ``domish.Element``.

    Binds a ``domish.Element`` (serialised like ``toXml()``) or a ``str`` of XML
    (checked to be one well-formed element).
    """

    impl = Text
    cache_ok = True

    def process_bind_param(
        self, value: domish.Element | str | None, dialect: Dialect
    ) -> str | None:
        if value is None:
            return None
        if isinstance(value, domish.Element):
            return to_xml(value)
        if isinstance(value, str):
            parse_xml(value)
            return value
        raise TypeError(f"expected a domish.Element or XML text, got {type(value).__name__}")

    def process_result_value(self, value: str | None, dialect: Dialect) -> domish.Element | None:
        return None if value is None else parse_xml(value)


def utcnow() -> datetime:
    """Current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(enum_cls: type[enum.Enum], name: str) -> Enum:
    """Portable enum column: text with a named CHECK constraint on every engine."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


# --- profiles -----------------------------------------------------------------


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)

    component: Mapped[Component | None] = relationship(
        back_populates="profile", passive_deletes=True, lazy="raise"
    )


class Component(Base):
    __tablename__ = "components"

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    entry_point: Mapped[str] = mapped_column(Text)

    profile: Mapped[Profile] = relationship(back_populates="component", lazy="raise")


# --- parameters and private data ----------------------------------------------


class ParamGen(Base):
    __tablename__ = "param_gen"

    category: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)


class ParamInd(Base):
    __tablename__ = "param_ind"

    category: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[str | None] = mapped_column(Text)


class PrivateGen(Base):
    __tablename__ = "private_gen"

    namespace: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)


class PrivateInd(Base):
    __tablename__ = "private_ind"

    namespace: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[str | None] = mapped_column(Text)


class PrivateGenBin(Base):
    """General private values of any JSON-serialisable type (never pickled)."""

    __tablename__ = "private_gen_bin"

    namespace: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[Any] = mapped_column(JSONValue, nullable=True)


class PrivateIndBin(Base):
    """Per-profile private values of any JSON-serialisable type (never pickled)."""

    __tablename__ = "private_ind_bin"

    namespace: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[Any] = mapped_column(JSONValue, nullable=True)


# --- history --------------------------------------------------------------------


class MessageType(enum.Enum):
    chat = "chat"
    error = "error"
    groupchat = "groupchat"
    headline = "headline"
    normal = "normal"
    info = "info"


class History(Base):
    __tablename__ = "history"
    __table_args__ = (
        UniqueConstraint("profile_id", "stanza_id", "source", "dest"),
        UniqueConstraint("profile_id", "origin_id", "source"),
        Index("history__profile_id_timestamp", "profile_id", "timestamp"),
        Index("history__profile_id_received_timestamp", "profile_id", "received_timestamp"),
    )

    uid: Mapped[str] = mapped_column(Text, primary_key=True)
    origin_id: Mapped[str | None] = mapped_column(Text)
    stanza_id: Mapped[str | None] = mapped_column(Text)
    update_uid: Mapped[str | None] = mapped_column(Text)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    source_res: Mapped[str | None] = mapped_column(Text)
    dest: Mapped[str] = mapped_column(Text)
    dest_res: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[float] = mapped_column(Float)
    received_timestamp: Mapped[float | None] = mapped_column(Float)
    type: Mapped[MessageType] = mapped_column(_enum(MessageType, "message_type"))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)

    messages: Mapped[list[Message]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise", order_by="Message.id"
    )
    subjects: Mapped[list[Subject]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise", order_by="Subject.id"
    )
    thread: Mapped[Thread | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (Index("message__history_uid", "history_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    history_uid: Mapped[str] = mapped_column(ForeignKey("history.uid", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(Text)


class Subject(Base):
    __tablename__ = "subject"
    __table_args__ = (Index("subject__history_uid", "history_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    history_uid: Mapped[str] = mapped_column(ForeignKey("history.uid", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(Text)


class Thread(Base):
    __tablename__ = "thread"
    __table_args__ = (Index("thread__history_uid", "history_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    history_uid: Mapped[str] = mapped_column(ForeignKey("history.uid", ondelete="CASCADE"))
    thread_id: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[str | None] = mapped_column(Text)


# --- files ----------------------------------------------------------------------


class FileType(enum.Enum):
    file = "file"
    directory = "directory"


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        Index("files__profile_id_owner_parent", "profile_id", "owner", "parent"),
        Index(
            "files__profile_id_owner_media_type_media_subtype",
            "profile_id",
            "owner",
            "media_type",
            "media_subtype",
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[str] = mapped_column(Text, primary_key=True, default="")
    public_id: Mapped[str | None] = mapped_column(Text, unique=True)
    parent: Mapped[str] = mapped_column(Text)
    type: Mapped[FileType] = mapped_column(_enum(FileType, "file_type"), default=FileType.file)
    file_hash: Mapped[str | None] = mapped_column(Text)
    hash_algo: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    namespace: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str | None] = mapped_column(Text)
    media_subtype: Mapped[str | None] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float)
    modified: Mapped[float | None] = mapped_column(Float)
    owner: Mapped[str | None] = mapped_column(Text)
    access: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    extra: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))


# --- pubsub ---------------------------------------------------------------------


class SyncState(enum.Enum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ERROR = "error"
    NO_SYNC = "no_sync"


class SubscriptionState(enum.Enum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"


class PubsubNode(Base):
    __tablename__ = "pubsub_nodes"
    __table_args__ = (
        UniqueConstraint("profile_id", "service", "name"),
        Index("pubsub_nodes__service_name", "service", "name"),
        Index("pubsub_nodes__sync_state", "sync_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    subscribed: Mapped[bool] = mapped_column(
        Boolean(create_constraint=True, name="subscribed"), default=False
    )
    analyser: Mapped[str | None] = mapped_column(Text)
    sync_state: Mapped[SyncState | None] = mapped_column(_enum(SyncState, "sync_state"))
    sync_state_updated: Mapped[float] = mapped_column(Float)
    #: who runs the synchronisation (token of a cache plugin instance: host, pid, random)
    sync_owner: Mapped[str | None] = mapped_column(Text)
    #: end of the owner's lease (epoch seconds): past it, another process may take over
    sync_lease_expires: Mapped[float | None] = mapped_column(Float)
    type_: Mapped[str | None] = mapped_column("type", Text)
    subtype: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    #: how many items the node has cached, kept by the database (sat_storage.item_counts)
    item_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: grows with every change to the node's items (same triggers); starts at the
    #: creation time in ns, so that a node created again under a reused id never repeats it
    items_version: Mapped[int] = mapped_column(
        BigInteger, default=time.time_ns, server_default="0"
    )

    items: Mapped[list[PubsubItem]] = relationship(
        back_populates="node", passive_deletes=True, lazy="raise", order_by="PubsubItem.id"
    )
    subscriptions: Mapped[list[PubsubSub]] = relationship(
        back_populates="node", passive_deletes=True, lazy="raise", order_by="PubsubSub.id"
    )


class PubsubSub(Base):
    __tablename__ = "pubsub_subs"
    __table_args__ = (UniqueConstraint("node_id", "subscriber"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("pubsub_nodes.id", ondelete="CASCADE"))
    subscriber: Mapped[str] = mapped_column(Text)
    state: Mapped[SubscriptionState | None] = mapped_column(
        _enum(SubscriptionState, "subscription_state")
    )

    node: Mapped[PubsubNode] = relationship(back_populates="subscriptions", lazy="raise")


class PubsubItem(Base):
    __tablename__ = "pubsub_items"
    __table_args__ = (
        UniqueConstraint("node_id", "name"),
        # keyset paging in creation order (id) and modification order (updated, id)
        Index("pubsub_items__node_id_id", "node_id", "id"),
        Index("pubsub_items__node_id_updated_id", "node_id", "updated", "id"),
        # searches ordered by modification across nodes; none on created (revision 0010:
        # only the purge's created_before filter could read it, creation order is id's)
        Index("pubsub_items__updated", "updated"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("pubsub_nodes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    data: Mapped[domish.Element] = mapped_column(XmlElement)  # the <item/> element
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    parsed: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    # its words for full-text search are kept out of this table (sat_storage.fts)

    node: Mapped[PubsubNode] = relationship(back_populates="items", lazy="raise")


class PubsubSortKey(Base):
    """A path of items' parsed data declared a sort key (by an analyser): its values
    are kept in :class:`PubsubItemSortValue`, for every cached item, so that ordering
    and range filters on the path read an index (see ``storage/sort_keys.py``)."""

    __tablename__ = "pubsub_sort_keys"
    __table_args__ = (UniqueConstraint("path", "direction"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)  # the JSON list of the path's steps
    direction: Mapped[str] = mapped_column(Text)  # "asc" or "desc"
    type_: Mapped[str] = mapped_column("type", Text)  # "number" or "string"


class PubsubItemSortValue(Base):
    """The sort value of one item for one declared key, as the search orders it:
    the rank of the value's JSON kind (missing and null last in the key's direction),
    then the value: ``num`` (SQLite: any value, as its JSON functions give it;
    PostgreSQL: numbers, exact), ``txt`` and ``flag`` (PostgreSQL: strings in code
    point order, booleans)."""

    __tablename__ = "pubsub_item_sort_values"
    # the primary key (item_id, key_id) serves deletions; the order index the searches
    __table_args__ = (
        Index(
            "pubsub_item_sort_values__order", "key_id", "rank", "num", "txt", "flag", "item_id"
        ),
    )

    # no foreign key: a trigger deletes an item's values with it (sat_storage.sort_values)
    item_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(
        ForeignKey("pubsub_sort_keys.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(SmallInteger)
    # no type affinity on SQLite (BLOB): numbers, text and 0/1 kept as json_extract gives them
    num: Mapped[Any | None] = mapped_column(
        LargeBinary().with_variant(Numeric(), "postgresql"), nullable=True
    )
    txt: Mapped[str | None] = mapped_column(
        Text().with_variant(Text(collation="C"), "postgresql")
    )
    flag: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


__all__ = [
    "Base",
    "Component",
    "File",
    "FileType",
    "History",
    "JSONValue",
    "Message",
    "MessageType",
    "ParamGen",
    "ParamInd",
    "PrivateGen",
    "PrivateGenBin",
    "PrivateInd",
    "PrivateIndBin",
    "Profile",
    "PubsubItem",
    "PubsubItemSortValue",
    "PubsubNode",
    "PubsubSortKey",
    "PubsubSub",
    "SubscriptionState",
    "Subject",
    "SyncState",
    "Thread",
    "UTCDateTime",
    "XmlElement",
    "utcnow",
]
