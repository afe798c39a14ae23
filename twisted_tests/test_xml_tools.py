"""XML text <-> domish elements (sat_storage.xml_tools) and the XmlElement column type."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from sat_storage.models import XmlElement
from sat_storage.xml_tools import parse_xml, to_xml

SAMPLES = [
    "<a/>",
    "<a>text</a>",
    "<item xmlns='http://jabber.org/protocol/pubsub' id='1'>"
    "<entry xmlns='http://www.w3.org/2005/Atom'>a &amp; b &lt;c&gt; <b k='&apos;&quot;'/>"
    "tail</entry></item>",
    "<a xmlns:x='urn:x'><x:b x:c='1'>t</x:b></a>",
    "<a xml:lang='fr'>été ✓</a>",
]


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


class ParseXmlTests(TestCase):
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
        for text in ("", "<a>", "<a/><b/>", "text", "<a></b>", "<a/>junk", "x<a/>"):
            with self.assertRaises(ValueError, msg=text):
                parse_xml(text)

    def test_not_text(self) -> None:
        """Bytes are refused with TypeError."""
        with self.assertRaises(TypeError):
            parse_xml(b"<a/>")


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
