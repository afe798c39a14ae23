"""search_pubsub_items: every key and operator against a fixed, hand-checked data set.

The data set is in search_data.py. Alice's items, in creation order:

=========  ======  =============  ======  ================  =====  =========  =====
name       node    title          rating  tags              draft  author     price
=========  ======  =============  ======  ================  =====  =========  =====
hello      blog    Hello world    5       [xmpp, Python]    false  Alice      10
cache      blog    Cache design   3       [db]              true   bob        2.5
zebra      blog    Zebra          "4"     "xmpp"            null   Ålice      -
Meeting    events  meeting_50%    10      []                false  -          -1
empty      events  (no parsed data)
apple      other   apple          4.5     [XMPP, db]        false  alice      100
=========  ======  =============  ======  ================  =====  =========  =====

Nodes: blog (pubsub.example.org, type blog), events (type event, subtype meeting),
other (other.example.org, no type). Bob has one item "hello" in his own blog node.
"""

from __future__ import annotations

import copy
from typing import Any

from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from sat_storage.exceptions import ProfileUnknownError
from sat_storage.models import SyncState
from twisted_tests.db import make_storage
from twisted_tests.storage import search_data
from twisted_tests.storage.search_data import OTHER_SERVICE, SERVICE, Client

ALL = ["hello", "cache", "zebra", "Meeting", "empty", "apple"]


def parsed(path: list[Any], op: str, value: Any) -> dict[str, Any]:
    """A ``parsed`` filter."""
    return {"path": path, "op": op, "value": value}


