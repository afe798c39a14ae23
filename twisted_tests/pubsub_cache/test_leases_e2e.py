"""Two hosts (two processes' worth: own storage, own cache instance and owner token) on
one database, synchronising nodes of a real Prosody.

A synchronisation is held in the middle (its first page request waits for the test)
to look at what the other host does meanwhile.
"""

from __future__ import annotations

from typing import Any

from sat_storage.plugins.pubsub_cache.lease import SyncOwnedElsewhere
from twisted.internet import defer, task

from sat_storage.host import Host
from sat_storage.models import SyncState
from twisted_tests.db import database_url, make_storage
from twisted_tests.pubsub_cache.e2e import ServerTestCase, ids
from twisted_tests.pubsub_cache.harness import make_host
from twisted_tests.pubsub_cache.helpers import record_calls
from twisted_tests.xmpp_servers import prosody

ITEMS = 12
ELSEWHERE = "elsewhere.example:4242:cafe"  # a process of another host


class TwoHostsTests(ServerTestCase):
    """``self.host`` (with ``writer`` and ``reader``) and, when started, a second host
    on the same database, where the same ``reader`` profile connects."""

    server_factory = staticmethod(prosody)

    async def setUp(self) -> None:
        self.db_url = database_url(self)
        await super().setUp()
        await self.create_node(count=ITEMS)
        self.key = (self.reader.profile, self.service.full(), self.node)

    async def start_host(self, db_url: str | None = None) -> Host:
        return await make_host(self, self.config, db_url or self.db_url)

    async def second_host(self) -> tuple[Any, Any]:
        """The second host's cache, and its client of the reader profile."""
        host = await self.start_host()
        return host.plugins["PUBSUB_CACHE"], await host.connect(self.reader.profile)

    async def held_sync(self, clock: task.Clock | None = None) -> defer.Deferred[None]:
        """A request starting a sync of the node, held before its first page request.

        ``clock``: the cache's time from now on. Returns what lets the sync go on.
        """
        if clock is not None:
            self.cache.clock = self.cache.syncs.clock = clock
        waiting, go_on = self.hold_first_page(self.cache)
        await self.get(max_items=1)
        await waiting
        return go_on

    async def lease(self, cache: Any = None) -> tuple[SyncState | None, str | None, int]:
        """(sync state, owner, items) of the node, as stored (read by ``cache``'s host)."""
        storage = (cache or self.cache).host.memory.storage
        node = await storage.get_pubsub_node(self.reader, self.service, self.node, with_items=True)
        return node.sync_state, node.sync_owner, len(node.items)

    async def set_state_elsewhere(self, state: SyncState | None) -> None:
        """Set the node's state by force from another storage (an admin's command)."""
        storage = await make_storage(self, self.db_url)
        node = await storage.get_pubsub_node(self.reader, self.service, self.node)
        await storage.update_pubsub_node_sync_state(node, state)
        await storage.close()

    async def test_second_start_leaves_live_sync(self) -> None:
        """A host starting while another synchronises a node leaves that sync alone;
        it completes, releases the node, and the second host reads it from the cache."""
        go_on = await self.held_sync()
        other, other_reader = await self.second_host()
        self.assertEqual(
            await self.lease(), (SyncState.IN_PROGRESS, self.cache.sync_lease.owner, 0)
        )
        go_on.callback(None)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual(await self.lease(), (SyncState.COMPLETED, None, ITEMS))
        sent = self.count_iqs(other_reader)
        items, _ = await other.host.plugins["XEP-0060"].get_items(
            other_reader, self.service, self.node, max_items=3
        )
        self.assertEqual((ids(items), sent), ([f"item-{i:03d}" for i in range(9, 12)], []))

    async def test_one_sync_for_both(self) -> None:
        """Both hosts request an unsynchronised node at once: one of them synchronises it."""
        other, other_reader = await self.second_host()
        owned = record_calls(self, self.cache.runner, "run_claimed")
        owned_other = record_calls(self, other.runner, "run_claimed")
        answers = await defer.gatherResults(
            [
                defer.ensureDeferred(self.get(max_items=2)),
                defer.ensureDeferred(
                    other.host.plugins["XEP-0060"].get_items(
                        other_reader, self.service, self.node, max_items=2
                    )
                ),
            ]
        )
        self.assertEqual([ids(items) for items, _ in answers], [["item-010", "item-011"]] * 2)
        ends = [d for d in (c.syncs.join(self.key) for c in (self.cache, other)) if d is not None]
        await defer.DeferredList(ends, consumeErrors=True)
        self.assertEqual(len(owned) + len(owned_other), 1)
        self.assertEqual(await self.lease(), (SyncState.COMPLETED, None, ITEMS))

    async def test_expired_lease_taken_over(self) -> None:
        """A node held by a process that stopped renewing is left alone until its lease
        expires (task.Clock), then taken over and synchronised on request."""
        clock = task.Clock()
        clock.advance(1000)
        self.cache.clock = self.cache.syncs.clock = clock
        node = await self.host.memory.storage.get_pubsub_node(
            self.reader, self.service, self.node, create=True,
            create_kwargs={"analyser": "xep-0277", "type_": "blog"},
        )  # fmt: skip
        await self.host.memory.storage.claim_pubsub_node_sync(node, ELSEWHERE, 60, now=1000)
        owned = record_calls(self, self.cache.runner, "run_claimed")
        await self.get(max_items=1)
        self.assertEqual((owned, await self.lease()), ([], (SyncState.IN_PROGRESS, ELSEWHERE, 0)))
        clock.advance(60)
        await self.get(max_items=1)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual((len(owned), await self.lease()), (1, (SyncState.COMPLETED, None, ITEMS)))

    async def test_heartbeat_renews(self) -> None:
        """While a synchronisation runs, its lease is renewed every renewal interval."""
        clock = task.Clock()
        renewals = record_calls(self, self.cache.sync_lease, "renew")
        go_on = await self.held_sync(clock)
        self.assertEqual(
            (await self.cached_node()).sync_lease_expires, self.cache.settings.sync_lease
        )
        clock.advance(self.cache.settings.sync_lease_renewal)
        await renewals[-1]
        expected = self.cache.settings.sync_lease_renewal + self.cache.settings.sync_lease
        self.assertEqual((await self.cached_node()).sync_lease_expires, expected)
        go_on.callback(None)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_lost_lease_stops_heartbeat(self) -> None:
        """A sync whose lease was taken from it (state set by another process) stops at
        its next renewal, touching nothing more."""
        clock = task.Clock()
        renewals = record_calls(self, self.cache.sync_lease, "renew")
        await self.held_sync(clock)
        await self.set_state_elsewhere(SyncState.ERROR)
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING") as logs:
            clock.advance(self.cache.settings.sync_lease_renewal)
            await renewals[-1]
            self.assertIsNone(await self.synchronised())
        self.assertIn("lease lost", logs.output[0])
        self.assertEqual(await self.lease(), (SyncState.ERROR, None, 0))

    async def test_lost_lease_writes_nothing(self) -> None:
        """A page of a sync that lost its lease (an admin's purge meanwhile) is not
        written, and the node is not marked COMPLETED."""
        go_on = await self.held_sync()
        await self.set_state_elsewhere(None)
        with self.assertLogs("sat_storage.plugins.plugin_pubsub_cache", "WARNING") as logs:
            go_on.callback(None)
            self.assertIsNone(await self.synchronised())
        self.assertIn("lease lost before a page was written", "\n".join(logs.output))
        self.assertEqual(await self.lease(), (None, None, 0))

    async def test_released_on_stop(self) -> None:
        """A host stopping during a sync releases the node (nothing kept, no owner), so
        that another host synchronises it at once."""
        await self.held_sync()
        await self.host.stop()
        other, other_reader = await self.second_host()
        self.assertEqual(await self.lease(other), (None, None, 0))
        state = await other.synchronise(other_reader, self.service, self.node, resync=False)
        self.assertIs(state, SyncState.COMPLETED)
        self.assertEqual(await self.lease(other), (SyncState.COMPLETED, None, ITEMS))

    async def test_retry_keeps_claim(self) -> None:
        """A sync cut at its deadline keeps the node until its retry has claimed it again:
        the other host (same clock) finds it held in between; the retry completes it."""
        clock = task.Clock()
        other, other_reader = await self.second_host()
        other.clock = other.syncs.clock = clock
        self.cache.syncs.deadline = (
            self.cache.settings.sync_lease_renewal / 2
        )  # no renewal before it
        between: list[Any] = []
        attempt = self.cache.runner.attempt

        async def attempting(client: Any, node: Any, sync_task: Any, states: Any = None) -> Any:
            if sync_task.attempt == 2:  # before its claim: the other host tries its chance
                between.append(await self.lease())
                try:
                    await other.synchronise(other_reader, self.service, self.node)
                except SyncOwnedElsewhere as e:
                    between.append(e.holder.owner)
            return await attempt(client, node, sync_task, states)

        self.patch(self.cache.runner, "attempt", attempting)
        owned = record_calls(self, self.cache.runner, "run_claimed")
        owned_other = record_calls(self, other.runner, "run_claimed")
        await self.held_sync(clock)  # the first attempt's page request never leaves
        with self.assertLogs("sat_storage.plugins.pubsub_cache.sync", "WARNING"):
            clock.advance(self.cache.syncs.deadline)
        self.assertEqual(await self.synchronised(), SyncState.COMPLETED)
        held = (SyncState.IN_PROGRESS, self.cache.sync_lease.owner, 0)
        self.assertEqual(between, [held, self.cache.sync_lease.owner])
        self.assertEqual((len(owned), owned_other), (2, []))
        self.assertEqual(await self.lease(), (SyncState.COMPLETED, None, ITEMS))
