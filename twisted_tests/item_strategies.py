"""Hypothesis strategies of domish ``<item/>`` trees, as callers build them.

Atom entries (text constructs of type ``html``, ``text`` and ``xhtml``; the ``id``,
``uri``, ``published`` and ``updated`` elements whose text is not indexed), XHTML
bodies, other namespaces (declared on a child, inherited by ``addElement(name)``),
attributes (``title``, ``label``, ``alt``, ``term``, ``type`` and others), text with
the characters XML escapes and non-ASCII letters, combining marks and separators,
adjacent text children, ``SerializedXML`` children, and now and then what makes
domish's own serialiser necessary (a namespace prefix, a qualified attribute).
"""

from __future__ import annotations

from hypothesis import strategies as st
from twisted.words.xish import domish

PUBSUB = "http://jabber.org/protocol/pubsub"
ATOM = "http://www.w3.org/2005/Atom"
XHTML = "http://www.w3.org/1999/xhtml"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NAMESPACES = [ATOM, ATOM, XHTML, PUBSUB, "urn:other", ""]
NAMES = ["entry", "title", "content", "summary", "id", "uri", "published", "updated",
         "author", "name", "category", "link", "p", "div", "b", "img", "é"]  # fmt: skip
ATTRIBUTES = ["title", "label", "alt", "term", "type", "href", "rel", "src", "xmlns:x"]
TYPES = ["html", "html", "text", "xhtml", "HTML"]
# escaped characters, ASCII punctuation and white space, letters of other scripts,
# combining marks (also after '<' and '>': NFC composes them), case folding that
# changes length, non-ASCII separators
_ALPHABET = list("&<>'\" \t\n_-.,;aZ09#x") + list("éE\u0301\u0338ßKİΩ٣²\u00a0\u2028«漢\u200b")
HTML = [
    "<b title='Bold move'>Release</b> &amp; <a href='https://x.org'>notes</a>",
    "a &lt;tag&gt; <img alt='a picture' src='p.png'/> &#233;t&eacute; <br>",
    "<p>unclosed <i>text", "plain & simple < 3", "",
]  # fmt: skip
SERIALIZED = ["<b>raw</b>", "<i title='t'>x &amp; y</i>", "text only"]

texts = st.one_of(
    st.text(alphabet=st.sampled_from(_ALPHABET), max_size=30),
    st.text(max_size=8).filter(lambda s: "\x00" not in s),
    st.sampled_from(HTML),
)
attribute_values = st.one_of(texts, st.sampled_from(TYPES))


@st.composite
def _element(draw: st.DrawFn, parent: domish.Element, depth: int) -> None:
    """A child element of ``parent`` (and its own children)."""
    name = draw(st.sampled_from(NAMES))
    if draw(st.booleans()):
        child = parent.addElement(name)  # in the parent's default namespace
    else:
        child = parent.addElement((draw(st.sampled_from(NAMESPACES)), name))
    for key in draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=3, unique=True)):
        child[key] = draw(st.sampled_from(TYPES) if key == "type" else attribute_values)
    rare = draw(st.integers(0, 39))
    if rare == 0:
        child[(XML_NS, "lang")] = "fr"  # qualified: toXml() writes it
    elif rare == 1:
        child.localPrefixes["x"] = "urn:x"  # a prefix: toXml() writes it
    _children(draw, child, depth + 1)


def _children(draw: st.DrawFn, element: domish.Element, depth: int) -> None:
    """Children of ``element``: text, elements, adjacent text, ``SerializedXML``."""
    for _ in range(draw(st.integers(0, 4 if depth < 3 else 1))):
        kind = draw(st.integers(0, 9))
        if kind <= 3:
            element.addContent(draw(texts))
        elif kind <= 7 and depth < 3:
            draw(_element(element, depth))
        elif kind == 8:
            element.children.append(draw(texts))  # a text child right after another
        else:
            element.addChild(domish.SerializedXML(draw(st.sampled_from(SERIALIZED))))


@st.composite
def items(draw: st.DrawFn) -> domish.Element:
    """An ``<item/>`` with an id and a tree of children (mostly an Atom entry)."""
    item = domish.Element((PUBSUB, "item"))
    item["id"] = draw(st.sampled_from(["1", "a'b", "é&<>"]))
    if draw(st.booleans()):
        entry = item.addElement((ATOM, "entry"))
        for name in draw(st.lists(st.sampled_from(["title", "summary", "content"]), max_size=3)):
            construct = entry.addElement(name)
            construct["type"] = draw(st.sampled_from(TYPES))
            _children(draw, construct, 2)
        _children(draw, entry, 1)
    else:
        _children(draw, item, 0)
    return item
