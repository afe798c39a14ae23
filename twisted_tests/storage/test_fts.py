"""Full-text search: what is indexed, the query syntax, ranking, and the index kept in step."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.xish import domish

from sat_storage import fts
from sat_storage.models import PubsubItem
from sat_storage.xml_tools import parse_xml
from twisted_tests.db import make_storage
from twisted_tests.item_strategies import items
from twisted_tests.storage.search_data import (
    ATOM,
    PUBSUB,
    SERVICE,
    atom_item,
    cache,
    node,
)

XHTML = "http://www.w3.org/1999/xhtml"
# ASCII punctuation and white space, letters and digits of other scripts, combining
# marks, case folding that changes length or script (ß, K, İ), other separators
_ALPHABET = list(" \t\n_-.,'\"aZ09") + list("éE\u0301ßKİΩ٣²½\u00a0\u2028«»’漢\u200b")
RICH_ITEM = f"""<item xmlns='{PUBSUB}' id='rich'><entry xmlns='{ATOM}'>
<title type='html'>&lt;b title="Bold move"&gt;Release&lt;/b&gt; &lt;a href="https://x.org"&gt;notes&lt;/a&gt;</title>
<id>tag:example.org,2024:entry-rich</id><published>2024-05-06T07:08:09Z</published>
<author><name>Juliet</name><uri>xmpp:juliet@capulet.lit</uri></author>
<link rel='alternate' href='https://example.org/rich' title='Project homepage'/>
<category term='gardening' label='Green Thumbs'/>
<content type='xhtml'><div xmlns='{XHTML}'><p>Roses <em>and</em> tulips</p>
<img src='https://example.org/r.png' alt='A red rose'/></div></content>
</entry></item>"""  # noqa: E501


class ExtractionTests(SynchronousTestCase):
    def words(self) -> set[str]:
        return set(fts.item_text(parse_xml(RICH_ITEM)).split())

    def test_text(self) -> None:
        """Element text is indexed, XHTML bodies included."""
        self.assertLessEqual({"roses", "and", "tulips", "juliet"}, self.words())

    def test_content_attributes(self) -> None:
        """title, label, alt and term attribute values are indexed."""
        self.assertLessEqual(
            {"project", "homepage", "green", "thumbs", "gardening", "red", "rose"}, self.words()
        )

    def test_escaped_html(self) -> None:
        """Escaped HTML in an Atom text construct: its text, not its tags."""
        words = self.words()
        self.assertLessEqual({"release", "notes", "bold", "move"}, words)
        self.assertFalse({"b", "href", "x"} & words)

    def test_markup(self) -> None:
        """Element and attribute names, namespaces and addresses are not indexed."""
        markup = {"item", "entry", "title", "content", "link", "href", "rel", "alternate", "div"}
        addresses = {"https", "www", "w3", "org", "example", "png", "jabber", "protocol"}
        self.assertFalse((markup | addresses) & self.words())

    def test_identifiers(self) -> None:
        """Atom ids, author URIs and timestamps are not indexed."""
        self.assertFalse({"tag", "2024", "rich", "xmpp", "capulet", "09z"} & self.words())

    def test_normalised(self) -> None:
        """Words are NFC, case-folded, split on what is not a letter or digit."""
        item = domish.Element((PUBSUB, "item"))
        item.addElement("p", content="ÉCOLE e\u0301t\u00e9 foo_bar, C++ Straße")
        self.assertEqual(fts.item_text(item), "école été foo bar c strasse")

    @settings(max_examples=300, database=None, deadline=None)
    @given(st.text(alphabet=st.sampled_from(_ALPHABET) | st.characters(), max_size=40))
    def test_normalise_is_the_pattern(self, text: str) -> None:
        """normalise() finds exactly the words of the reference pattern (NFC, case-folded)."""
        expected = re.findall(r"[^\W_]+", unicodedata.normalize("NFC", text).casefold())
        self.assertEqual(fts.normalise(text), expected)

    @settings(max_examples=300, database=None, deadline=None)
    @given(
        st.lists(
            st.text(alphabet=st.characters(max_codepoint=127), max_size=12)
            | st.sampled_from(["x" * fts.MAX_WORD, "Y" * (fts.MAX_WORD + 1), "\x1f", "_-"]),
            max_size=12,
        ).map("".join)
    )
    def test_ascii_words_text(self, text: str) -> None:
        """words_text() of ASCII text (its bytes way) gives the words of normalise(),
        those over MAX_WORD characters left out, space-separated."""
        expected = " ".join(w for w in fts.normalise(text) if len(w) <= fts.MAX_WORD)
        self.assertEqual(fts.words_text(text), expected)

    def test_bounds(self) -> None:
        """Words over MAX_WORD characters are left out; the text is cut at MAX_TEXT."""
        item = domish.Element((PUBSUB, "item"))
        item.addElement("p", content=f"short {'x' * (fts.MAX_WORD + 1)} {'y' * fts.MAX_WORD}")
        self.assertEqual(fts.item_text(item), f"short {'y' * fts.MAX_WORD}")
        item.addElement("p", content=" ".join(f"w{i}" for i in range(100_000)))
        text = fts.item_text(item)
        self.assertLessEqual(len(text), fts.MAX_TEXT)
        self.assertTrue(text.endswith(f" w{len(text.split()) - 3}"))

    @settings(max_examples=300, database=None, deadline=None)
    @given(items())
    def test_one_walk(self, item: domish.Element) -> None:
        """item_xml_text() gives exactly toXml() and item_text()'s words for generated
        items (XHTML, Atom html text constructs, content attributes, skipped Atom
        identifiers and timestamps, escaped characters, non-ASCII, SerializedXML)."""
        self.assertEqual(fts.item_xml_text(item), (item.toXml(), fts.item_text(item)))

    def test_xml_text(self) -> None:
        """The XML text of an item gives the same words; malformed text gives none."""
        self.assertEqual(fts.item_text(RICH_ITEM), fts.item_text(parse_xml(RICH_ITEM)))
        self.assertEqual(fts.item_text("<item><unclosed></item>"), "")


class QuerySyntaxTests(SynchronousTestCase):
    def test_engine_operators_are_words(self) -> None:
        """Engine operators typed by a user reach the engines as quoted words only."""
        query = fts.parse_query("NEAR(pubsub cache) a:* & !b | c^ {d}")
        self.assertEqual(
            query.fts5(),
            '("near pubsub") AND ("cache") AND ("a"*) AND ("b") AND ("c") AND ("d")',
        )
        self.assertEqual(
            query.tsquery(),
            "(('near' <-> 'pubsub')) & (('cache')) & (('a':*)) & (('b')) & (('c')) & (('d'))",
        )

    def test_structure(self) -> None:
        """Phrases, prefixes, OR and negation compile to both engines' syntax."""
        query = fts.parse_query('"pubsub cache"* OR xmpp -sqlite AND e-mail')
        self.assertEqual(
            query.fts5(), '(("pubsub cache"* OR "xmpp") AND ("e mail")) NOT ("sqlite")'
        )
        self.assertEqual(
            query.tsquery(),
            "(('pubsub' <-> 'cache':*) | ('xmpp')) & (('e' <-> 'mail')) & !('sqlite')",
        )

    def test_errors(self) -> None:
        """Malformed queries raise ValueError naming the query."""
        for query in ("", "   ", "OR a", "a OR", "a OR OR b", "a OR -b", "-a", '"ab', "a*b",
                      "!!!", 'a"b', "AND a", "a" * (fts.MAX_WORD + 1)):  # fmt: skip
            with self.assertRaises(ValueError) as caught:
                fts.parse_query(query)
            self.assertIn(repr(query), str(caught.exception))


class FullTextSearchTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.node = await node(self.storage, "alice")

    async def add(self, name: str, title: str = "", content: str = "", **parsed: Any) -> None:
        await cache(self.storage, "alice", self.node, [atom_item(name, title, content)], [parsed])

    async def search(self, fts_query: str, **query: Any) -> list[str]:
        query = {"profiles": ["alice"], "fts": fts_query, **query}
        return [item.name for item in await self.storage.search_pubsub_items(query)]

    async def test_word(self) -> None:
        """A word of the title or the content finds the item, whatever its case."""
        await self.add("a", "Pubsub caching", "Notes about XMPP")
        await self.add("b", "Other", "nothing here")
        self.assertEqual(await self.search("xmpp"), ["a"])
        self.assertEqual(await self.search("CACHING"), ["a"])

    async def test_markup_not_matched(self) -> None:
        """Words of the Atom markup, addresses and ids match no item."""
        await self.add("a", "Hello", "world")
        for word in ("entry", "href", "title", "alternate", "https", "example", "2024", "tag"):
            self.assertEqual(await self.search(word), [], word)

    async def test_rich_item(self) -> None:
        """Attribute content and XHTML text of a real-looking entry are found."""
        await cache(self.storage, "alice", self.node, [parse_xml(RICH_ITEM)])
        self.assertEqual(await self.search("homepage tulips gardening"), ["rich"])
        self.assertEqual(await self.search("href"), [])

    async def test_phrase(self) -> None:
        """A quoted phrase needs its words adjacent and in order."""
        await self.add("a", "the pubsub cache")
        await self.add("b", "a cache of pubsub items")
        self.assertEqual(await self.search('"pubsub cache"'), ["a"])

    async def test_prefix(self) -> None:
        """word* matches the words starting with it."""
        await self.add("a", "cache")
        await self.add("b", "caching")
        await self.add("c", "cat")
        self.assertEqual(await self.search("cach*"), ["a", "b"])

    async def test_or(self) -> None:
        """OR matches either term; other terms must still match."""
        await self.add("a", "red apple")
        await self.add("b", "green apple")
        await self.add("c", "red car")
        self.assertEqual(await self.search("red OR green apple", **{"order-by": []}), ["a", "b"])

    async def test_and_not(self) -> None:
        """Terms must all match; -term excludes."""
        await self.add("a", "red apple")
        await self.add("b", "green apple")
        await self.add("c", "red car")
        self.assertEqual(await self.search("apple -green"), ["a"])
        self.assertEqual(await self.search("red AND apple"), ["a"])

    async def test_accents_kept(self) -> None:
        """Case is ignored, accents are not."""
        await self.add("a", "École")
        self.assertEqual(await self.search("ÉCOLE"), ["a"])
        self.assertEqual(await self.search("ecole"), [])

    async def test_engine_syntax_is_text(self) -> None:
        """Engine operators in a query are plain words, never an engine error."""
        await self.add("a", "near pubsub cache")
        self.assertEqual(await self.search("NEAR(pubsub cache) cache:*"), ["a"])

    async def test_huge_item(self) -> None:
        """An item with megabytes of words is cached and found by its first words."""
        words = " ".join(f"w{i}" for i in range(300_000))  # 2.3 MB
        await self.add("huge", "enormous", words)
        self.assertEqual(await self.search("enormous w1000"), ["huge"])

    async def test_ranking(self) -> None:
        """With fts, the default order is by rank: the most relevant item first."""
        await self.add("weak", "xmpp", "a long text about many things and some other words too")
        await self.add("strong", "xmpp xmpp", "xmpp")
        await self.add("none", "unrelated")
        self.assertEqual(await self.search("xmpp"), ["strong", "weak"])
        self.assertEqual(await self.search("xmpp", **{"order-by": [{"order": "rank"}]}),
                         ["strong", "weak"])  # fmt: skip

    async def test_rank_desc(self) -> None:
        """rank desc gives the least relevant first."""
        await self.add("weak", "xmpp", "a long text about many things and some other words too")
        await self.add("strong", "xmpp xmpp", "xmpp")
        order = {"order-by": [{"order": "rank", "direction": "desc"}]}
        self.assertEqual(await self.search("xmpp", **order), ["weak", "strong"])

    async def test_with_filter_and_order(self) -> None:
        """fts, a parsed filter and an order by a parsed path combine."""
        for i, score in enumerate([5, 1, 9, 7]):
            await self.add(f"i{i}", "xmpp news" if i != 3 else "other", score=score)
        query = {
            "parsed": [{"path": ["score"], "op": ">", "value": 2}],
            "order-by": [{"path": ["score"], "direction": "desc"}],
        }
        self.assertEqual(await self.search("news", **query), ["i2", "i0"])


