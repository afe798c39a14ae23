"""Message history.

A message is stored as one ``history`` row (JIDs split into bare JID and resource
columns, as in Libervia) with its texts in ``message`` / ``subject`` (one row per
language, ``""`` = no language, stored as NULL) and its thread in ``thread``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, tuple_
from sqlalchemy.orm import Session, selectinload
from twisted.internet import defer
from twisted.words.protocols.jabber.jid import JID

from sat_storage import engines
from sat_storage.models import History, Message, MessageType, Subject, Thread
from sat_storage.storage.base import StorageBase, check_type
from sat_storage.storage.checks import check_enum, check_jid, check_json, check_number, check_text
from sat_storage.storage.generic import add_unique

log = logging.getLogger(__name__)

# Keys of ``extra`` kept in their own columns (or in ``thread``), given back in ``extra``.
EXTRA_TEXT_COLUMNS = ("origin_id", "stanza_id", "update_uid")
NOT_IN_EXTRA = (*EXTRA_TEXT_COLUMNS, "received_timestamp", "thread", "thread_parent")
FILTERS = (
    "timestamp_start",
    "before_uid",
    "body",
    "search",
    "types",
    "not_types",
    "last_stanza_id",
    "origin_id",
)

HistoryTuple = tuple[str, float, str, str, dict[str, str], dict[str, str], str, dict[str, Any]]


# --- argument checks (reactor thread) ---------------------------------------------


def _texts(name: str, value: object) -> dict[str, str]:
    """Check a ``{language: text}`` dict."""
    check_type(name, value, dict)
    for lang, text in value.items():  # type: ignore[attr-defined]
        check_text(f"{name} language", lang)
        check_text(f"{name}[{lang!r}]", text)
    return value  # type: ignore[return-value]


def _types_filter(name: str, value: object) -> list[MessageType]:
    """``types``/``not_types``: a space-separated string (Libervia's form) or an iterable."""
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, Iterable):
        raise TypeError(f"filters[{name!r}] must be a str or a list, got {value!r}")
    return [check_enum(f"filters[{name!r}]", t, MessageType) for t in value]


def check_history_data(data: object) -> History:
    """The ``History`` row (with its texts and thread) for ``add_to_history`` data."""
    check_type("data", data, dict)
    assert isinstance(data, dict)
    for key in ("uid", "from", "to", "timestamp", "type"):
        if key not in data:
            raise ValueError(f"data has no {key!r}")
    check_text("data['uid']", data["uid"])
    if not data["uid"]:
        raise ValueError("data['uid'] must not be empty")
    check_jid("data['from']", data["from"])
    check_jid("data['to']", data["to"])
    check_number("data['timestamp']", data["timestamp"])
    type_ = check_enum("data['type']", data["type"], MessageType)
    messages = _texts("data['message']", data.get("message", {}))
    subjects = _texts("data['subject']", data.get("subject", {}))
    extra = data.get("extra", {})
    check_type("data['extra']", extra, dict)
    specials = {k: extra[k] for k in NOT_IN_EXTRA if extra.get(k) is not None}
    if "received_timestamp" not in specials and data.get("received_timestamp") is not None:
        specials["received_timestamp"] = data["received_timestamp"]  # Libervia's place
    for key in (*EXTRA_TEXT_COLUMNS, "thread", "thread_parent"):
        check_text(f"data['extra'][{key!r}]", specials.get(key), optional=True)
    check_number("received_timestamp", specials.get("received_timestamp"), optional=True)
    if "thread_parent" in specials and "thread" not in specials:
        raise ValueError("data['extra']['thread_parent'] given without 'thread'")
    rest = {k: v for k, v in extra.items() if k not in NOT_IN_EXTRA}
    for key, value in rest.items():
        check_text("data['extra'] key", key)
        check_json(f"data['extra'][{key!r}]", value)
    from_jid, to_jid = data["from"], data["to"]
    thread = None
    if "thread" in specials:
        thread = Thread(thread_id=specials["thread"], parent_id=specials.get("thread_parent"))
    return History(
        uid=data["uid"],
        origin_id=specials.get("origin_id"),
        stanza_id=specials.get("stanza_id"),
        update_uid=specials.get("update_uid"),
        source=from_jid.userhost(),
        source_res=from_jid.resource or None,
        dest=to_jid.userhost(),
        dest_res=to_jid.resource or None,
        timestamp=float(data["timestamp"]),
        received_timestamp=(
            float(specials["received_timestamp"]) if "received_timestamp" in specials else None
        ),
        type=type_,
        extra=rest or None,
        messages=[Message(message=text, language=lang or None) for lang, text in messages.items()],
        subjects=[Subject(subject=text, language=lang or None) for lang, text in subjects.items()],
        thread=thread,
    )


