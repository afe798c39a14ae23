"""XML text <-> domish elements (sat_storage.xml_tools) and the XmlElement column type."""

from __future__ import annotations

import random

from hypothesis import given, settings
from sqlalchemy.dialects import postgresql, sqlite
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from sat_storage.models import XmlElement
from sat_storage.xml_tools import (
    MAX_ELEMENTS,
    TextRules,
    copy_element,
    parse_xml,
    parse_xml_stream,
    to_xml,
    to_xml_text,
)
from twisted_tests.item_strategies import items

SAMPLES = [
    "<a/>",
    "<a>text</a>",
    "<item xmlns='http://jabber.org/protocol/pubsub' id='1'>"
    "<entry xmlns='http://www.w3.org/2005/Atom'>a &amp; b &lt;c&gt; <b k='&apos;&quot;'/>"
    "tail</entry></item>",
    "<a xmlns:x='urn:x'><x:b x:c='1'>t</x:b></a>",
    "<a xml:lang='fr'>été ✓</a>",
]
# what the reference parser must be matched on: namespaces declared, reset and
# prefixed, qualified attributes, entities, CDATA, comments, processing instructions
TRICKY = [
    "<a xmlns='urn:x'><b xmlns=''><c/></b><d>t</d></a>",
    "<a xmlns='urn:x' xmlns:p='urn:p'><p:b p:k='1' k='2'><c xmlns:q='urn:q'/></p:b></a>",
    "<p:a xmlns:p='urn:p'><b/><p:c/></p:a>",
    "<a>x<![CDATA[<not a tag> & ]]>y<!-- c -->z<?pi data?>w</a>",
    "<a k='&lt;&amp;&#x263A;'>&#233;&gt;</a>",
    "<a>\n  <b>  </b>\n</a>",
    "<a xml:lang='fr'><xml:b/></a>",
    "<?xml version='1.0' encoding='latin-1'?><a>é</a>",
    "<!DOCTYPE a [<!ENTITY e 'v'>]><a>&e;</a>",
    "  <a/>\n",
]


def shape(element: domish.Element) -> tuple:
    """Every field a domish element has (children and parent links included)."""
    children = []
    for child in element.children:
        if isinstance(child, str):
            children.append((type(child), child))
        else:
            assert child.parent is element
            children.append(shape(child))
    return (
        element.uri,
        element.name,
        element.defaultUri,
        dict(element.attributes),
        dict(element.localPrefixes),
        children,
        sorted(vars(element)),
    )


def random_xml(rng: random.Random, depth: int = 0) -> str:
    """A random element: namespaces, prefixes, attributes, text with entities."""
    prefix = rng.choice(["", "", "p:", "q:"])
    name = prefix + rng.choice(["a", "item", "entry", "é"])
    decls = ""
    if rng.random() < 0.3:
        decls += f" xmlns='urn:{rng.randint(0, 3)}'"
    if rng.random() < 0.1:
        decls += " xmlns=''"  if not decls else ""
    if prefix or rng.random() < 0.2:
        decls += f" xmlns:{(prefix or 'p:')[:-1]}='urn:p{rng.randint(0, 2)}'"
    attrs = "".join(
        f" {rng.choice(['k', 'id', 'xml:lang'])}{i}='{rng.choice(['v', '&amp;', 'é'])}'"
        for i in range(rng.randint(0, 2))
    )
    body = ""
    for _ in range(rng.randint(0, 3) if depth < 3 else 0):
        body += rng.choice(["", "text", " &lt;x&gt; ", "<![CDATA[c&d]]>", "✓"])
        body += random_xml(rng, depth + 1)
    body += rng.choice(["", "tail", "&#x263A;"])
    return f"<{name}{decls}{attrs}>{body}</{name}>" if body else f"<{name}{decls}{attrs}/>"