class IndexSyncTests(TestCase):
    """The index follows every write: checked on the index itself, not through joins."""

    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.node = await node(self.storage, "alice")
        await cache(self.storage, "alice", self.node, [atom_item("a", "first words")])
        await cache(self.storage, "alice", self.node, [atom_item("b", "other words")])

    async def indexed(self, word: str) -> list[str]:
        """Names of the items whose index entry has ``word`` (SQLite: index integrity)."""

        def txn(session: Session) -> list[str]:
            if session.get_bind().dialect.name == "sqlite":
                ids = session.scalars(
                    text("SELECT rowid FROM pubsub_items_fts WHERE pubsub_items_fts MATCH :q"),
                    {"q": f'"{word}"'},
                ).all()
                # compares the whole index with the content of pubsub_items
                session.execute(
                    text("INSERT INTO pubsub_items_fts(pubsub_items_fts, rank) "
                         "VALUES ('integrity-check', 1)")
                )  # fmt: skip
            else:
                ids = session.scalars(
                    text(
                        "SELECT id FROM pubsub_items WHERE fts_vector @@ to_tsquery('simple', :q)"
                    ),
                    {"q": word},
                ).all()
            names = dict(session.execute(select(PubsubItem.id, PubsubItem.name)).all())
            return sorted(names.get(i, f"<stale {i}>") for i in ids)

        return await self.storage.db.run(txn)

    async def test_insert(self) -> None:
        """Cached items are indexed."""
        self.assertEqual(await self.indexed("words"), ["a", "b"])

    async def test_update(self) -> None:
        """Caching an item again replaces its index entry."""
        await cache(self.storage, "alice", self.node, [atom_item("a", "new title")])
        self.assertEqual(await self.indexed("first"), [])
        self.assertEqual(await self.indexed("new"), ["a"])
        self.assertEqual(await self.indexed("words"), ["b"])

    async def test_update_parsed_only(self) -> None:
        """Caching the same XML with new parsed data keeps one index entry."""
        await cache(self.storage, "alice", self.node, [atom_item("a", "first words")], [{"x": 1}])
        self.assertEqual(await self.indexed("first"), ["a"])

    async def test_delete(self) -> None:
        """Deleted items leave the index."""
        await self.storage.delete_pubsub_items(self.node, ["a"])
        self.assertEqual(await self.indexed("words"), ["b"])

    async def test_purge(self) -> None:
        """Purged items leave the index."""
        await self.storage.purge_pubsub_items(services=[SERVICE])
        self.assertEqual(await self.indexed("words"), [])

    async def test_node_delete(self) -> None:
        """Items of a deleted node leave the index (foreign key cascade)."""
        other = await node(self.storage, "alice", name="other")
        await cache(self.storage, "alice", other, [atom_item("c", "more words")])
        await self.storage.delete_pubsub_node(["alice"], [SERVICE], [self.node.name])
        self.assertEqual(await self.indexed("words"), ["c"])

    async def test_profile_delete(self) -> None:
        """Items of a deleted profile leave the index (two-level cascade)."""
        bob = await node(self.storage, "bob")
        await cache(self.storage, "bob", bob, [atom_item("c", "bob words")])
        await self.storage.delete_profile("alice")
        self.assertEqual(await self.indexed("words"), ["c"])
        self.assertEqual(await self.search_bob("words"), ["c"])

    async def search_bob(self, word: str) -> list[str]:
        items = await self.storage.search_pubsub_items({"profiles": ["bob"], "fts": word})
        return [item.name for item in items]
