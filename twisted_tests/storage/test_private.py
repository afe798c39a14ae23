"""Private data: text and JSON values, general and per profile."""

from sqlalchemy import text
from twisted.trial.unittest import TestCase

from sat_storage.exceptions import ProfileUnknownError
from sat_storage.models import PrivateGen, PrivateGenBin, PrivateInd, PrivateIndBin
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.helpers import count_rows

ALL_TABLES = (PrivateGen, PrivateInd, PrivateGenBin, PrivateIndBin)


class PrivateTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")

    async def test_general_text(self) -> None:
        """General text values are set and read back by namespace."""
        await self.storage.set_private_value("ns", "a", "1")
        await self.storage.set_private_value("ns", "b", "2")
        await self.storage.set_private_value("other", "a", "x")
        self.assertEqual(await self.storage.get_privates("ns"), {"a": "1", "b": "2"})

    async def test_individual_text(self) -> None:
        """Per-profile values are separate from general values and from other profiles."""
        await self.storage.set_private_value("ns", "k", "general")
        await self.storage.set_private_value("ns", "k", "alice's", profile="alice")
        await self.storage.set_private_value("ns", "k", "bob's", profile="bob")
        self.assertEqual(await self.storage.get_privates("ns"), {"k": "general"})
        self.assertEqual(await self.storage.get_privates("ns", profile="alice"), {"k": "alice's"})
        self.assertEqual(await self.storage.get_privates("ns", profile="bob"), {"k": "bob's"})

    async def test_set_replaces(self) -> None:
        """Setting a key twice keeps one row with the last value."""
        await self.storage.set_private_value("ns", "k", "old", profile="alice")
        await self.storage.set_private_value("ns", "k", "new", profile="alice")
        self.assertEqual(await self.storage.get_privates("ns", profile="alice"), {"k": "new"})
        self.assertEqual(await count_rows(self.storage, PrivateInd), 1)

    async def test_keys_filter(self) -> None:
        """Only the requested keys come back; missing keys are left out."""
        for key in "abc":
            await self.storage.set_private_value("ns", key, key.upper())
        self.assertEqual(
            await self.storage.get_privates("ns", keys=["a", "c", "missing"]),
            {"a": "A", "c": "C"},
        )
        self.assertEqual(await self.storage.get_privates("ns", keys=iter(["b"])), {"b": "B"})

    async def test_empty_keys(self) -> None:
        """An empty keys list gives an empty dict (not every key)."""
        await self.storage.set_private_value("ns", "a", "A")
        self.assertEqual(await self.storage.get_privates("ns", keys=[]), {})

    async def test_many_keys(self) -> None:
        """A keys list longer than the engine's bound-variable limit works (batched)."""
        for key in ("k5", "k1500", "k2999"):
            await self.storage.set_private_value("ns", key, key, binary=True)
        keys = [f"k{i}" for i in range(3000)]
        self.assertEqual(
            await self.storage.get_privates("ns", keys=keys, binary=True),
            {"k5": "k5", "k1500": "k1500", "k2999": "k2999"},
        )

    async def test_unknown_namespace(self) -> None:
        """A namespace without values gives an empty dict."""
        self.assertEqual(await self.storage.get_privates("nothing"), {})
        self.assertEqual(await self.storage.get_privates("nothing", binary=True), {})

    async def test_binary_values(self) -> None:
        """Binary values of every JSON type round-trip, per profile and general."""
        values = {
            "dict": {"a": [1, 2.5, None, True], "nested": {"ü": "ß"}},
            "list": [1, "two", {"three": 3}],
            "int": 2**62,
            "float": 0.1,
            "bool": False,
            "none": None,
            "str": "text",
        }
        for profile in (None, "alice"):
            for key, value in values.items():
                await self.storage.set_private_value("ns", key, value, True, profile)
            self.assertEqual(
                await self.storage.get_privates("ns", binary=True, profile=profile), values
            )

    async def test_binary_tuple(self) -> None:
        """A tuple is stored as JSON and comes back as a list."""
        await self.storage.set_private_value("ns", "t", (1, (2, 3)), binary=True)
        self.assertEqual(await self.storage.get_privates("ns", binary=True), {"t": [1, [2, 3]]})

    async def test_binary_separate_from_text(self) -> None:
        """Binary and text values of the same namespace and key are distinct."""
        await self.storage.set_private_value("ns", "k", "text")
        await self.storage.set_private_value("ns", "k", {"json": 1}, binary=True)
        self.assertEqual(await self.storage.get_privates("ns"), {"k": "text"})
        self.assertEqual(await self.storage.get_privates("ns", binary=True), {"k": {"json": 1}})

    async def test_binary_stored_as_json(self) -> None:
        """Binary values are stored as JSON text, readable without Python (no pickle)."""
        await self.storage.set_private_value("ns", "k", {"a": [1, 2]}, binary=True)
        raw = await self.storage.db.run(
            lambda session: session.execute(
                text("SELECT CAST(value AS TEXT) FROM private_gen_bin")
            ).scalar_one()
        )
        self.assertEqual(raw.replace(" ", ""), '{"a":[1,2]}')

    async def test_unicode_and_large(self) -> None:
        """Unicode namespaces/keys and large values (text and JSON) round-trip."""
        big_text = "日本語 ✓ 🎉 ça " * 50_000
        big_json = {"items": [{"n": i, "t": "é" * 50} for i in range(5000)]}
        await self.storage.set_private_value("名前空間", "clé 🎉", big_text, profile="alice")
        await self.storage.set_private_value("名前空間", "clé 🎉", big_json, True, "alice")
        self.assertEqual(
            await self.storage.get_privates("名前空間", profile="alice"), {"clé 🎉": big_text}
        )
        self.assertEqual(
            await self.storage.get_privates("名前空間", ["clé 🎉"], True, "alice"),
            {"clé 🎉": big_json},
        )

    async def test_del_value(self) -> None:
        """del_private_value removes one key of one table only."""
        await self.storage.set_private_value("ns", "a", "A", profile="alice")
        await self.storage.set_private_value("ns", "b", "B", profile="alice")
        await self.storage.set_private_value("ns", "a", "A", profile="bob")
        await self.storage.set_private_value("ns", "a", "A")
        await self.storage.del_private_value("ns", "a", profile="alice")
        self.assertEqual(await self.storage.get_privates("ns", profile="alice"), {"b": "B"})
        self.assertEqual(await self.storage.get_privates("ns", profile="bob"), {"a": "A"})
        self.assertEqual(await self.storage.get_privates("ns"), {"a": "A"})

    async def test_del_missing_value(self) -> None:
        """Deleting a key that does not exist is not an error."""
        await self.storage.del_private_value("ns", "missing", binary=True, profile="alice")
        self.assertEqual(await count_rows(self.storage, *ALL_TABLES), 0)

    async def test_del_namespace(self) -> None:
        """del_private_namespace removes the namespace of one table, other namespaces stay."""
        await self.storage.set_private_value("ns", "a", 1, binary=True)
        await self.storage.set_private_value("ns", "b", 2, binary=True)
        await self.storage.set_private_value("keep", "a", 3, binary=True)
        await self.storage.set_private_value("ns", "a", "text")
        await self.storage.del_private_namespace("ns", binary=True)
        self.assertEqual(await self.storage.get_privates("ns", binary=True), {})
        self.assertEqual(await self.storage.get_privates("keep", binary=True), {"a": 3})
        self.assertEqual(await self.storage.get_privates("ns"), {"a": "text"})

    async def test_del_namespace_profile(self) -> None:
        """del_private_namespace with a profile leaves other profiles and general values."""
        await self.storage.set_private_value("ns", "a", "A", profile="alice")
        await self.storage.set_private_value("ns", "a", "A", profile="bob")
        await self.storage.set_private_value("ns", "a", "A")
        await self.storage.del_private_namespace("ns", profile="alice")
        self.assertEqual(await self.storage.get_privates("ns", profile="alice"), {})
        self.assertEqual(await self.storage.get_privates("ns", profile="bob"), {"a": "A"})
        self.assertEqual(await self.storage.get_privates("ns"), {"a": "A"})

    async def test_not_serialisable(self) -> None:
        """A binary value JSON can't hold raises TypeError naming the key, nothing stored."""
        for value in ({1, 2}, {"a": object()}, {1: "int key"}, float("nan"), b"bytes"):
            with self.assertRaises(TypeError) as cm:
                await self.storage.set_private_value("ns", "the_key", value, binary=True)
            self.assertIn("'the_key'", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, *ALL_TABLES), 0)

    async def test_text_value_type(self) -> None:
        """A non-str value in the text tables raises TypeError naming the key."""
        with self.assertRaises(TypeError) as cm:
            await self.storage.set_private_value("ns", "the_key", {"a": 1}, profile="alice")
        self.assertIn("'the_key'", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, *ALL_TABLES), 0)

    async def test_wrong_types(self) -> None:
        """Wrong namespace, key, keys or binary types raise TypeError naming the argument."""
        calls = [
            (self.storage.get_privates, (42,), {}, "namespace"),
            (self.storage.get_privates, ("ns",), {"keys": "abc"}, "keys"),
            (self.storage.get_privates, ("ns",), {"keys": ["a", 1]}, "keys[1]"),
            (self.storage.get_privates, ("ns",), {"binary": "yes"}, "binary"),
            (self.storage.get_privates, ("ns",), {"profile": 1}, "profile"),
            (self.storage.set_private_value, ("ns", None, "v"), {}, "key"),
            (self.storage.del_private_value, ("ns", 3), {}, "key"),
            (self.storage.del_private_namespace, (None,), {}, "namespace"),
        ]
        for method, args, kwargs, culprit in calls:
            with self.assertRaises(TypeError) as cm:
                await method(*args, **kwargs)
            self.assertIn(culprit, str(cm.exception))

    async def test_unknown_profile(self) -> None:
        """Every method refuses an unknown profile with ProfileUnknownError, nothing stored."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.set_private_value("ns", "k", "v", profile="nobody")
        with self.assertRaises(ProfileUnknownError):
            await self.storage.get_privates("ns", profile="nobody")
        with self.assertRaises(ProfileUnknownError):
            await self.storage.del_private_value("ns", "k", profile="nobody")
        with self.assertRaises(ProfileUnknownError):
            await self.storage.del_private_namespace("ns", binary=True, profile="nobody")
        self.assertEqual(await count_rows(self.storage, *ALL_TABLES), 0)

    async def test_profile_deletion_cascades(self) -> None:
        """Deleting a profile deletes its private values (text and JSON), not the others'."""
        await self.storage.set_private_value("ns", "k", "v", profile="alice")
        await self.storage.set_private_value("ns", "k", [1], binary=True, profile="alice")
        await self.storage.set_private_value("ns", "k", "v", profile="bob")
        await self.storage.set_private_value("ns", "k", "v")
        await self.storage.delete_profile("alice")
        self.assertEqual(await count_rows(self.storage, PrivateInd, PrivateIndBin), 1)
        self.assertEqual(await self.storage.get_privates("ns", profile="bob"), {"k": "v"})
        self.assertEqual(await self.storage.get_privates("ns"), {"k": "v"})