class ToXmlTests(TestCase):
    def test_same_as_domish(self) -> None:
        """to_xml gives exactly Element.toXml() for plain and prefixed elements."""
        for text in SAMPLES:
            element = parse_xml(text)
            self.assertEqual(to_xml(element), element.toXml(), text)

    def test_built_elements(self) -> None:
        """Elements built in code (namespaces changing, nested defaults) match toXml()."""
        item = domish.Element(("urn:a", "item"))
        item["id"] = "x<'>"
        child = item.addElement(("urn:b", "child"), content="1 < 2 & 3 > 2")
        child.addElement("grandchild")
        item.addElement("sibling")
        item.addChild(domish.SerializedXML("<raw/>"))
        self.assertEqual(to_xml(item), item.toXml())

    @settings(max_examples=300, database=None, deadline=None)
    @given(items())
    def test_same_as_domish_generated(self, item: domish.Element) -> None:
        """to_xml gives exactly toXml() for generated items (namespaces declared and
        inherited, escaped characters, adjacent text, SerializedXML, prefixes)."""
        self.assertEqual(to_xml(item), item.toXml())


def _all_text(element: domish.Element, out: list[str]) -> None:
    """Every text child and ``k`` attribute value of a tree (no rule skips any)."""
    if "k" in element.attributes:
        out.append(element["k"])
    for child in element.children:
        if isinstance(child, domish.Element):
            _all_text(child, out)
        else:
            out.append(str(child))


class ToXmlTextTests(TestCase):
    RULES = TextRules(frozenset({"k"}), {"urn:s": frozenset({"s"})}, ("urn:m", "t", "m"), _all_text)

    def test_rules(self) -> None:
        """to_xml_text collects kept attributes then text in document order, skips the
        children of skipped elements (not their attributes), and asks collect() for
        the whole text of a markup element."""
        item = parse_xml(
            "<a k='1' j='no'>one<s xmlns='urn:s' k='2'>skipped<b k='no'/></s>"
            "<b xmlns='urn:m' t='m' k='3'>three<c k='4'/></b><c k='5'>five</c></a>"
        )
        xml, texts = to_xml_text(item, self.RULES)
        self.assertEqual(xml, item.toXml())
        self.assertEqual(texts, ["1", "one", "2", "3", "three", "4", "5", "five"])

    def test_prefixes(self) -> None:
        """An element needing toXml(): its XML from there, its text from collect()."""
        item = parse_xml("<a xmlns:p='urn:p' k='1'><p:s xmlns:q='urn:q'>t</p:s></a>")
        self.assertEqual(to_xml_text(item, self.RULES), (item.toXml(), ["1", "t"]))


class ParseXmlTests(TestCase):
    def test_same_elements_as_domish_stream(self) -> None:
        """parse_xml builds the very elements of domish's ExpatElementStream."""
        for text in SAMPLES + TRICKY:
            self.assertEqual(shape(parse_xml(text)), shape(parse_xml_stream(text)), text)

    def test_same_elements_generated(self) -> None:
        """Same elements as the reference for 500 generated documents (fixed seed)."""
        rng = random.Random(14)
        for _ in range(500):
            text = random_xml(rng)
            try:
                expected = shape(parse_xml_stream(text))
            except ValueError:  # e.g. an undeclared prefix: both must refuse it
                self.assertRaises(ValueError, parse_xml, text)
                continue
            self.assertEqual(shape(parse_xml(text)), expected, text)

    def test_element_limit(self) -> None:
        """More elements than domish's stanza limit are refused, as domish does."""
        text = "<a>" + "<b/>" * (MAX_ELEMENTS + 1) + "</a>"
        with self.assertRaisesRegex(ValueError, "element count"):
            parse_xml(text)
        with self.assertRaisesRegex(ValueError, "element count"):
            parse_xml_stream(text)

    def test_fresh_elements(self) -> None:
        """Two parses of one text share no mutable state."""
        first, second = parse_xml(SAMPLES[2]), parse_xml(SAMPLES[2])
        first.children[0]["changed"] = "1"
        first.localPrefixes["x"] = "urn:x"
        self.assertEqual(second.toXml(), SAMPLES[2])
        self.assertEqual(second.localPrefixes, {})

    def test_round_trip(self) -> None:
        """Parsing then serialising gives the text back, text and children included."""
        for text in SAMPLES[:3]:
            self.assertEqual(parse_xml(text).toXml(), text)

    def test_root_text(self) -> None:
        """Character data directly in the root element is kept."""
        element = parse_xml("<a>one<b/>two</a>")
        self.assertEqual(element.children[0], "one")
        self.assertEqual(element.children[-1], "two")

    def test_malformed(self) -> None:
        """Malformed, unfinished, empty or multi-root text raises ValueError."""
        for text in ("", "<a>", "<a/><b/>", "text", "<a></b>", "<a/>junk", "x<a/>", "<p:a/>"):
            for parse in (parse_xml, parse_xml_stream):
                with self.assertRaises(ValueError, msg=text):
                    parse(text)

    def test_not_text(self) -> None:
        """Bytes are refused with TypeError."""
        with self.assertRaises(TypeError):
            parse_xml(b"<a/>")


