"""Full-text search of cached pubsub items: the one place of its dialect differences.

What is indexed: the *text content* of an item, never its markup. :func:`item_text`
walks the ``<item/>`` element and keeps

- the character data of every element (XHTML bodies included), except the text of
  Atom elements that hold identifiers or timestamps (``id``, ``uri``, ``published``,
  ``updated``: every microblog item has them, so they would make words such as
  ``xmpp`` or ``2024`` match everything);
- the values of the attributes that carry human-readable content: ``title``,
  ``label``, ``alt`` and ``term`` (Atom categories, i.e. tags). Other attribute
  values (``href``, ``rel``, ``type``, ids, namespaces) are markup or addresses;
- for Atom text constructs of ``type="html"``, the text of the escaped HTML, tags
  removed.

The words are normalised in Python (NFC, case-folded, split on anything that is not a
letter or a digit) by the storage when it caches an item, and kept *out of* the hot
``pubsub_items`` table (revision 0007: an item row is its XML and parsed JSON only, so
that scans of items read half the pages). Both engines index them with a plain
tokeniser and no stemming, so they agree on what matches:

- SQLite: the FTS5 table ``pubsub_items_fts`` (column ``fts_text``, ``unicode61``,
  diacritics kept), one row per item, its rowid the item's id, with the words as
  *external content* in the plain table ``pubsub_items_fts_words`` (revision 0009;
  0007's FTS5 table kept them as its own content). The writer runs
  :func:`sqlite_write` (the old entry deleted with the old words, the new one
  inserted, the words stored); the trigger ``pubsub_items_fts_delete`` removes both
  with their item (also on cascades). An external-content delete is handed the words
  (FTS5's ``'delete'`` command) where an own-content one looks each row up and deletes
  it through the virtual table: the purge deletes the entries of all its items with
  one ``INSERT … SELECT`` and their words with one ``DELETE``
  (:mod:`sat_storage.storage.item_purge`);
- PostgreSQL: the ``tsvector`` column ``pubsub_items.fts_vector`` (no text column),
  which the writer sets from the words (:data:`POSTGRESQL_VECTOR`), with the GIN
  index ``pubsub_items_fts``.

Every item has its index entry (an empty one when it has no words), so that ranks
(which depend on the number of indexed rows) are those of one row per item. A writer
of ``pubsub_items`` other than ``cache_pubsub_items`` must write the index entry too
(the Libervia adoption, the port and migration 0007 do).

Queries use a small syntax parsed here (:func:`parse_query`) and compiled to each
engine's syntax from the normalised words only, then *bound* as a parameter:

- ``word`` (every word must match: implicit AND; ``AND`` may also be written),
- ``"a phrase"`` (the words in this order, adjacent),
- ``word*`` / ``"a phr"*`` (prefix of the last word),
- ``a OR b`` (either; binds tighter than AND),
- ``-word`` / ``-"a phrase"`` (must not match; at least one term must be positive).

A word that normalises to several words (``e-mail``) is searched as a phrase; one
without letters or digits (``&``) is ignored. Anything else (unbalanced quote,
dangling ``OR``/``AND``, ``*`` inside a word, no positive term) raises ``ValueError``
naming the query. Rank: lower is
more relevant on both engines (FTS5 ``bm25``, PostgreSQL ``-ts_rank``), so
ascending rank order gives the best matches first.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from twisted.words.xish import domish

from sat_storage import engines, migration
from sat_storage.models import PubsubItem
from sat_storage.xml_tools import TextRules, parse_xml, to_xml_text

__all__ = [
    "DELETE_TRIGGER",
    "FTS5_TABLE",
    "FtsQuery",
    "POSTGRESQL_VECTOR",
    "SQLITE_LEAF_SIZE",
    "TEXT_COLUMN",
    "UNMAPPED_PREFIXES",
    "WORDS_TABLE",
    "create_statements",
    "drop_statements",
    "ITEM_TEXT_RULES",
    "item_text",
    "item_xml_text",
    "match",
    "normalise",
    "parse_query",
    "settings_statements",
    "sqlite_delete_statements",
    "sqlite_write",
    "words_text",
]

TEXT_COLUMN = "fts_text"  # the column of the SQLite FTS5 table
TABLE = "pubsub_items_fts"  # SQLite FTS5 table; PostgreSQL GIN index
VECTOR_COLUMN = "fts_vector"  # PostgreSQL tsvector column of pubsub_items
#: SQLite: the table of the words (the FTS5 table's external content), one row per item
WORDS_TABLE = f"{TABLE}_words"
#: SQLite: the trigger removing an item's entry and words with the item
DELETE_TRIGGER = f"{TABLE}_delete"
# Names of the structures above, which the models do not map (autogenerate skips them).
UNMAPPED_PREFIXES = (TABLE, VECTOR_COLUMN)
migration.UNMAPPED_TABLE_PREFIXES.extend(
    p for p in UNMAPPED_PREFIXES if p not in migration.UNMAPPED_TABLE_PREFIXES
)

ATOM_NS = "http://www.w3.org/2005/Atom"
TEXT_ATTRIBUTES = frozenset({"title", "label", "alt", "term"})
SKIPPED_TEXT = frozenset({(ATOM_NS, "id"), (ATOM_NS, "uri"), (ATOM_NS, "published"),
                          (ATOM_NS, "updated")})  # fmt: skip
_SKIPPED_URIS = frozenset(uri for uri, _name in SKIPPED_TEXT)
_WORD = re.compile(r"[^\W_]+")
# ASCII characters that _WORD does not match (all but letters and digits) -> a space
_ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
# Bounds of what is indexed: PostgreSQL refuses lexemes over 2 KB and tsvectors over
# 1 MB (an item's cache write would fail), so both engines index the same bounded text.
MAX_WORD = 200
MAX_TEXT = 65_536

# --- text extraction ---------------------------------------------------------------


def normalise(text: str) -> list[str]:
    """The searchable words of ``text``: NFC, case-folded, letters and digits only.

    The words of ``_WORD.findall(NFC(text).casefold())``, found faster: ASCII
    punctuation becomes spaces, the text is split there and at white space, and only a
    piece that is not all letters and digits (``str.isalnum``: the same classes as
    ``_WORD``) goes through the pattern; ASCII text is only lower-cased (its NFC form
    and case folding).
    """
    if text.isascii():
        return text.lower().translate(_ASCII_SEPARATORS).split()
    words: list[str] = []
    append, extend = words.append, words.extend
    for piece in unicodedata.normalize("NFC", text).casefold().translate(_ASCII_SEPARATORS).split():
        if piece.isalnum():
            append(piece)
        else:
            extend(_WORD.findall(piece))
    return words


class _HTMLText(HTMLParser):
    """Text and content attributes of an HTML fragment (escaped HTML in Atom)."""

    def __init__(self, out: list[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.out = out

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.extend(v for k, v in attrs if k in TEXT_ATTRIBUTES and v)

    def handle_data(self, data: str) -> None:
        self.out.append(data)


def _collect(element: domish.Element, out: list[str]) -> None:
    append = out.append
    attributes = element.attributes
    if attributes:
        for key, value in attributes.items():
            if key in TEXT_ATTRIBUTES:  # unqualified attributes only (qualified are tuples)
                append(value)
    uri = element.uri
    html = False
    if uri == ATOM_NS:
        if (uri, element.name) in SKIPPED_TEXT:
            return
        html = attributes.get("type") == "html"
    elif uri in _SKIPPED_URIS and (uri, element.name) in SKIPPED_TEXT:
        return
    for child in element.children:
        if child.__class__ is str and not html:
            append(child)
        elif isinstance(child, domish.Element):
            _collect(child, out)
        elif html:
            parser = _HTMLText(out)
            parser.feed(str(child))
            parser.close()
        else:
            append(str(child))


# ASCII bytes -> lower case, or a space for what _WORD does not match (_ASCII_SEPARATORS)
_ASCII_WORD_BYTES = bytes(
    ord(chr(c).lower()) if c < 128 and chr(c).isalnum() else 32 for c in range(256)
)
# a space stays, any other byte -> "x": a word over MAX_WORD is then a run of "x"
_ASCII_WORD_RUNS = bytes(32 if c == 32 else 120 for c in range(256))
_LONG_WORD = b"x" * (MAX_WORD + 1)


def words_text(text: str) -> str:
    """The words of ``text`` (:func:`normalise`) of at most ``MAX_WORD`` characters,
    space-separated.

    ASCII text takes a faster way through bytes, with no object per word: one
    ``bytes.translate`` lower-cases and blanks the separators, runs of spaces are
    halved until none is left (``bytes.replace``: a pass or two for prose), and only
    text holding a word over ``MAX_WORD`` (found as a run of ``x`` by
    ``bytes.find`` after a second translate) is split: the same words.
    """
    if text.isascii():
        data = text.encode("ascii").translate(_ASCII_WORD_BYTES)
        if len(data) > MAX_WORD and data.translate(_ASCII_WORD_RUNS).find(_LONG_WORD) >= 0:
            return b" ".join(w for w in data.split() if len(w) <= MAX_WORD).decode("ascii")
        while b"  " in data:
            data = data.replace(b"  ", b" ")
        return data.strip().decode("ascii")
    words = normalise(text)
    if words and max(map(len, words)) > MAX_WORD:
        words = [w for w in words if len(w) <= MAX_WORD]
    return " ".join(words)


def _indexed(parts: list[str]) -> str:
    """The indexed text of an item's text ``parts`` (:func:`item_text`)."""
    text = words_text(" ".join(parts))
    if len(text) > MAX_TEXT:
        text = text[: text.rfind(" ", 0, MAX_TEXT + 1)]
    return text