def check_history_filters(filters: object, limit: int | None) -> dict[str, Any]:
    """Checked and normalised ``history_get`` filters."""
    if filters is None:
        return {}
    check_type("filters", filters, dict)
    assert isinstance(filters, dict)
    checked: dict[str, Any] = {}
    for key, value in filters.items():
        name = f"filters[{key!r}]"
        if key not in FILTERS:
            raise ValueError(f"unknown history filter {key!r} (known: {', '.join(FILTERS)})")
        if key == "timestamp_start":
            # Libervia's frontends send numbers as text
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"{name} must be a number, got {value!r}") from None
            check_number(name, value)
        elif key in ("types", "not_types"):
            value = _types_filter(key, value)
        elif key == "last_stanza_id":
            if value is not True or limit != 1:
                raise ValueError(f"{name} must be True, with limit=1 (got {value!r}, {limit!r})")
        else:
            check_text(name, value)
        checked[key] = value
    return checked


# --- queries (database thread) ----------------------------------------------------


def _jid_condition(jid_: JID, dest: bool) -> ColumnElement[bool]:
    """Rows from (or to, with ``dest``) ``jid_``; a bare JID matches every resource."""
    bare, resource = (
        (History.dest, History.dest_res) if dest else (History.source, History.source_res)
    )
    if jid_.resource:
        return and_(bare == jid_.userhost(), resource == jid_.resource)
    return bare == jid_.userhost()


def _jids_conditions(
    from_jid: JID | None, to_jid: JID | None, between: bool
) -> list[ColumnElement[bool]]:
    if from_jid is None and to_jid is None:
        return []
    if not between:
        conditions = []
        if from_jid is not None:
            conditions.append(_jid_condition(from_jid, dest=False))
        if to_jid is not None:
            conditions.append(_jid_condition(to_jid, dest=True))
        return conditions
    if from_jid is None or to_jid is None:
        jid_ = from_jid or to_jid
        assert jid_ is not None
        return [or_(_jid_condition(jid_, dest=False), _jid_condition(jid_, dest=True))]
    return [
        or_(
            and_(_jid_condition(from_jid, dest=False), _jid_condition(to_jid, dest=True)),
            and_(_jid_condition(to_jid, dest=False), _jid_condition(from_jid, dest=True)),
        )
    ]


