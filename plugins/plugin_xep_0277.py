"""XEP-0277 (Microblogging over XMPP): the microblog analyser of the pubsub cache.

The plugin registers an analyser with ``PUBSUB_CACHE`` (when that plugin is loaded):
nodes named ``urn:xmpp:microblog:0…``, or whose items hold Atom entries, are blogs,
synchronised in the cache, and each item is parsed by :func:`parse_atom_item` into a
JSON-serialisable dict. Missing or malformed fields are left out, never raised.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

log = logging.getLogger(__name__)

NS_MICROBLOG = "urn:xmpp:microblog:0"
NS_ATOM = "http://www.w3.org/2005/Atom"
NS_XHTML = "http://www.w3.org/1999/xhtml"
ANALYSER_NAME = "XEP-0277"

PLUGIN_INFO = {
    "name": "Microblogging over XMPP",
    "import_name": "XEP-0277",
    "type": "XEP",
    "modes": ["client", "component"],
    "dependencies": ["XEP-0060"],
    "recommendations": ["PUBSUB_CACHE"],
    "main": "XEP_0277",
    "handler": "no",
    "description": "Microblogging (XEP-0277): blog nodes are cached and their Atom entries parsed",
}


def _text(element: domish.Element) -> str:
    """All the character data inside ``element`` (children included), in order."""
    parts: list[str] = []
    stack: list[Any] = [element]
    while stack:
        node = stack.pop()
        if isinstance(node, domish.Element):
            stack.extend(reversed(node.children))
        elif type(node) is str:  # SerializedXML (raw markup) is not text
            parts.append(node)
    return "".join(parts)


def _child(entry: domish.Element, name: str, type_: str | None = None) -> domish.Element | None:
    """First Atom child ``name`` of ``entry`` (with ``type`` attribute ``type_`` if given)."""
    for child in entry.elements(NS_ATOM, name):
        if type_ is None or (child.getAttribute("type") or "text") == type_:
            return child
    return None


def _child_text(entry: domish.Element, name: str) -> str | None:
    """Stripped text of the first Atom child ``name`` (None when missing or empty)."""
    child = _child(entry, name)
    if child is None:
        return None
    return _text(child).strip() or None


def parse_date(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 date (XEP-0082); None if malformed.

    A date without an offset is taken as UTC.
    """
    if not value:
        return None
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        date = datetime.fromisoformat(text)
    except ValueError:
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    try:
        return date.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _author(entry: domish.Element, data: dict[str, Any]) -> None:
    author = _child(entry, "author")
    if author is None:
        return
    name = _child_text(author, "name")
    uri = _child_text(author, "uri")
    email = _child_text(author, "email")
    if name is not None:
        data["author"] = name
    if uri is not None:
        data["author_uri"] = uri
        if uri.startswith("xmpp:"):
            try:
                data["author_jid"] = jid.JID(uri[5:].split("?", 1)[0]).full()
            except (jid.InvalidFormat, ValueError):
                pass
    if email is not None:
        data["author_email"] = email


def _content(entry: domish.Element, data: dict[str, Any], name: str) -> None:
    """``name`` (text) and ``name_xhtml`` (XML) from the Atom text construct ``name``."""
    plain = _child(entry, name, "text")
    if plain is None:
        plain = _child(entry, name, "html")
    xhtml = _child(entry, name, "xhtml")
    text = _text(plain).strip() if plain is not None else ""
    if xhtml is not None:
        div = next(xhtml.elements(NS_XHTML, "div"), None)
        if div is not None:
            data[f"{name}_xhtml"] = div.toXml()
        text = text or _text(xhtml).strip()
    if text:
        data[name] = text


def _links(entry: domish.Element) -> list[dict[str, str]]:
    links = []
    for link in entry.elements(NS_ATOM, "link"):
        href = link.getAttribute("href")
        if not href:
            continue
        data = {"href": href, "rel": link.getAttribute("rel") or "alternate"}
        for attr in ("type", "title", "hreflang", "length"):
            if link.getAttribute(attr):
                data[attr] = link.getAttribute(attr)
        links.append(data)
    return links


def parse_atom_item(item_elt: domish.Element) -> dict[str, Any]:
    """The microblog data of an ``<item/>`` holding an Atom ``<entry/>``.

    Keys: ``id`` (item id), ``atom_id``, ``title``, ``title_xhtml``, ``content``,
    ``content_xhtml``, ``summary``, ``author``, ``author_uri``, ``author_jid``,
    ``author_email``, ``published``, ``updated`` (seconds since the epoch, UTC),
    ``language``, ``tags`` (list), ``links`` (list of dicts with ``href``, ``rel``…).
    Keys are left out when the field is missing or malformed; ``tags`` and ``links``
    are always there. An item without an Atom entry gives ``{"id", "tags", "links"}``.
    """
    data: dict[str, Any] = {"tags": [], "links": []}
    if not isinstance(item_elt, domish.Element):
        raise TypeError(f"item_elt must be a domish.Element, got {type(item_elt).__name__}")
    if item_elt.getAttribute("id"):
        data["id"] = item_elt["id"]
    entry = next(item_elt.elements(NS_ATOM, "entry"), None)
    if entry is None:
        return data
    atom_id = _child_text(entry, "id")
    if atom_id is not None:
        data["atom_id"] = atom_id
    for name in ("title", "content", "summary"):
        _content(entry, data, name)
    _author(entry, data)
    for name in ("published", "updated"):
        timestamp = parse_date(_child_text(entry, name))
        if timestamp is not None:
            data[name] = timestamp
    if "published" not in data and "updated" in data:
        data["published"] = data["updated"]
    language = entry.getAttribute(("http://www.w3.org/XML/1998/namespace", "lang"))
    if language:
        data["language"] = language
    for category in entry.elements(NS_ATOM, "category"):
        term = (category.getAttribute("term") or "").strip()
        if term and term not in data["tags"]:
            data["tags"].append(term)
    data["links"] = _links(entry)
    return data


class XEP_0277:
    """Microblogging: registers the blog analyser with the pubsub cache."""

    namespace = NS_MICROBLOG

    def __init__(self, host: Any) -> None:
        self.host = host
        cache = host.plugins.get("PUBSUB_CACHE")
        if cache is None:
            log.info("PUBSUB_CACHE is not loaded: microblog nodes will not be cached")
            return
        cache.register_analyser(
            {
                "name": ANALYSER_NAME,
                "node": NS_MICROBLOG,
                "namespace": NS_ATOM,
                "type": "blog",
                "to_sync": True,
                "parser": self.parse_item,
                # searches of blogs order by these (seconds since the epoch), newest first
                "sort_keys": [
                    {"path": ["published"], "type": "number", "direction": "desc"},
                    {"path": ["updated"], "type": "number", "direction": "desc"},
                ],
            }
        )

    def parse_item(
        self,
        client: Any,
        item_elt: domish.Element,
        service: jid.JID | None,
        node: str | None,
    ) -> dict[str, Any]:
        """Analyser parser: :func:`parse_atom_item` (signature of the cache's parsers)."""
        return parse_atom_item(item_elt)
