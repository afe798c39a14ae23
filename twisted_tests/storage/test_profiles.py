"""Profiles and components."""

from twisted.trial.unittest import TestCase

from sat_storage.exceptions import ConflictError, NotFound, ProfileUnknownError
from twisted_tests.db import make_storage


class ProfilesTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await make_storage(self)

    async def test_create_and_list(self) -> None:
        """A created profile is listed and known, in memory and after a reload."""
        await self.storage.create_profile("alice")
        await self.storage.create_profile("bob")
        self.assertEqual(sorted(self.storage.get_profiles_list()), ["alice", "bob"])
        self.assertTrue(self.storage.has_profile("alice"))
        profiles, _ = await self.storage.db.run(self.storage.load_profiles_txn)
        self.assertEqual(sorted(profiles), ["alice", "bob"])

    async def test_duplicate(self) -> None:
        """Creating an existing profile raises ConflictError."""
        await self.storage.create_profile("alice")
        with self.assertRaises(ConflictError):
            await self.storage.create_profile("alice")

    async def test_component(self) -> None:
        """A component profile keeps its entry point; a client profile has none."""
        await self.storage.create_profile("comp", component_ep="file_sharing")
        await self.storage.create_profile("client")
        self.assertTrue(self.storage.profile_is_component("comp"))
        self.assertFalse(self.storage.profile_is_component("client"))
        self.assertEqual(self.storage.get_entry_point("comp"), "file_sharing")
        with self.assertRaises(NotFound):
            self.storage.get_entry_point("client")

    async def test_delete(self) -> None:
        """A deleted profile is gone; deleting an unknown one raises ProfileUnknownError."""
        await self.storage.create_profile("alice")
        await self.storage.delete_profile("alice")
        self.assertFalse(self.storage.has_profile("alice"))
        with self.assertRaises(ProfileUnknownError):
            await self.storage.delete_profile("alice")

    async def test_bad_name(self) -> None:
        """A profile name that is not a non-empty string is refused."""
        with self.assertRaises(TypeError):
            await self.storage.create_profile(42)
        with self.assertRaises(ValueError):
            await self.storage.create_profile("  ")
        self.assertEqual(self.storage.get_profiles_list(), [])

    async def test_initialise_twice(self) -> None:
        """A second initialise() of an open storage is refused; the storage keeps working."""
        with self.assertRaisesRegex(RuntimeError, "already initialised"):
            await self.storage.initialise()
        await self.storage.create_profile("alice")
        self.assertTrue(self.storage.has_profile("alice"))