class SearchTestCase(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        await search_data.fixed_data_set(self.storage)

    async def names(self, **query: Any) -> list[str]:
        """Names of alice's items matching ``query``, in result order."""
        query.setdefault("profiles", ["alice"])
        return [item.name for item in await self.storage.search_pubsub_items(query)]

    async def filtered(self, path: list[Any], op: str, value: Any) -> list[str]:
        """Names of alice's items matching one parsed filter, in creation order."""
        return await self.names(parsed=[parsed(path, op, value)])

    async def assert_refused(self, query: dict[str, Any], culprit: str) -> None:
        """The query is refused with a ValueError whose message names ``culprit``."""
        with self.assertRaises(ValueError) as caught:
            await self.storage.search_pubsub_items({"profiles": ["alice"], **query})
        self.assertIn(culprit, str(caught.exception))


class NodeFilterTests(SearchTestCase):
    async def test_scope_only(self) -> None:
        """With only the scope, every item of the profile comes, in creation order."""
        self.assertEqual(await self.names(), ALL)

    async def test_nodes(self) -> None:
        """nodes keeps the items of the nodes with those names."""
        self.assertEqual(await self.names(nodes=["events"]), ["Meeting", "empty"])

    async def test_services(self) -> None:
        """services accepts JIDs and strings."""
        self.assertEqual(await self.names(services=[OTHER_SERVICE]), ["apple"])
        self.assertEqual(await self.names(services=["other.example.org"]), ["apple"])

    async def test_types(self) -> None:
        """types keeps nodes of those types; None matches a node without a type."""
        self.assertEqual(await self.names(types=["blog"]), ["hello", "cache", "zebra"])
        self.assertEqual(await self.names(types=[None]), ["apple"])
        self.assertEqual(await self.names(types=["event", None]), ["Meeting", "empty", "apple"])

    async def test_subtypes(self) -> None:
        """subtypes keeps nodes of those subtypes; None matches a node without one."""
        self.assertEqual(await self.names(subtypes=["meeting"]), ["Meeting", "empty"])
        self.assertEqual(await self.names(subtypes=[None]), ["hello", "cache", "zebra", "apple"])

    async def test_names(self) -> None:
        """names keeps the items with those ids."""
        self.assertEqual(await self.names(names=["apple", "hello"]), ["hello", "apple"])

    async def test_empty_list(self) -> None:
        """An empty list filter matches nothing."""
        self.assertEqual(await self.names(nodes=[]), [])

    async def test_filters_combined(self) -> None:
        """Every filter must match."""
        self.assertEqual(
            await self.names(services=[SERVICE], types=["event"]), ["Meeting", "empty"]
        )


class ResultTests(SearchTestCase):
    async def test_loaded(self) -> None:
        """Results carry their node, their XML as a domish element and parsed data."""
        [item] = await self.storage.search_pubsub_items({"profiles": ["alice"], "names": ["apple"]})
        self.assertEqual(
            (item.node.service, item.node.name), ("other.example.org", "urn:xmpp:microblog:0")
        )
        self.assertIsNone(item.node.sync_state)
        self.assertIsInstance(item.data, domish.Element)
        self.assertEqual(item.data["id"], "apple")
        self.assertEqual(item.parsed["price"], 100)

    async def test_node_state(self) -> None:
        """The loaded node is the stored one (its sync state included)."""
        node = await self.storage.get_pubsub_node(Client("alice"), SERVICE, "events")
        await self.storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        [item] = await self.storage.search_pubsub_items({"profiles": ["alice"], "names": ["empty"]})
        self.assertEqual(item.node.sync_state, SyncState.COMPLETED)

    async def test_query_unchanged(self) -> None:
        """The caller's query dict (nested lists included) is not modified."""
        query = {
            "profiles": ["alice"],
            "types": ["blog", None],
            "subtypes": [None],
            "parsed": [parsed(["tags"], "ioverlap", ["XMPP"]), parsed(["rating"], "in", [5, "4"])],
            "order-by": [{"path": ["rating"], "direction": "DESC"}],
            "fts": "hello OR zebra",
            "index": 0,
            "limit": 5,
        }
        before = copy.deepcopy(query)
        items = await self.storage.search_pubsub_items(query)
        self.assertEqual([i.name for i in items], ["zebra", "hello"])
        self.assertEqual(query, before)


class ScopeTests(SearchTestCase):
    async def test_isolation(self) -> None:
        """A profile never sees another profile's items, even with equal names."""
        alice = await self.storage.search_pubsub_items({"profiles": ["alice"], "names": ["hello"]})
        bob = await self.storage.search_pubsub_items({"profiles": ["bob"], "fts": "hello"})
        self.assertEqual([i.parsed["title"] for i in alice], ["Hello world"])
        self.assertEqual([i.parsed["title"] for i in bob], ["Hello bob"])

    async def test_several_profiles(self) -> None:
        """The scope may name several profiles."""
        self.assertEqual(
            await self.names(profiles=["alice", "bob"], names=["hello"]), ["hello"] * 2
        )

    async def test_scope_required(self) -> None:
        """A search without profiles is refused unless it is an explicit admin call."""
        with self.assertRaises(ValueError) as caught:
            await self.storage.search_pubsub_items({"names": ["hello"]})
        self.assertIn("profiles", str(caught.exception))

    async def test_all_profiles(self) -> None:
        """all_profiles=True searches every profile's items."""
        items = await self.storage.search_pubsub_items({"names": ["hello"]}, all_profiles=True)
        self.assertEqual(sorted(i.parsed["title"] for i in items), ["Hello bob", "Hello world"])

    async def test_empty_scope(self) -> None:
        """An empty scope matches nothing."""
        self.assertEqual(await self.names(profiles=[]), [])

    async def test_unknown_profile(self) -> None:
        """An unknown profile in the scope raises ProfileUnknownError."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.search_pubsub_items({"profiles": ["mallory"]})


class ComparisonTests(SearchTestCase):
    async def test_eq_number(self) -> None:
        """== compares numbers with numbers only (the string "4" is not 4)."""
        self.assertEqual(await self.filtered(["rating"], "==", 5), ["hello"])
        self.assertEqual(await self.filtered(["rating"], "eq", 4), [])

    async def test_eq_string(self) -> None:
        """eq compares strings with strings, case-sensitively."""
        self.assertEqual(await self.filtered(["rating"], "eq", "4"), ["zebra"])
        self.assertEqual(await self.filtered(["author", "name"], "eq", "alice"), ["apple"])

    async def test_eq_boolean(self) -> None:
        """eq compares booleans with booleans (not with 0 or 1)."""
        self.assertEqual(await self.filtered(["draft"], "eq", True), ["cache"])
        self.assertEqual(await self.filtered(["draft"], "eq", False), ["hello", "Meeting", "apple"])
        self.assertEqual(await self.filtered(["price"], "eq", True), [])

    async def test_eq_null(self) -> None:
        """eq None matches a JSON null, not a missing key."""
        self.assertEqual(await self.filtered(["draft"], "eq", None), ["zebra"])

    async def test_ne(self) -> None:
        """!= matches every item == does not, items without the key included."""
        self.assertEqual(
            await self.filtered(["rating"], "!=", 5),
            ["cache", "zebra", "Meeting", "empty", "apple"],
        )
        self.assertEqual(
            await self.filtered(["rating"], "ne", 5),
            ["cache", "zebra", "Meeting", "empty", "apple"],
        )

    async def test_gt(self) -> None:
        """> on numbers is numeric (10 > 4) and ignores strings."""
        self.assertEqual(await self.filtered(["rating"], ">", 4), ["hello", "Meeting", "apple"])
        self.assertEqual(await self.filtered(["rating"], "gt", 4.5), ["hello", "Meeting"])

    async def test_gt_string(self) -> None:
        """> on strings compares code points (lower case after upper case)."""
        self.assertEqual(await self.filtered(["title"], "gt", "Z"), ["zebra", "Meeting", "apple"])

    async def test_ge(self) -> None:
        """>= includes the bound."""
        self.assertEqual(await self.filtered(["rating"], ">=", 5), ["hello", "Meeting"])
        self.assertEqual(await self.filtered(["rating"], "ge", 5), ["hello", "Meeting"])

    async def test_lt(self) -> None:
        """< is strictly less than."""
        self.assertEqual(await self.filtered(["rating"], "<", 5), ["cache", "apple"])
        self.assertEqual(await self.filtered(["price"], "lt", -1), [])

    async def test_le(self) -> None:
        """<= includes the bound."""
        self.assertEqual(await self.filtered(["rating"], "<=", 5), ["hello", "cache", "apple"])
        self.assertEqual(await self.filtered(["price"], "le", -1), ["Meeting"])

    async def test_between_numbers(self) -> None:
        """between is inclusive at both ends."""
        self.assertEqual(
            await self.filtered(["rating"], "between", [3, 5]), ["hello", "cache", "apple"]
        )

    async def test_between_strings(self) -> None:
        """between on strings compares code points."""
        self.assertEqual(await self.filtered(["title"], "between", ["B", "D"]), ["cache"])

    async def test_in(self) -> None:
        """in matches values of the list, each compared with values of its own type."""
        self.assertEqual(
            await self.filtered(["rating"], "in", [3, 10, "4"]), ["cache", "zebra", "Meeting"]
        )

    async def test_in_empty(self) -> None:
        """in an empty list matches nothing; not_in an empty list matches everything."""
        self.assertEqual(await self.filtered(["rating"], "in", []), [])
        self.assertEqual(await self.filtered(["rating"], "not_in", []), ALL)

    async def test_not_in(self) -> None:
        """not_in matches every item in does not."""
        self.assertEqual(
            await self.filtered(["rating"], "not_in", [3, 10, "4"]), ["hello", "empty", "apple"]
        )


class PatternTests(SearchTestCase):
    async def test_like(self) -> None:
        """like is case-sensitive; % and _ are wildcards."""
        self.assertEqual(await self.filtered(["title"], "like", "H%"), ["hello"])
        self.assertEqual(await self.filtered(["title"], "like", "h%"), [])
        self.assertEqual(await self.filtered(["title"], "like", "Zebr_"), ["zebra"])

    async def test_like_escape(self) -> None:
        """A backslash makes % and _ literal; glob characters are literal."""
        self.assertEqual(await self.filtered(["title"], "like", "%\\%"), ["Meeting"])
        self.assertEqual(await self.filtered(["title"], "like", "meeting\\_%"), ["Meeting"])
        self.assertEqual(await self.filtered(["title"], "like", "*"), [])

    async def test_ilike(self) -> None:
        """ilike ignores case."""
        self.assertEqual(await self.filtered(["title"], "ilike", "%HELLO%"), ["hello"])

    async def test_not_like(self) -> None:
        """not_like matches every item like does not."""
        self.assertEqual(
            await self.filtered(["title"], "not_like", "H%"),
            ["cache", "zebra", "Meeting", "empty", "apple"],
        )

    async def test_not_ilike(self) -> None:
        """not_ilike matches every item ilike does not."""
        self.assertEqual(
            await self.filtered(["author", "name"], "not_ilike", "alice"),
            ["cache", "zebra", "Meeting", "empty"],
        )


class ArrayTests(SearchTestCase):
    async def test_overlap(self) -> None:
        """overlap: an element in common (case-sensitive); a scalar is a 1-element array."""
        self.assertEqual(await self.filtered(["tags"], "overlap", ["xmpp"]), ["hello", "zebra"])
        self.assertEqual(
            await self.filtered(["tags"], "overlap", ["db", "nothing"]), ["cache", "apple"]
        )

    async def test_ioverlap(self) -> None:
        """ioverlap ignores case."""
        self.assertEqual(
            await self.filtered(["tags"], "ioverlap", ["XMPP"]), ["hello", "zebra", "apple"]
        )

    async def test_disjoint(self) -> None:
        """disjoint: no element in common, items without the array included."""
        self.assertEqual(
            await self.filtered(["tags"], "disjoint", ["xmpp", "db"]), ["Meeting", "empty"]
        )

    async def test_idisjoint(self) -> None:
        """idisjoint ignores case."""
        self.assertEqual(
            await self.filtered(["tags"], "idisjoint", ["python"]),
            ["cache", "zebra", "Meeting", "empty", "apple"],
        )

    async def test_overlap_numbers(self) -> None:
        """Numbers in an overlap list match numeric elements only."""
        self.assertEqual(await self.filtered(["rating"], "overlap", [3, 4]), ["cache"])


class PathTests(SearchTestCase):
    async def test_nested_key(self) -> None:
        """A path goes down nested objects."""
        self.assertEqual(
            await self.filtered(["author", "name"], "ilike", "alice"), ["hello", "apple"]
        )

    async def test_index(self) -> None:
        """An int in a path indexes an array (not a string)."""
        self.assertEqual(await self.filtered(["tags", 0], "eq", "xmpp"), ["hello"])

    async def test_negative_index(self) -> None:
        """A negative index counts from the end of the array."""
        self.assertEqual(await self.filtered(["tags", -1], "eq", "db"), ["cache", "apple"])

    async def test_missing_path(self) -> None:
        """A path that leads nowhere matches nothing."""
        self.assertEqual(await self.filtered(["nothing", 3, "here"], "eq", 1), [])

    async def test_several_filters(self) -> None:
        """Every parsed filter must match."""
        filters = [parsed(["draft"], "eq", False), parsed(["price"], "gt", 5)]
        self.assertEqual(await self.names(parsed=filters), ["hello", "apple"])


class OrderTests(SearchTestCase):
    async def ordered(self, *order_by: dict[str, Any]) -> list[str]:
        return await self.names(**{"order-by": list(order_by)})

    async def test_creation(self) -> None:
        """creation: the order items were first cached; desc reverses it."""
        self.assertEqual(await self.ordered({"order": "creation"}), ALL)
        self.assertEqual(await self.ordered({"order": "creation", "direction": "desc"}), ALL[::-1])

    async def test_modification(self) -> None:
        """modification: by modification time."""
        expected = ["hello", "zebra", "Meeting", "empty", "apple", "cache"]
        self.assertEqual(await self.ordered({"order": "modification"}), expected)

    async def test_item_id(self) -> None:
        """item_id: by item name, code point order."""
        expected = ["Meeting", "apple", "cache", "empty", "hello", "zebra"]
        self.assertEqual(await self.ordered({"order": "item_id"}), expected)

    async def test_numbers(self) -> None:
        """Numbers sort as numbers (3 < 4.5 < 5 < 10), before strings; missing last."""
        expected = ["cache", "apple", "hello", "Meeting", "zebra", "empty"]
        self.assertEqual(await self.ordered({"path": ["rating"]}), expected)

    async def test_numbers_desc(self) -> None:
        """desc reverses the order, items without a value still last."""
        expected = ["zebra", "Meeting", "hello", "apple", "cache", "empty"]
        self.assertEqual(await self.ordered({"path": ["rating"], "direction": "desc"}), expected)

    async def test_missing_last(self) -> None:
        """Items without the key (or with null) come last, in creation order."""
        expected = ["Meeting", "cache", "hello", "apple", "zebra", "empty"]
        self.assertEqual(await self.ordered({"path": ["price"]}), expected)
        expected = ["apple", "hello", "cache", "Meeting", "zebra", "empty"]
        self.assertEqual(await self.ordered({"path": ["price"], "direction": "desc"}), expected)

    async def test_booleans_and_null(self) -> None:
        """Booleans sort false first; JSON null counts as missing."""
        expected = ["hello", "Meeting", "apple", "cache", "zebra", "empty"]
        self.assertEqual(await self.ordered({"path": ["draft"]}), expected)

    async def test_mixed_kinds(self) -> None:
        """Strings sort before arrays."""
        expected = ["zebra", "hello", "cache", "Meeting", "apple", "empty"]
        self.assertEqual(await self.ordered({"path": ["tags"]}), expected)

    async def test_strings(self) -> None:
        """Strings sort by code point."""
        expected = ["cache", "hello", "zebra", "apple", "Meeting", "empty"]
        self.assertEqual(await self.ordered({"path": ["title"]}), expected)

    async def test_several_keys(self) -> None:
        """Later keys break the ties of earlier ones."""
        order = [{"path": ["draft"]}, {"path": ["rating"], "direction": "desc"}]
        expected = ["Meeting", "hello", "apple", "cache", "zebra", "empty"]
        self.assertEqual(await self.ordered(*order), expected)

    async def test_index_limit(self) -> None:
        """index skips results, limit caps them."""
        self.assertEqual(await self.names(index=1, limit=2), ["cache", "zebra"])
        self.assertEqual(await self.names(index=5), ["apple"])
        self.assertEqual(await self.names(limit=0), [])


class BadInputTests(SearchTestCase):
    async def test_not_a_dict(self) -> None:
        """The query must be a dict."""
        with self.assertRaises(ValueError):
            await self.storage.search_pubsub_items([("profiles", ["alice"])])

    async def test_unknown_key(self) -> None:
        """An unknown key is named."""
        await self.assert_refused({"order_by": []}, "order_by")

    async def test_wrong_list(self) -> None:
        """List filters must be lists of strings."""
        await self.assert_refused({"nodes": "events"}, "nodes")
        await self.assert_refused({"names": [1]}, "names[0]")
        await self.assert_refused({"types": [["blog"]]}, "types[0]")
        await self.assert_refused({"profiles": "alice"}, "profiles")

    async def test_unknown_operator(self) -> None:
        """An unknown operator is named."""
        await self.assert_refused({"parsed": [parsed(["a"], "~=", 1)]}, "'~='")

    async def test_bad_filter(self) -> None:
        """A filter must be a dict with exactly path, op and value."""
        await self.assert_refused({"parsed": [["a"], "eq", 1]}, "parsed[0]")
        await self.assertRefusedKeys({"path": ["a"], "op": "eq"}, "value")
        await self.assertRefusedKeys({"path": ["a"], "op": "eq", "value": 1, "x": 2}, "x")
        await self.assert_refused({"parsed": parsed(["a"], "eq", 1)}, "parsed")

    async def assertRefusedKeys(self, spec: dict[str, Any], culprit: str) -> None:
        await self.assert_refused({"parsed": [spec]}, culprit)

    async def test_malformed_path(self) -> None:
        """Paths must be non-empty lists of str keys and int indexes."""
        for path, culprit in (
            ("title", "parsed[0].path"),
            ([], "parsed[0].path"),
            ([1.5], "parsed[0].path[0]"),
            ([True], "parsed[0].path[0]"),
            (["a", None], "parsed[0].path[1]"),
            (['a"b'], "parsed[0].path[0]"),
        ):
            await self.assert_refused({"parsed": [parsed(path, "eq", 1)]}, culprit)

    async def test_between_value(self) -> None:
        """between needs a [low, high] list of numbers or of strings."""
        for value in (5, [1], [1, 2, 3], [1, "b"], [None, 2], "ab"):
            await self.assert_refused(
                {"parsed": [parsed(["a"], "between", value)]}, "parsed[0].value"
            )

    async def test_in_value(self) -> None:
        """in and not_in need a list of scalars."""
        for op, value in (("in", 5), ("in", "abc"), ("not_in", [[1]]), ("in", {"a": 1})):
            await self.assert_refused({"parsed": [parsed(["a"], op, value)]}, "parsed[0].value")

    async def test_overlap_value(self) -> None:
        """The overlap family needs a list of numbers or strings."""
        for op, value in (("overlap", "xmpp"), ("ioverlap", [None]), ("disjoint", [True])):
            await self.assert_refused({"parsed": [parsed(["a"], op, value)]}, "parsed[0].value")

    async def test_comparison_value(self) -> None:
        """Order comparisons take numbers or strings; eq takes scalars; numbers are finite."""
        for op, value in (("gt", None), ("lt", True), ("eq", [1]), ("le", float("nan"))):
            await self.assert_refused({"parsed": [parsed(["a"], op, value)]}, "parsed[0].value")

    async def test_like_value(self) -> None:
        """like patterns are strings not ending with a lone escape character."""
        await self.assert_refused({"parsed": [parsed(["a"], "like", 5)]}, "parsed[0].value")
        await self.assert_refused({"parsed": [parsed(["a"], "ilike", "ab\\")]}, "parsed[0].value")

    async def test_unknown_order(self) -> None:
        """Unknown orders and directions are named."""
        await self.assert_refused({"order-by": [{"order": "size"}]}, "'size'")
        await self.assert_refused({"order-by": [{"order": "creation", "direction": "up"}]}, "'up'")

    async def test_bad_order_spec(self) -> None:
        """An order-by entry has either order or path, and known keys only."""
        await self.assert_refused({"order-by": [{}]}, "order-by[0]")
        await self.assert_refused(
            {"order-by": [{"order": "creation", "path": ["a"]}]}, "order-by[0]"
        )
        await self.assert_refused({"order-by": [{"order": "creation", "dir": "asc"}]}, "dir")
        await self.assert_refused({"order-by": {"order": "creation"}}, "order-by")
        await self.assert_refused({"order-by": [{"path": "a"}]}, "order-by[0].path")

    async def test_rank_without_fts(self) -> None:
        """Ordering by rank needs a full-text query."""
        await self.assert_refused({"order-by": [{"order": "rank"}]}, "rank")

    async def test_index_limit_values(self) -> None:
        """index and limit are ints >= 0."""
        await self.assert_refused({"index": -1}, "index")
        await self.assert_refused({"limit": "20"}, "limit")
        await self.assert_refused({"limit": True}, "limit")

    async def test_sizes(self) -> None:
        """Lists, filters and numbers beyond what the engines bind are refused."""
        await self.assert_refused({"names": ["x"] * 501}, "names")
        await self.assert_refused({"parsed": [parsed(["a"], "eq", 1)] * 33}, "parsed")
        await self.assert_refused({"parsed": [parsed(["a"], "in", list(range(501)))]}, "value")
        await self.assert_refused({"parsed": [parsed(["a"], "eq", 2**64)]}, "parsed[0].value")
        await self.assert_refused({"parsed": [parsed(["a", 2**40], "eq", 1)]}, "path[1]")
        await self.assert_refused({"index": 2**64}, "index")

    async def test_nul(self) -> None:
        """Strings with NUL characters (refused by PostgreSQL) are refused everywhere."""
        await self.assert_refused({"nodes": ["a\x00b"]}, "nodes[0]")
        await self.assert_refused({"parsed": [parsed(["a"], "eq", "a\x00")]}, "parsed[0].value")
        await self.assert_refused({"parsed": [parsed(["a\x00"], "eq", 1)]}, "path[0]")

    async def test_bad_fts(self) -> None:
        """Bad full-text syntax is a ValueError naming fts, with no results."""
        for fts in ('"unclosed', "a OR", "-only", "***", 42):
            await self.assert_refused({"fts": fts}, "fts")
