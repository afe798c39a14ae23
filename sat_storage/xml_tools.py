"""XML text <-> ``twisted.words.xish.domish.Element`` for stored pubsub items.

:func:`to_xml` gives the same text as ``Element.toXml()`` about twice as fast for
the usual shape of items (default namespaces only, unqualified attributes), and
falls back to ``toXml()`` for anything else (namespace prefixes, qualified
attributes). :func:`parse_xml` reads one element back, refusing malformed text.
"""

from __future__ import annotations

from twisted.words.xish import domish

__all__ = ["parse_xml", "to_xml"]


class _NeedsPrefixes(Exception):
    """The element uses namespace prefixes: let domish serialise it."""


def _escape_text(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    text = _escape_text(text)
    if "'" in text:
        text = text.replace("'", "&apos;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    return text


def _serialise(elem: domish.Element, parent_default: str, out: list[str]) -> None:
    """Append the XML of ``elem`` to ``out`` as domish would write it."""
    if elem.localPrefixes:
        raise _NeedsPrefixes
    default = elem.defaultUri
    if default is None:
        default = parent_default
    uri = elem.uri
    if (uri is not None and uri != default) or uri in domish.G_PREFIXES:
        raise _NeedsPrefixes
    name = elem.name
    append = out.append
    if default != parent_default:
        append(f"<{name} xmlns='{default}'")
    else:
        append("<" + name)
    for key, value in elem.attributes.items():
        if key.__class__ is tuple:
            raise _NeedsPrefixes
        append(f" {key}='{_escape_attribute(value)}'")
    children = elem.children
    if not children:
        append("/>")
        return
    append(">")
    for child in children:
        if child.__class__ is str:
            append(_escape_text(child))
        elif isinstance(child, domish.SerializedXML):
            append(child)
        elif isinstance(child, str):
            append(_escape_text(child))
        else:
            _serialise(child, default, out)
    append(f"</{name}>")


def to_xml(element: domish.Element) -> str:
    """XML text of ``element``, identical to ``element.toXml()``."""
    out: list[str] = []
    try:
        _serialise(element, "", out)
    except _NeedsPrefixes:
        return element.toXml()
    return "".join(out)


def parse_xml(text: str) -> domish.Element:
    """Parse one XML element (with its children); ``ValueError`` if malformed."""
    if not isinstance(text, str):
        raise TypeError(f"XML text must be str, got {type(text).__name__}")
    stream = domish.ExpatElementStream()
    roots: list[domish.Element] = []
    finished: list[domish.Element] = []

    def document_start(root: domish.Element) -> None:
        roots.append(root)
        stream.currElem = root  # children and text then attach to the root itself

    stream.DocumentStartEvent = document_start
    stream.ElementEvent = finished.append
    stream.DocumentEndEvent = lambda: None
    try:
        stream.parse(text.encode("utf-8"))
        stream.parser.Parse(b"", True)  # end of input: an unclosed element is an error
    except (domish.ParserError, stream.error) as e:
        raise ValueError(f"malformed XML ({e}): {text[:80]!r}") from None
    if not finished:
        raise ValueError(f"no XML element in {text[:80]!r}")
    return finished[0]