def item_text(item: domish.Element | str) -> str:
    """The indexed text of an item (``<item/>`` element or its XML text).

    Space-separated normalised words (words longer than ``MAX_WORD`` left out, cut
    after ``MAX_TEXT`` characters); ``""`` when there are none or the XML text is
    malformed.
    """
    if isinstance(item, str):
        try:
            item = parse_xml(item)
        except ValueError:
            return ""
    parts: list[str] = []
    _collect(item, parts)
    return _indexed(parts)


#: the text of an item as :func:`item_text` collects it, for :func:`xml_tools.to_xml_text`
ITEM_TEXT_RULES = TextRules(
    attributes=TEXT_ATTRIBUTES,
    skipped={uri: frozenset(n for u, n in SKIPPED_TEXT if u == uri) for uri in _SKIPPED_URIS},
    markup=(ATOM_NS, "type", "html"),
    collect=_collect,
)


def item_xml_text(item: domish.Element) -> tuple[str, str]:
    """``(to_xml(item), item_text(item))`` in one walk of the element
    (:func:`xml_tools.to_xml_text`); the errors of :func:`xml_tools.to_xml`."""
    xml, parts = to_xml_text(item, ITEM_TEXT_RULES)
    return xml, _indexed(parts)


# --- DDL (shared by create_all and migration 0007) ---------------------------------

