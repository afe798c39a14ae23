"""General and per-profile parameters."""

from twisted.trial.unittest import TestCase

from sat_storage.exceptions import ProfileUnknownError
from sat_storage.models import ParamGen, ParamInd
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.helpers import count_rows


class ParamsTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")

    async def test_gen_set_and_load(self) -> None:
        """General parameters set are loaded into the given dict, keyed by (category, name)."""
        await self.storage.set_gen_param("General", "lang", "fr")
        await self.storage.set_gen_param("Connection", "port", "5222")
        params = {("Other", "kept"): "yes"}
        await self.storage.load_gen_params(params)
        self.assertEqual(
            params,
            {("Other", "kept"): "yes", ("General", "lang"): "fr", ("Connection", "port"): "5222"},
        )

    async def test_gen_load_empty(self) -> None:
        """Loading general parameters from an empty table leaves the dict as it was."""
        params: dict = {}
        await self.storage.load_gen_params(params)
        self.assertEqual(params, {})

    async def test_gen_set_replaces(self) -> None:
        """Setting a general parameter twice keeps one row with the last value."""
        await self.storage.set_gen_param("General", "lang", "fr")
        await self.storage.set_gen_param("General", "lang", "en")
        params: dict = {}
        await self.storage.load_gen_params(params)
        self.assertEqual(params, {("General", "lang"): "en"})
        self.assertEqual(await count_rows(self.storage, ParamGen), 1)

    async def test_ind_set_and_get(self) -> None:
        """An individual parameter is read back for its profile only."""
        await self.storage.set_ind_param("Connection", "JabberID", "alice@example.org", "alice")
        self.assertEqual(
            await self.storage.get_ind_param("Connection", "JabberID", "alice"),
            "alice@example.org",
        )
        self.assertIsNone(await self.storage.get_ind_param("Connection", "JabberID", "bob"))

    async def test_ind_get_missing(self) -> None:
        """An individual parameter never set is None."""
        self.assertIsNone(await self.storage.get_ind_param("Connection", "Password", "alice"))

    async def test_ind_set_replaces(self) -> None:
        """Setting an individual parameter twice keeps one row with the last value."""
        await self.storage.set_ind_param("Connection", "Password", "old", "alice")
        await self.storage.set_ind_param("Connection", "Password", "new", "alice")
        self.assertEqual(await self.storage.get_ind_param("Connection", "Password", "alice"), "new")
        self.assertEqual(await count_rows(self.storage, ParamInd), 1)

    async def test_ind_load(self) -> None:
        """load_ind_params fills the dict with the profile's parameters only."""
        await self.storage.set_ind_param("Connection", "JabberID", "alice@example.org", "alice")
        await self.storage.set_ind_param("Connection", "Password", "secret", "alice")
        await self.storage.set_ind_param("Connection", "JabberID", "bob@example.org", "bob")
        params: dict = {}
        await self.storage.load_ind_params(params, "alice")
        self.assertEqual(
            params,
            {
                ("Connection", "JabberID"): "alice@example.org",
                ("Connection", "Password"): "secret",
            },
        )

    async def test_ind_load_empty(self) -> None:
        """A profile without parameters leaves the dict empty."""
        params: dict = {}
        await self.storage.load_ind_params(params, "bob")
        self.assertEqual(params, {})

    async def test_ind_values(self) -> None:
        """get_ind_param_values maps every profile that set the parameter to its value."""
        await self.storage.set_ind_param("General", "nick", "Alice", "alice")
        await self.storage.set_ind_param("General", "nick", "Bob", "bob")
        await self.storage.set_ind_param("General", "other", "x", "bob")
        self.assertEqual(
            await self.storage.get_ind_param_values("General", "nick"),
            {"alice": "Alice", "bob": "Bob"},
        )
        self.assertEqual(await self.storage.get_ind_param_values("General", "none"), {})

    async def test_unicode_and_large(self) -> None:
        """Unicode names and large unicode values round-trip unchanged."""
        value = "ça marche ✓ 日本語 🎉 " * 20_000
        await self.storage.set_gen_param("Général", "émoji 🎉", value)
        await self.storage.set_ind_param("Général", "émoji 🎉", value, "alice")
        params: dict = {}
        await self.storage.load_gen_params(params)
        self.assertEqual(params, {("Général", "émoji 🎉"): value})
        self.assertEqual(await self.storage.get_ind_param("Général", "émoji 🎉", "alice"), value)

    async def test_empty_string(self) -> None:
        """An empty string is a value of its own (not None)."""
        await self.storage.set_ind_param("General", "nick", "", "alice")
        self.assertEqual(await self.storage.get_ind_param("General", "nick", "alice"), "")

    async def test_unknown_profile(self) -> None:
        """Every per-profile method refuses an unknown profile with ProfileUnknownError."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.set_ind_param("General", "nick", "x", "nobody")
        with self.assertRaises(ProfileUnknownError):
            await self.storage.get_ind_param("General", "nick", "nobody")
        with self.assertRaises(ProfileUnknownError):
            await self.storage.load_ind_params({}, "nobody")
        self.assertEqual(await count_rows(self.storage, ParamInd), 0)

    async def test_wrong_types(self) -> None:
        """Non-text category, name or value raise TypeError naming the argument."""
        cases = [
            (("General", "nick", 42), "value"),
            (("General", None, "x"), "name"),
            ((b"General", "nick", "x"), "category"),
        ]
        for args, culprit in cases:
            with self.assertRaises(TypeError) as cm:
                await self.storage.set_gen_param(*args)
            self.assertIn(culprit, str(cm.exception))
            with self.assertRaises(TypeError) as cm:
                await self.storage.set_ind_param(*args, "alice")
            self.assertIn(culprit, str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            await self.storage.get_ind_param("General", "nick", None)
        self.assertIn("profile", str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            await self.storage.load_gen_params([])
        self.assertIn("params", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, ParamGen), 0)
        self.assertEqual(await count_rows(self.storage, ParamInd), 0)

    async def test_nul_refused(self) -> None:
        """A value with a NUL character is refused on every engine (PostgreSQL can't store it)."""
        with self.assertRaises(ValueError) as cm:
            await self.storage.set_gen_param("General", "nick", "a\x00b")
        self.assertIn("value", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, ParamGen), 0)

    async def test_profile_deletion_cascades(self) -> None:
        """Deleting a profile deletes its parameters, not the others'."""
        await self.storage.set_ind_param("General", "nick", "Alice", "alice")
        await self.storage.set_ind_param("General", "nick", "Bob", "bob")
        await self.storage.delete_profile("alice")
        self.assertEqual(await self.storage.get_ind_param_values("General", "nick"), {"bob": "Bob"})
        self.assertEqual(await count_rows(self.storage, ParamInd), 1)