def _has_message(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The history row has a message text (in any language) matching ``condition``."""
    return exists().where(Message.history_uid == History.uid, condition)


def _filter_conditions(
    session: Session, profile_id: int, filters: dict[str, Any]
) -> list[ColumnElement[bool]] | None:
    """Conditions of the filters; None when no row can match (``before_uid`` not
    in the profile's history)."""
    conditions: list[ColumnElement[bool]] = []
    if "timestamp_start" in filters:
        conditions.append(History.timestamp >= filters["timestamp_start"])
    if "before_uid" in filters:
        reference = session.execute(
            select(*_order_keys()).where(
                History.uid == filters["before_uid"], History.profile_id == profile_id
            )
        ).one_or_none()
        if reference is None:
            return None
        conditions.append(tuple_(*_order_keys()) < tuple_(*reference))
    dialect = session.get_bind().dialect.name
    if "body" in filters:
        body = engines.has_substring(dialect, Message.message, filters["body"])
        conditions.append(_has_message(body))
    if "search" in filters:
        term = filters["search"].lower()
        conditions.append(
            or_(
                _has_message(
                    engines.lower(dialect, Message.message).contains(term, autoescape=True)
                ),
                engines.lower(dialect, History.source_res).contains(term, autoescape=True),
            )
        )
    if "types" in filters:
        conditions.append(History.type.in_(filters["types"]))
    if "not_types" in filters:
        conditions.append(History.type.not_in(filters["not_types"]))
    if "last_stanza_id" in filters:
        conditions.append(History.stanza_id.is_not(None))
    if "origin_id" in filters:
        conditions.append(History.origin_id == filters["origin_id"])
    return conditions


def _order_keys() -> tuple[Any, ...]:
    """History order: timestamp, then reception time, then uid (so ties are stable)."""
    return (
        History.timestamp,
        func.coalesce(History.received_timestamp, History.timestamp),
        History.uid,
    )


def _as_tuple(row: History) -> HistoryTuple:
    extra = dict(row.extra or {})
    for key in EXTRA_TEXT_COLUMNS:
        if getattr(row, key) is not None:
            extra[key] = getattr(row, key)
    if row.received_timestamp is not None:
        extra["received_timestamp"] = row.received_timestamp
    if row.thread is not None:
        extra["thread"] = row.thread.thread_id
        if row.thread.parent_id is not None:
            extra["thread_parent"] = row.thread.parent_id
    return (
        row.uid,
        row.timestamp,
        f"{row.source}/{row.source_res}" if row.source_res else row.source,
        f"{row.dest}/{row.dest_res}" if row.dest_res else row.dest,
        {m.language or "": m.message for m in row.messages},
        {s.language or "": s.subject for s in row.subjects},
        row.type.value,
        extra,
    )


class HistoryStore(StorageBase):
    """Message history."""

    @staticmethod
    def add_to_history_txn(session: Session, row: History) -> bool:
        conflict = add_unique(session, row)
        if conflict is not None:
            log.debug("message %r is already in history (same %s): ignored", row.uid, conflict)
        return conflict is None

    @defer.inlineCallbacks
    def add_to_history(self, data: dict[str, Any], profile: str) -> defer.Deferred[bool]:
        """Store a message; a duplicate (same uid, stanza_id or origin_id) is ignored.

        ``data``: ``uid``; ``from``, ``to`` (JIDs); ``timestamp`` (float seconds);
        ``message``, ``subject`` (``{language: text}``, ``""`` = no language);
        ``type`` (chat, error, groupchat, headline, normal, info); ``extra`` (dict
        of JSON values; its ``origin_id``, ``stanza_id``, ``update_uid``,
        ``received_timestamp``, ``thread`` and ``thread_parent`` have their own
        columns). Gives True when stored, False for a duplicate (logged).
        """
        row = check_history_data(data)
        row.profile_id = self.get_profile_id(profile)
        return (yield self.db.run(self.add_to_history_txn, row))

    @staticmethod
    def history_get_txn(
        session: Session,
        profile_id: int,
        from_jid: JID | None,
        to_jid: JID | None,
        limit: int | None,
        between: bool,
        filters: dict[str, Any],
    ) -> list[HistoryTuple]:
        conditions = _filter_conditions(session, profile_id, filters)
        if conditions is None:
            return []
        conditions += _jids_conditions(from_jid, to_jid, between)
        conditions.append(History.profile_id == profile_id)
        order = _order_keys()
        if limit is not None:
            # the newest ``limit`` history rows, whatever their number of texts
            newest = select(History.uid).where(*conditions)
            newest = newest.order_by(*(key.desc() for key in order)).limit(limit)
            conditions = [History.uid.in_(newest)]
        stmt = (
            select(History)
            .where(*conditions)
            .order_by(*order)
            .options(
                selectinload(History.messages),
                selectinload(History.subjects),
                selectinload(History.thread),
            )
        )
        return [_as_tuple(row) for row in session.scalars(stmt)]

    @defer.inlineCallbacks
    def history_get(
        self,
        from_jid: JID | None,
        to_jid: JID | None,
        limit: int | None = None,
        between: bool = True,
        filters: dict[str, Any] | None = None,
        profile: str | None = None,
    ) -> defer.Deferred[list[HistoryTuple]]:
        """The newest ``limit`` messages (None = all, 0 = none), oldest first.

        Each is ``(uid, timestamp, from, to, message, subject, type, extra)`` with
        full JIDs as text. ``from_jid``/``to_jid``: None = anyone; a bare JID
        matches every resource; ``between`` matches both directions. ``filters``:
        ``timestamp_start``, ``before_uid``, ``body`` (substring), ``search``
        (case-insensitive, in every language and the sender's resource), ``types``,
        ``not_types`` (lists or space-separated text), ``last_stanza_id`` (True,
        with ``limit=1``), ``origin_id``.
        """
        check_jid("from_jid", from_jid, optional=True)
        check_jid("to_jid", to_jid, optional=True)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise TypeError(f"limit must be an int or None, got {limit!r}")
            if limit < 0:
                raise ValueError(f"limit must not be negative, got {limit!r}")
        check_type("between", between, bool)
        checked_filters = check_history_filters(filters, limit)
        profile_id = self.get_profile_id(profile)  # type: ignore[arg-type]
        if limit == 0:
            return []
        return (
            yield self.db.run(
                self.history_get_txn, profile_id, from_jid, to_jid, limit, between, checked_filters
            )
        )