_SQLITE_CREATE = (
    f"CREATE TABLE {WORDS_TABLE} (id INTEGER PRIMARY KEY, {TEXT_COLUMN} TEXT NOT NULL)",
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5({TEXT_COLUMN}, content='{WORDS_TABLE}', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER {DELETE_TRIGGER} AFTER DELETE ON pubsub_items BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, {TEXT_COLUMN}) SELECT 'delete', id, {TEXT_COLUMN} "
    f"FROM {WORDS_TABLE} WHERE id = old.id; DELETE FROM {WORDS_TABLE} WHERE id = old.id; END",
)
_SQLITE_DROP = (
    f"DROP TRIGGER IF EXISTS {DELETE_TRIGGER}",
    f"DROP TABLE IF EXISTS {TABLE}",
    f"DROP TABLE IF EXISTS {WORDS_TABLE}",
)
_POSTGRESQL_CREATE = (
    f"ALTER TABLE pubsub_items ADD COLUMN {VECTOR_COLUMN} tsvector",
    f"CREATE INDEX {TABLE} ON pubsub_items USING gin ({VECTOR_COLUMN})",
)
_POSTGRESQL_DROP = (
    f"DROP INDEX IF EXISTS {TABLE}",
    f"ALTER TABLE pubsub_items DROP COLUMN IF EXISTS {VECTOR_COLUMN}",
)


def sqlite_delete_statements(ids: str) -> tuple[str, str]:
    """SQLite: the statements deleting the index entries, then the words, of the items
    whose ids the subquery ``ids`` (SQL text of the caller's, never a user's value)
    selects: set-based, what the delete trigger does row by row."""
    return (
        f"INSERT INTO {TABLE}({TABLE}, rowid, {TEXT_COLUMN}) SELECT 'delete', id, "
        f"{TEXT_COLUMN} FROM {WORDS_TABLE} WHERE id IN ({ids})",
        f"DELETE FROM {WORDS_TABLE} WHERE id IN ({ids})",
    )