def containers(element: domish.Element) -> list[int]:
    """Ids of every mutable object of an element tree (elements, dicts, lists)."""
    ids = [id(element), id(element.attributes), id(element.localPrefixes), id(element.children)]
    for child in element.children:
        if not isinstance(child, str):
            ids.extend(containers(child))
    return ids


class CopyElementTests(TestCase):
    def test_same_elements(self) -> None:
        """A copy has every field of the original (parents are the copies), for the
        samples and 200 generated documents (fixed seed), parsed by both parsers."""
        rng = random.Random(8)
        texts = SAMPLES + TRICKY + [random_xml(rng) for _ in range(200)]
        for text in texts:
            for parse in (parse_xml, parse_xml_stream):
                try:
                    element = parse(text)
                except ValueError:
                    continue
                copy = copy_element(element)
                self.assertEqual(shape(copy), shape(element), text)
                self.assertIsNone(copy.parent)
                self.assertEqual(copy.toXml(), element.toXml(), text)

    def test_nothing_mutable_shared(self) -> None:
        """No element, dict or list of the copy is the original's; changing the copy
        leaves the original as it was."""
        element = parse_xml(TRICKY[1])
        before = element.toXml()
        copy = copy_element(element)
        self.assertFalse(set(containers(copy)) & set(containers(element)))
        copy.firstChildElement()["k"] = "changed"
        copy.localPrefixes["z"] = "urn:z"
        copy.addElement("new")
        self.assertEqual((element.toXml(), element.localPrefixes), (before, {"p": "urn:p"}))

    def test_other_attributes_copied(self) -> None:
        """What a caller set on an element besides domish's fields is on the copy."""
        element = domish.Element(("urn:a", "a"))
        element.addElement("b").marker = "kept"
        self.assertEqual(copy_element(element).firstChildElement().marker, "kept")


class XmlElementTypeTests(TestCase):
    def test_binds(self) -> None:
        """An element is bound as its XML; a str is checked and bound as is."""
        column_type = XmlElement()
        element = parse_xml(SAMPLES[2])
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            self.assertEqual(column_type.process_bind_param(element, dialect), SAMPLES[2])
            self.assertEqual(column_type.process_bind_param(SAMPLES[0], dialect), SAMPLES[0])
            self.assertIsNone(column_type.process_bind_param(None, dialect))

    def test_refuses(self) -> None:
        """Malformed XML text and other types are refused."""
        column_type = XmlElement()
        with self.assertRaises(ValueError):
            column_type.process_bind_param("<a>", sqlite.dialect())
        with self.assertRaises(TypeError):
            column_type.process_bind_param(42, sqlite.dialect())

    def test_loads_element(self) -> None:
        """Stored text loads as a domish.Element."""
        loaded = XmlElement().process_result_value(SAMPLES[1], sqlite.dialect())
        self.assertIsInstance(loaded, domish.Element)
        self.assertEqual(loaded.toXml(), SAMPLES[1])
