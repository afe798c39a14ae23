"""One answer on every engine: a fixed example database per defect of issue #10.

Each class stores the few items that showed a defect (an answer that differed between
SQLite and PostgreSQL, or from doc/) and checks the documented answer; the suite
runs it on both engines. The generated differential tests are in
test_search_differential.py.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from twisted_tests.db import make_storage
from twisted_tests.storage import search_data


class FixedItems(TestCase):
    """Items ``i0``, ``i1``, ... of alice, with the parsed data of ``PARSED``."""

    PARSED: list[dict[str, Any] | None] = []

    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        node = await search_data.node(self.storage, "alice")
        items = [search_data.atom_item(f"i{i}") for i in range(len(self.PARSED))]
        await search_data.cache(self.storage, "alice", node, items, list(self.PARSED))

    async def names(self, **query: Any) -> list[str]:
        query.setdefault("profiles", ["alice"])
        return [item.name for item in await self.storage.search_pubsub_items(query)]

    async def filtered(self, path: list[Any], op: str, value: Any) -> list[str]:
        return await self.names(parsed=[{"path": path, "op": op, "value": value}])


class CaseFoldingTests(FixedItems):
    """Defects 1 and 2: case folding is full Unicode lower-casing on both engines."""

    PARSED = [
        {"s": "Ñandú"}, {"s": "ñandú"}, {"s": ["ÉTÉ", "x"]}, {"s": "café"}, {"s": "CAFÉ"},
        {"s": "Cafe"}, {"s": "STRASSE"}, {"s": "straße"}, {"s": "ΣΊΣΥΦΟΣ"},
    ]  # fmt: skip

    async def test_ioverlap_non_ascii(self) -> None:
        """ioverlap matches non-ASCII capitals whatever the case of the query."""
        self.assertEqual(await self.filtered(["s"], "ioverlap", ["ÑANDÚ"]), ["i0", "i1"])
        self.assertEqual(
            await self.filtered(["s"], "ioverlap", ["Ñandú", "été"]), ["i0", "i1", "i2"]
        )

    async def test_idisjoint_non_ascii(self) -> None:
        """idisjoint is the complement of ioverlap, non-ASCII letters included."""
        self.assertEqual(
            await self.filtered(["s"], "idisjoint", ["ñANDÚ", "Été"]),
            ["i3", "i4", "i5", "i6", "i7", "i8"],
        )

    async def test_ilike_non_ascii(self) -> None:
        """ilike folds every letter: CAFÉ matches café (not Cafe)."""
        self.assertEqual(await self.filtered(["s"], "ilike", "CAFÉ"), ["i3", "i4"])
        self.assertEqual(await self.filtered(["s"], "ilike", "σίσυφος"), ["i8"])

    async def test_not_ilike_non_ascii(self) -> None:
        """not_ilike is the complement of ilike."""
        self.assertEqual(
            await self.filtered(["s"], "not_ilike", "%É"),
            ["i0", "i1", "i2", "i5", "i6", "i7", "i8"],
        )

    async def test_lower_not_casefold(self) -> None:
        """The folding is lower-casing, not casefold: STRASSE is not straße."""
        self.assertEqual(await self.filtered(["s"], "ilike", "STRASSE"), ["i6"])
        self.assertEqual(await self.filtered(["s"], "ioverlap", ["Straße"]), ["i7"])


class NumberListTests(FixedItems):
    """Defect 3: number lists are bound with their exact values on both engines."""

    PARSED = [{"n": 0}, {"n": 2}, {"n": 2.5}, {"n": 2**62}, {"n": 2**53 + 1}, {"n": float(2**62)}]

    async def test_big_ints_in_list(self) -> None:
        """not_in with a 64-bit integer works (no integer overflow)."""
        self.assertEqual(await self.filtered(["n"], "not_in", [0, 2**62]), ["i1", "i2", "i4"])

    async def test_mixed_list(self) -> None:
        """in [1, 2.5] matches 2.5, not 2."""
        self.assertEqual(await self.filtered(["n"], "in", [1, 2.5]), ["i2"])
        self.assertEqual(await self.filtered(["n"], "overlap", [2, 0.5]), ["i1"])

    async def test_exact_integers(self) -> None:
        """Integers beyond 2**53 compare exactly (2**53 + 1 is not the float 2**53)."""
        self.assertEqual(await self.filtered(["n"], "eq", 2**53 + 1), ["i4"])
        self.assertEqual(await self.filtered(["n"], "eq", float(2**53)), [])

    async def test_float_equals_int(self) -> None:
        """A float equals the integer of the same value, both ways."""
        self.assertEqual(await self.filtered(["n"], "eq", 2**62), ["i3", "i5"])
        self.assertEqual(await self.filtered(["n"], "in", [float(2**62)]), ["i3", "i5"])

    async def test_order(self) -> None:
        """Ints and floats sort together by value (ties: creation order)."""
        order = [{"path": ["n"], "direction": "desc"}]
        self.assertEqual(
            await self.names(**{"order-by": order}), ["i3", "i5", "i4", "i2", "i1", "i0"]
        )


class NullOrderTests(FixedItems):
    """Defect 4: JSON null and a missing key sort together, last, in creation order."""

    PARSED = [{"o": None}, {}, {"o": None}, {"o": 1}, None, {"o": "a"}]

    async def test_ascending(self) -> None:
        """Ascending: values first, then null and missing in creation order."""
        self.assertEqual(
            await self.names(**{"order-by": [{"path": ["o"]}]}),
            ["i3", "i5", "i0", "i1", "i2", "i4"],
        )

    async def test_descending(self) -> None:
        """Descending: values reversed, null and missing still last in creation order."""
        order = [{"path": ["o"], "direction": "desc"}]
        self.assertEqual(
            await self.names(**{"order-by": order}), ["i5", "i3", "i0", "i1", "i2", "i4"]
        )


class ObjectOverlapTests(FixedItems):
    """Defect 5: an object has no elements for overlap (its values are not walked)."""

    PARSED = [{"t": {"a": "x"}}, {"t": ["x", {"b": "x"}]}, {"t": "x"}, {"t": None}, {}]

    async def test_overlap(self) -> None:
        """overlap finds the value in an array or as the scalar, never in an object."""
        self.assertEqual(await self.filtered(["t"], "overlap", ["x"]), ["i1", "i2"])
        self.assertEqual(await self.filtered(["t"], "ioverlap", ["X"]), ["i1", "i2"])

    async def test_disjoint(self) -> None:
        """disjoint matches the object, null and missing values."""
        self.assertEqual(await self.filtered(["t"], "disjoint", ["x"]), ["i0", "i3", "i4"])


class StrictFlagTests(FixedItems):
    """Defect 6: all_profiles accepts only True and False."""

    PARSED = [None]

    async def test_refused(self) -> None:
        """A truthy non-bool all_profiles is a ValueError naming it."""
        for value in ("no", 1, "True", None):
            with self.assertRaises(ValueError) as caught:
                await self.storage.search_pubsub_items({"names": ["i0"]}, all_profiles=value)
            self.assertIn("all_profiles", str(caught.exception))

    async def test_true(self) -> None:
        """all_profiles=True searches every profile."""
        items = await self.storage.search_pubsub_items({"names": ["i0"]}, all_profiles=True)
        self.assertEqual([i.name for i in items], ["i0"])


class BigFloatTests(FixedItems):
    """Found by the differential suite: floats from 1e16 on read back equal, as floats."""

    PARSED = [{"f": -2.730648000375673e16, "g": [1e300, 1e16, 2**70]}]

    async def test_round_trip(self) -> None:
        """The parsed data comes back equal, floats as floats (not as jsonb's ints)."""
        [item] = await self.storage.search_pubsub_items({"profiles": ["alice"]})
        self.assertEqual(item.parsed, self.PARSED[0])
        self.assertEqual([type(v) for v in item.parsed["g"]], [float, float, int])
        self.assertIsInstance(item.parsed["f"], float)

    async def test_compared_exactly(self) -> None:
        """Such a float equals the integer of its exact value, not of its short text."""
        self.assertEqual(await self.filtered(["f"], "eq", -27306480003756728), ["i0"])
        self.assertEqual(await self.filtered(["f"], "eq", -27306480003756730), [])


class UnstorableTests(TestCase):
    """Defect 7: NUL (and lone surrogates) give the same ValueError on both engines."""

    async def setUp(self) -> None:
        self.storage = await make_storage(self)
        self.node = await search_data.node(self.storage, "alice")

    async def assert_refused(self, culprit: str, items: list[Any], parsed: list[Any]) -> None:
        """Caching is refused naming ``culprit``; nothing is stored."""
        with self.assertRaises(ValueError) as caught:
            await search_data.cache(self.storage, "alice", self.node, items, parsed)
        self.assertIn(culprit, str(caught.exception))
        self.assertEqual(await self.storage.search_pubsub_items({"profiles": ["alice"]}), [])

    async def test_item_id(self) -> None:
        """An item id with NUL is refused, naming the item."""
        await self.assert_refused(
            "items[1] id", [search_data.atom_item(n) for n in "a\x00"], [None] * 2
        )

    async def test_item_text(self) -> None:
        """Item text with NUL (in its XML) is refused."""
        await self.assert_refused("items[0]", [search_data.atom_item("a", "ti\x00tle")], [None])

    async def test_parsed_string(self) -> None:
        """A parsed string with NUL, or a lone surrogate, is refused."""
        item = [search_data.atom_item("a")]
        await self.assert_refused("parsed_items[0]", item, [{"t": ["ok", "a\x00"]}])
        await self.assert_refused("lone surrogate", item, [{"t": "\ud800"}])

    async def test_parsed_key(self) -> None:
        """A parsed key with NUL is refused, naming the key."""
        await self.assert_refused("dict key", [search_data.atom_item("a")], [{"k\x00": 1}])

    async def test_backslash_u0000_stored(self) -> None:
        """The six characters \\u0000 are text like any other: stored on both engines."""
        await search_data.cache(
            self.storage, "alice", self.node, [search_data.atom_item("a")], [{"t": "\\u0000"}]
        )
        [item] = await self.storage.search_pubsub_items({"profiles": ["alice"]})
        self.assertEqual(item.parsed, {"t": "\\u0000"})

    async def test_node_name(self) -> None:
        """A node name or type with NUL is refused, on creation and on look-up."""
        client = search_data.Client("alice")
        for call in (
            lambda: self.storage.set_pubsub_node(client, search_data.SERVICE, "n\x00"),
            lambda: self.storage.set_pubsub_node(client, search_data.SERVICE, "n", type_="t\x00"),
            lambda: self.storage.get_pubsub_node(client, search_data.SERVICE, "n\x00"),
        ):
            with self.assertRaises(ValueError) as caught:
                await call()
            self.assertIn("NUL", str(caught.exception))