# SQLite: the index entries of written items, by :func:`sqlite_write`
_SQLITE_DELETE_OLD = sqlite_delete_statements("SELECT value FROM json_each(?)")[0]  # ids: JSON
_SQLITE_INSERT = f"INSERT INTO {TABLE}(rowid, {TEXT_COLUMN}) VALUES (?, ?)"
_SQLITE_STORE = f"INSERT OR REPLACE INTO {WORDS_TABLE}(id, {TEXT_COLUMN}) VALUES (?, ?)"


def sqlite_write(execute: Callable[[str, Any], object], entries: Sequence[tuple[int, str]]) -> None:
    """SQLite: write the index entries of items, ``entries`` their (id, words) pairs
    (the items written: new, or changed and indexed before).

    ``execute(sql, params)`` runs a statement, once per parameter set when ``params``
    is a list (:meth:`sat_storage.driver_write.DriverSQL.execute`). The entries of the
    items' old words (if any) are deleted by one statement, then the new ones are
    inserted and the words stored, by one-row statements run for every entry: an
    ``INSERT … SELECT`` into FTS5 run once per row (or a trigger) would flush the
    pending entries at each row (a savepoint), where these keep them in memory until
    the commit.
    """
    if not entries:
        return
    execute(_SQLITE_DELETE_OLD, (json.dumps([item_id for item_id, _words in entries]),))
    rows = list(entries)
    execute(_SQLITE_INSERT, rows)
    execute(_SQLITE_STORE, rows)


#: PostgreSQL: the vector of words given as the text ``{}`` (an SQL expression)
POSTGRESQL_VECTOR = "to_tsvector('simple'::regconfig, coalesce({}, ''))"


def create_statements(dialect: str) -> tuple[str, ...]:
    """DDL creating the full-text structures on ``pubsub_items`` (which must exist)."""
    return {"sqlite": _SQLITE_CREATE, "postgresql": _POSTGRESQL_CREATE}[dialect]


#: SQLite: FTS5's leaf pages (``pgsz``, 4,050 bytes by default: one leaf a 4 KiB page)
#: as large as one page of a file of larger pages, less the room of its cell (revision
#: 0010): half the leaves to write and merge at 8 KiB pages (a purge's delete entries
#: and the incremental merge its flush runs: measured 1-2 ms less for 1,000 items, no
#: slower searches); files of 4 KiB pages (SQLite's default, Libervia's) keep the
#: default. Read from the file itself (the page size is fixed by then).
SQLITE_LEAF_SIZE = (
    f"INSERT INTO {TABLE}({TABLE}, rank) SELECT 'pgsz', min(page_size - 92, 65536) "
    "FROM pragma_page_size WHERE page_size >= 8192"
)


def settings_statements(dialect: str) -> tuple[str, ...]:
    """The settings of the full-text index of a new database (SQLite:
    :data:`SQLITE_LEAF_SIZE`; PostgreSQL: none)."""
    return (SQLITE_LEAF_SIZE,) if dialect == "sqlite" else ()


def drop_statements(dialect: str) -> tuple[str, ...]:
    """DDL dropping the full-text structures (``pubsub_items`` is left as it is)."""
    return {"sqlite": _SQLITE_DROP, "postgresql": _POSTGRESQL_DROP}[dialect]


# A new database is made by create_all (then stamped at head): create the structures
# there too. Dropping pubsub_items drops its trigger and column, not the SQLite tables.
event.listen(PubsubItem.__table__, "after_create", engines.ddl_listener(create_statements))
event.listen(PubsubItem.__table__, "after_create", engines.ddl_listener(settings_statements))
event.listen(
    PubsubItem.__table__,
    "after_drop",
    engines.ddl_listener(lambda dialect: _SQLITE_DROP[1:] if dialect == "sqlite" else ()),
)

# --- queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    words: tuple[str, ...]  # one word, or a phrase
    prefix: bool


