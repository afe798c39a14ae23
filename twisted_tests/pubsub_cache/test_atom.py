"""The XEP-0277 Atom parser: full entries, and missing or malformed fields."""

from datetime import UTC, datetime

from sat_storage.plugins.plugin_xep_0277 import parse_atom_item, parse_date
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from twisted_tests.pubsub_cache.helpers import parse

ITEM = """<item xmlns='http://jabber.org/protocol/pubsub' id='{id}'>{payload}</item>"""
FULL = """<entry xmlns='http://www.w3.org/2005/Atom' xml:lang='en'>
  <id>tag:example.org,2024:post-1</id>
  <title type='text'>Hello <b>world</b></title>
  <content type='text'>First post</content>
  <content type='xhtml'>
    <div xmlns='http://www.w3.org/1999/xhtml'><p>First <em>post</em></p></div>
  </content>
  <author><name>Alice</name><uri>xmpp:alice@localhost</uri><email>alice@example.org</email></author>
  <published>2024-01-02T03:04:05Z</published>
  <updated>2024-01-02T04:04:05.250+01:00</updated>
  <category term='xmpp'/><category term='cache'/><category term='xmpp'/><category/>
  <link rel='replies' href='xmpp:pubsub.localhost?;node=comments-1' title='comments'/>
  <link href='https://example.org/post-1' type='text/html'/>
  <link rel='enclosure'/>
</entry>"""


def item(payload: str = "", id_: str = "post-1") -> domish.Element:
    return parse(ITEM.format(id=id_, payload=payload))


class AtomParserTests(TestCase):
    def test_full_entry(self) -> None:
        """Every field of a complete entry is extracted."""
        data = parse_atom_item(item(FULL))
        published = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
        self.assertEqual(data["id"], "post-1")
        self.assertEqual(data["atom_id"], "tag:example.org,2024:post-1")
        self.assertEqual(data["title"], "Hello world")
        self.assertEqual(data["content"], "First post")
        self.assertIn("<em>post</em>", data["content_xhtml"])
        self.assertEqual(data["author"], "Alice")
        self.assertEqual(data["author_jid"], "alice@localhost")
        self.assertEqual(data["author_email"], "alice@example.org")
        self.assertEqual(data["published"], published)
        self.assertEqual(data["updated"], published + 0.25)
        self.assertEqual(data["language"], "en")
        self.assertEqual(data["tags"], ["xmpp", "cache"])
        self.assertEqual(
            data["links"],
            [
                {
                    "href": "xmpp:pubsub.localhost?;node=comments-1",
                    "rel": "replies",
                    "title": "comments",
                },
                {"href": "https://example.org/post-1", "rel": "alternate", "type": "text/html"},
            ],
        )

    def test_no_payload(self) -> None:
        """An item without payload gives its id and empty lists."""
        self.assertEqual(parse_atom_item(item()), {"id": "post-1", "tags": [], "links": []})

    def test_other_payload(self) -> None:
        """A payload that is not Atom is ignored."""
        data = parse_atom_item(item("<entry xmlns='urn:other'><title>x</title></entry>"))
        self.assertEqual(data, {"id": "post-1", "tags": [], "links": []})

    def test_empty_entry(self) -> None:
        """An empty Atom entry gives only the id and empty lists."""
        data = parse_atom_item(item("<entry xmlns='http://www.w3.org/2005/Atom'/>"))
        self.assertEqual(data, {"id": "post-1", "tags": [], "links": []})

    def test_item_without_id(self) -> None:
        """An item without id is parsed without an ``id`` key."""
        element = parse("<item><entry xmlns='http://www.w3.org/2005/Atom'/></item>")
        self.assertNotIn("id", parse_atom_item(element))

    def test_malformed_dates(self) -> None:
        """Malformed dates are left out, not raised."""
        entry = (
            "<entry xmlns='http://www.w3.org/2005/Atom'><published>yesterday</published>"
            "<updated>2024-13-45T99:00:00Z</updated></entry>"
        )
        data = parse_atom_item(item(entry))
        self.assertNotIn("published", data)
        self.assertNotIn("updated", data)

    def test_updated_stands_for_published(self) -> None:
        """Without ``published``, ``updated`` is used for it."""
        entry = (
            "<entry xmlns='http://www.w3.org/2005/Atom'>"
            "<updated>2024-01-02T03:04:05Z</updated></entry>"
        )
        data = parse_atom_item(item(entry))
        self.assertEqual(data["published"], data["updated"])

    def test_xhtml_only_content(self) -> None:
        """An xhtml-only content gives its text as ``content`` too."""
        entry = (
            "<entry xmlns='http://www.w3.org/2005/Atom'><content type='xhtml'>"
            "<div xmlns='http://www.w3.org/1999/xhtml'><p>Only <b>rich</b></p></div>"
            "</content></entry>"
        )
        data = parse_atom_item(item(entry))
        self.assertEqual(data["content"], "Only rich")
        self.assertIn("<b>rich</b>", data["content_xhtml"])

    def test_author_without_jid(self) -> None:
        """A non-XMPP or malformed author URI gives no ``author_jid``."""
        entry = (
            "<entry xmlns='http://www.w3.org/2005/Atom'><author><name> </name>"
            "<uri>xmpp:@@bad@@/</uri></author></entry>"
        )
        data = parse_atom_item(item(entry))
        self.assertNotIn("author", data)
        self.assertNotIn("author_jid", data)
        self.assertEqual(data["author_uri"], "xmpp:@@bad@@/")

    def test_not_an_element(self) -> None:
        """Something that is not an element is a TypeError (the cache logs it)."""
        with self.assertRaises(TypeError):
            parse_atom_item("<item/>")  # type: ignore[arg-type]

    def test_parse_date_forms(self) -> None:
        """Dates with Z, an offset, no zone (UTC) or only a day are read."""
        base = datetime(2024, 1, 2, tzinfo=UTC).timestamp()
        self.assertEqual(parse_date("2024-01-02T00:00:00Z"), base)
        self.assertEqual(parse_date("2024-01-02T01:00:00+01:00"), base)
        self.assertEqual(parse_date("2024-01-02T00:00:00"), base)
        self.assertEqual(parse_date("2024-01-02"), base)
        self.assertIsNone(parse_date(""))
        self.assertIsNone(parse_date("0000-01-01"))
