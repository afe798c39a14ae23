"""A plugin's own table through the storage's gateway (``run_txn``), on every engine.

Here (in the storage suite) so that it also runs under the asyncio reactor; the
start-up and migration behaviours are in twisted_tests/schemas/.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from twisted_tests.db import storage_with_profiles
from twisted_tests.schemas.helpers import install_example


class PluginTableTests(TestCase):
    """The example plugin's ``*_txn`` functions run by ``storage.run_txn``."""

    async def test_write_then_read(self) -> None:
        """Rows written in one transaction are read back in another, per profile."""
        install_example(self)
        from sat_notes import store

        storage = await storage_with_profiles(self, "alice", "bob")
        alice, bob = storage.get_profile_id("alice"), storage.get_profile_id("bob")
        first = await storage.run_txn("notes", store.add_note_txn, alice, "one", "body")
        await storage.run_txn("notes", store.add_note_txn, bob, "other")
        await storage.run_txn("notes", store.pin_note_txn, first)
        self.assertEqual(
            await storage.run_txn("notes", store.get_notes_txn, alice), [("one", "body", True)]
        )
        self.assertEqual(
            await storage.run_txn("notes", store.get_notes_txn, bob), [("other", "", False)]
        )
