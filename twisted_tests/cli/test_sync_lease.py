"""``cache sync`` on a node another process (here: of another host) is synchronising."""

from __future__ import annotations

import time
from types import SimpleNamespace

from sat_storage.models import SyncState
from twisted_tests.cli.test_xmpp import ITEMS, ProsodyCliTestCase
from twisted_tests.db import make_storage

ELSEWHERE = "elsewhere.example:4242:cafe"
LEASE = 600.0


class HeldNodeSyncTests(ProsodyCliTestCase):
    """The reader's node is leased to another host's process."""

    async def lease_to(self, owner: str, expires: float) -> None:
        """The node is being synchronised by ``owner`` until ``expires``."""
        storage = await make_storage(self, self.url)
        client = SimpleNamespace(profile="reader")
        node = await storage.get_pubsub_node(client, self.service, self.node, create=True)
        await storage.claim_pubsub_node_sync(node, owner, LEASE, now=expires - LEASE)
        await storage.close()

    async def owner(self) -> str | None:
        """The node's sync owner, as stored."""
        storage = await make_storage(self, self.url)
        client = SimpleNamespace(profile="reader")
        node = await storage.get_pubsub_node(client, self.service, self.node)
        await storage.close()
        return node.sync_owner

    async def test_held_elsewhere(self) -> None:
        """A live lease of another process: one line naming it, exit 2, node untouched."""
        await self.lease_to(ELSEWHERE, time.time() + LEASE)
        result = await self.cli("cache", "sync", self.service.full(), self.node, "-p", "reader")
        self.assertEqual(result.code, 2, str(result))
        lines = result.err.strip().splitlines()
        self.assertEqual(len(lines), 1, str(result))
        self.assertIn("is being synchronised by process 4242 on elsewhere.example", lines[0])
        self.assertIn("try again later", lines[0])
        self.assertEqual(result.out, "")
        self.assertEqual(await self.cached(), (SyncState.IN_PROGRESS, 0))
        self.assertEqual(await self.owner(), ELSEWHERE)

    async def test_expired_lease_taken_over(self) -> None:
        """Once the other process's lease has expired, the command synchronises the node."""
        await self.lease_to(ELSEWHERE, time.time() - 1)
        result = await self.cli(
            "--json", "cache", "sync", self.service.full(), self.node, "-p", "reader"
        )
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(await self.cached(), (SyncState.COMPLETED, ITEMS))
        self.assertIsNone(await self.owner())