@dataclass(frozen=True)
class FtsQuery:
    """A parsed query: every group must match (a group: any of its terms), no excluded."""

    text: str
    groups: tuple[tuple[_Term, ...], ...]
    excluded: tuple[_Term, ...]

    def fts5(self) -> str:
        """The query in SQLite FTS5 syntax (words quoted: no operator can sneak in)."""

        def term(t: _Term) -> str:
            return '"' + " ".join(t.words) + '"' + ("*" if t.prefix else "")

        positive = " AND ".join("(" + " OR ".join(map(term, g)) + ")" for g in self.groups)
        if not self.excluded:
            return positive
        return f"({positive}) NOT ({' OR '.join(map(term, self.excluded))})"

    def tsquery(self) -> str:
        """The query in PostgreSQL ``to_tsquery`` syntax."""

        def term(t: _Term) -> str:
            words = [f"'{w}'" for w in t.words]
            if t.prefix:
                words[-1] += ":*"
            return "(" + " <-> ".join(words) + ")"

        clauses = ["(" + " | ".join(map(term, g)) + ")" for g in self.groups]
        clauses += ["!" + term(t) for t in self.excluded]
        return " & ".join(clauses)


_TOKEN = re.compile(r'\s*(?:(-?)"([^"]*)("?)(\*?)|(\S+))')


def parse_query(text: object) -> FtsQuery:
    """Parse a user's full-text query (syntax in the module docstring)."""
    if not isinstance(text, str):
        raise ValueError(f"fts must be a str, got {type(text).__name__}: {text!r}")

    def fail(reason: str) -> ValueError:
        return ValueError(f"invalid fts query {text!r}: {reason}")

    groups: list[list[_Term]] = []
    excluded: list[_Term] = []
    connector: str | None = None  # "OR"/"AND" waiting for its right-hand term
    last_negated = False
    for m in _TOKEN.finditer(text.rstrip()):
        negated, phrase, closed, star, bare = m.groups()
        if bare in ("OR", "AND"):
            if connector or not (groups or excluded) or (bare == "OR" and last_negated):
                raise fail(f"{bare} must stand between two terms that are not negated")
            connector = bare
            continue
        if bare is not None:
            negated, word = ("-", bare[1:]) if bare.startswith("-") else ("", bare)
            star = "*" if word.endswith("*") else ""
            word = word[: len(word) - len(star)]
            if "*" in word:
                raise fail(f"'*' may only end a word: {bare!r}")
            if '"' in word:
                raise fail(f"misplaced double quote in {bare!r}")
            label = bare
        else:
            if not closed:
                raise fail("unbalanced double quote")
            word, label = phrase, m.group(0).strip()
        words = tuple(normalise(word))
        if not words:  # punctuation only ("&", "--"): nothing to search
            continue
        if max(map(len, words)) > MAX_WORD:
            raise fail(f"words longer than {MAX_WORD} characters are not indexed: {label!r}")
        term = _Term(words, bool(star))
        if negated:
            if connector == "OR":
                raise fail(f"a negated term cannot be part of OR: {label!r}")
            excluded.append(term)
        elif connector == "OR":
            groups[-1].append(term)
        else:
            groups.append([term])
        connector, last_negated = None, bool(negated)
    if connector:
        raise fail(f"{connector} must stand between two terms that are not negated")
    if not groups:
        raise fail("it needs at least one term that is not negated")
    return FtsQuery(text, tuple(tuple(g) for g in groups), tuple(excluded))


#: SQLite: the FTS5 table (its rowid is the item's id)
FTS5_TABLE = sa.table(TABLE, sa.column("rowid", sa.Integer), sa.column("rank"), sa.column(TABLE))
_fts5 = FTS5_TABLE
_vector = sa.literal_column(f"pubsub_items.{VECTOR_COLUMN}", TSVECTOR)


def match(
    stmt: sa.Select[Any], query: FtsQuery, dialect: str
) -> tuple[sa.Select[Any], sa.ColumnElement[Any]]:
    """``stmt`` (selecting from ``pubsub_items``) narrowed to ``query``, and the rank.

    The rank is lower for better matches; the query text is a bound parameter.
    """
    if dialect == "sqlite":
        stmt = stmt.join(_fts5, _fts5.c.rowid == PubsubItem.id).where(
            _fts5.c[TABLE].op("MATCH")(query.fts5())
        )
        return stmt, _fts5.c.rank
    tsquery = sa.func.to_tsquery(sa.cast("simple", REGCONFIG), query.tsquery())
    stmt = stmt.where(_vector.op("@@")(tsquery))
    # normalisation 1: divided by 1 + log(length), as bm25 favours shorter items
    return stmt, -sa.func.ts_rank(_vector, tsquery, 1)
