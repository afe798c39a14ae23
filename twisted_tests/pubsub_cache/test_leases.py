"""Synchronisations owned across processes: owner tokens, start-up, held nodes.

Two hosts started on the same database stand for two processes sharing it (each
cache instance has its own owner token); the clients have no connection (what goes
to the network fails with "not connected"). Synchronisations against a real server
by two hosts are in test_leases_e2e.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

from sat_storage.plugins.plugin_xep_0277 import NS_MICROBLOG
from sat_storage.plugins.pubsub_cache import lease
from sat_storage.plugins.pubsub_cache.lease import Holder, SyncOwnedElsewhere
from twisted.internet import task
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage.host import Host
from sat_storage.models import SyncState
from twisted_tests.db import database_url
from twisted_tests.pubsub_cache.harness import completed_node, make_host, offline_client
from twisted_tests.pubsub_cache.helpers import atom_item, record_calls

SERVICE = JID("pubsub.example.org")
ELSEWHERE = "elsewhere.example:4242:cafe"  # a process of another host
LEASE = 300.0
LOGGER = "sat_storage.plugins.plugin_pubsub_cache"


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def local_token(pid: int) -> str:
    """An owner token of process ``pid`` of this host."""
    return f"{socket.gethostname()}:{pid}:test"


class OwnerTests(TestCase):
    """Owner tokens, and telling an owner that no longer runs (pure logic)."""

    def test_token(self) -> None:
        """A token names this host and process, and is unique."""
        token = lease.new_owner()
        self.addCleanup(lease.unregister, token)
        self.assertTrue(token.startswith(f"{socket.gethostname()}:{os.getpid()}:"))
        self.assertEqual(Holder(token, None).pid, os.getpid())
        other = lease.new_owner()
        self.addCleanup(lease.unregister, other)
        self.assertNotEqual(token, other)

    def test_running_instance(self) -> None:
        """An instance of this process that runs is not gone."""
        token = lease.new_owner()
        self.addCleanup(lease.unregister, token)
        self.assertFalse(lease.owner_gone(token))

    def test_stopped_instance(self) -> None:
        """An instance of this process that stopped is gone."""
        token = lease.new_owner()
        lease.unregister(token)
        self.assertTrue(lease.owner_gone(token))

    def test_exited_process(self) -> None:
        """A process of this host that exited is gone."""
        self.assertTrue(lease.owner_gone(local_token(dead_pid())))

    def test_running_process(self) -> None:
        """Another process of this host that runs is not gone."""
        self.assertFalse(lease.owner_gone(local_token(os.getppid())))

    def test_other_host(self) -> None:
        """A process of another host is never taken for gone (its lease must expire)."""
        self.assertFalse(lease.owner_gone(f"elsewhere.example:{dead_pid()}:x"))

    def test_unknown_form(self) -> None:
        """A token of another form is never taken for gone."""
        self.assertFalse(lease.owner_gone("no pid here"))
        self.assertIsNone(Holder("no pid here", None).pid)

    def test_describe(self) -> None:
        """A holder is described for people (process, host, end of the lease in UTC)."""
        holder = Holder(ELSEWHERE, 0.0)
        self.assertEqual(holder.describe(), "process 4242 on elsewhere.example")
        self.assertEqual(holder.lease_end(), "1970-01-01T00:00:00+00:00")
        self.assertEqual(
            holder.as_dict(),
            {"owner": ELSEWHERE, "host": "elsewhere.example", "pid": 4242, "lease_expires": 0.0},
        )


class LeaseTestCase(TestCase):
    """A database with alice's blog (one item); hosts started on it."""

    async def setUp(self) -> None:
        self.url = database_url(self)
        self.host = await self.start_host()
        self.cache = self.host.plugins["PUBSUB_CACHE"]
        self.storage = self.host.memory.storage
        self.alice = await offline_client(self.host, "alice")
        self.node = await completed_node(
            self.host, self.alice, SERVICE, NS_MICROBLOG, [atom_item("kept")], "xep-0277"
        )

    async def start_host(self, config: str = "", stop: bool = True) -> Host:
        """Another host (a process) on this test's database."""
        return await make_host(self, config, self.url, stop=stop)

    async def lease_to(self, owner: str, expires: float) -> float:
        """The blog is being synchronised by ``owner``, its lease ending at ``expires``
        (returned as stored)."""
        await self.storage.claim_pubsub_node_sync(self.node, owner, LEASE, now=expires - LEASE)
        return self.node.sync_lease_expires

    async def state(self, host: Host | None = None) -> tuple[Any, ...]:
        """(sync state, owner, item names) of the blog, as stored."""
        storage = (host or self.host).memory.storage
        node = await storage.get_pubsub_node(self.alice, SERVICE, NS_MICROBLOG, with_items=True)
        return node.sync_state, node.sync_owner, [item.name for item in node.items]


class StartTests(LeaseTestCase):
    """What a starting host does with nodes found IN_PROGRESS."""

    async def test_live_instance_left(self) -> None:
        """A live synchronisation of another running instance is left untouched."""
        await self.lease_to(self.cache.sync_lease.owner, time.time() + LEASE)
        other = await self.start_host()
        self.assertEqual(
            await self.state(other), (SyncState.IN_PROGRESS, self.cache.sync_lease.owner, ["kept"])
        )

    async def test_live_other_host_left(self) -> None:
        """A live lease of another host's process is left untouched."""
        await self.lease_to(ELSEWHERE, time.time() + LEASE)
        with self.assertLogs(LOGGER, "INFO") as logs:
            await self.start_host()
        self.assertIn("process 4242 on elsewhere.example: left alone", "\n".join(logs.output))
        self.assertEqual(await self.state(), (SyncState.IN_PROGRESS, ELSEWHERE, ["kept"]))

    async def test_live_local_process_left(self) -> None:
        """A live lease of another running process of this host is left untouched."""
        owner = local_token(os.getppid())
        await self.lease_to(owner, time.time() + LEASE)
        await self.start_host()
        self.assertEqual(await self.state(), (SyncState.IN_PROGRESS, owner, ["kept"]))

    async def test_expired_lease_reset(self) -> None:
        """A node whose lease has expired (its owner stopped renewing) is reset."""
        await self.lease_to(ELSEWHERE, time.time() - 1)
        with self.assertLogs(LOGGER, "WARNING") as logs:
            await self.start_host()
        self.assertIn("half-synchronised", logs.output[0])
        self.assertEqual(await self.state(), (None, None, []))

    async def test_exited_process_reset(self) -> None:
        """A live lease of a process of this host that has exited is reset at once."""
        pid = dead_pid()
        await self.lease_to(local_token(pid), time.time() + LEASE)
        with self.assertLogs(LOGGER, "WARNING") as logs:
            await self.start_host()
        self.assertIn(f"process {pid} on {socket.gethostname()} (gone)", logs.output[0])
        self.assertEqual(await self.state(), (None, None, []))

    async def test_stopped_instance_reset(self) -> None:
        """The lease of an instance of this process that stopped without releasing is reset."""
        first = await self.start_host(stop=False)
        owner = first.plugins["PUBSUB_CACHE"].sync_lease.owner
        await self.lease_to(owner, time.time() + LEASE)
        await first.stop()  # its instance is gone; the lease was not its to release
        with self.assertLogs(LOGGER, "WARNING"):
            await self.start_host()
        self.assertEqual(await self.state(), (None, None, []))


class HeldNodeTests(LeaseTestCase):
    """A node another process is synchronising (a live lease of another host)."""

    async def setUp(self) -> None:
        await super().setUp()
        self.expires = await self.lease_to(ELSEWHERE, time.time() + LEASE)

    async def test_request_not_synchronised(self) -> None:
        """A request goes to the network as usual; no synchronisation starts here."""
        attempts = record_calls(self, self.cache.runner, "attempt")
        with self.assertRaisesRegex(RuntimeError, "not connected"):
            await self.host.plugins["XEP-0060"].get_items(self.alice, SERVICE, NS_MICROBLOG)
        self.assertEqual((attempts, self.cache.syncs.keys()), ([], []))
        self.assertEqual(await self.state(), (SyncState.IN_PROGRESS, ELSEWHERE, ["kept"]))

    async def test_synchronise_refused(self) -> None:
        """synchronise() fails with SyncOwnedElsewhere naming the holder; nothing changes."""
        with self.assertRaises(SyncOwnedElsewhere) as caught:
            await self.cache.synchronise(self.alice, SERVICE, NS_MICROBLOG)
        self.assertEqual(caught.exception.holder, Holder(ELSEWHERE, self.expires))
        self.assertIn(
            "is being synchronised by process 4242 on elsewhere.example", str(caught.exception)
        )
        self.assertEqual(await self.state(), (SyncState.IN_PROGRESS, ELSEWHERE, ["kept"]))

    async def test_sync_holder(self) -> None:
        """sync_holder() tells who holds the node, and until when."""
        holder = await self.cache.sync_holder(self.alice, SERVICE, NS_MICROBLOG)
        self.assertEqual(
            {k: holder[k] for k in ("owner", "host", "pid", "lease_expires")},
            Holder(ELSEWHERE, self.expires).as_dict(),
        )
        self.assertIn("process 4242 on elsewhere.example", holder["description"])

    async def test_sync_holder_free(self) -> None:
        """sync_holder() is None for a node nobody else synchronises (or unknown)."""
        await self.storage.release_pubsub_node_sync(self.node, ELSEWHERE, SyncState.COMPLETED)
        self.assertIsNone(await self.cache.sync_holder(self.alice, SERVICE, NS_MICROBLOG))
        self.assertIsNone(await self.cache.sync_holder(self.alice, SERVICE, "unknown"))

    async def test_expired_lease_taken_over(self) -> None:
        """Once the lease has expired, a request starts a synchronisation here."""
        clock = task.Clock()
        clock.advance(self.expires)
        self.cache.clock = self.cache.syncs.clock = clock
        attempts = record_calls(self, self.cache.runner, "attempt")
        with self.assertRaisesRegex(RuntimeError, "not connected"):
            await self.host.plugins["XEP-0060"].get_items(self.alice, SERVICE, NS_MICROBLOG)
        self.assertEqual(len(attempts), 1)


class ResumeTests(LeaseTestCase):
    """At the profile's connection, a node reset at start is synchronised again only if
    it still needs it (the client has no connection: a resumed sync starts, then fails)."""

    async def setUp(self) -> None:
        await super().setUp()
        await self.lease_to(ELSEWHERE, time.time() - 1)  # reset by the next host
        with self.assertLogs(LOGGER, "WARNING"):
            other = await self.start_host()
        self.resumer = other.plugins["PUBSUB_CACHE"]
        self.attempts = record_calls(self, self.resumer.runner, "attempt")

    async def test_resumed(self) -> None:
        """A node still unsynchronised is synchronised again."""
        with self.assertLogs(LOGGER, "ERROR"):  # not connected
            await self.resumer.profile_connected(self.alice)
            state = await self.resumer.syncs.join(("alice", SERVICE.full(), NS_MICROBLOG))
        self.assertEqual((len(self.attempts), state), (1, SyncState.ERROR))

    async def test_failed_meanwhile(self) -> None:
        """A node whose synchronisation failed meanwhile (e.g. requested while the
        client was offline) is synchronised again."""
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.ERROR)
        with self.assertLogs(LOGGER, "ERROR"):  # not connected
            await self.resumer.profile_connected(self.alice)
            await self.resumer.syncs.join(("alice", SERVICE.full(), NS_MICROBLOG))
        self.assertEqual(len(self.attempts), 1)

    async def test_completed_meanwhile(self) -> None:
        """A node another process completed meanwhile is left as it is."""
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.COMPLETED)
        await self.resumer.profile_connected(self.alice)
        self.assertEqual((self.attempts, self.resumer.syncs.keys()), ([], []))

    async def test_no_sync_meanwhile(self) -> None:
        """A node set NO_SYNC meanwhile is left as it is."""
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.NO_SYNC)
        await self.resumer.profile_connected(self.alice)
        self.assertEqual((self.attempts, self.resumer.syncs.keys()), ([], []))

    async def test_held_elsewhere(self) -> None:
        """A node another live process synchronises meanwhile is left to it."""
        await self.lease_to(ELSEWHERE, time.time() + LEASE)
        with self.assertLogs(LOGGER, "INFO") as logs:
            await self.resumer.profile_connected(self.alice)
        self.assertIn("left to process 4242 on elsewhere.example", "\n".join(logs.output))
        self.assertEqual(self.attempts, [])
        self.assertEqual(await self.state(), (SyncState.IN_PROGRESS, ELSEWHERE, []))

    async def test_resumed_once(self) -> None:
        """A later connection of the profile does not resume it again."""
        await self.storage.update_pubsub_node_sync_state(self.node, SyncState.COMPLETED)
        await self.resumer.profile_connected(self.alice)
        await self.storage.update_pubsub_node_sync_state(self.node, None)
        await self.resumer.profile_connected(self.alice)
        self.assertEqual(self.attempts, [])


class ReleaseTests(LeaseTestCase):
    async def test_released_on_error(self) -> None:
        """A failed synchronisation ends ERROR with its lease released, no item kept."""
        with self.assertLogs(LOGGER, "WARNING"):
            state = await self.cache.synchronise(self.alice, SERVICE, NS_MICROBLOG)
        self.assertIs(state, SyncState.ERROR)
        self.assertEqual(await self.state(), (SyncState.ERROR, None, []))
        node = await self.storage.get_pubsub_node(self.alice, SERVICE, NS_MICROBLOG)
        self.assertIsNone(node.sync_lease_expires)


class SettingsTests(TestCase):
    async def test_lease_settings(self) -> None:
        """Lease duration and renewal interval come from the config."""
        host = await make_host(self, "[pubsub_cache]\nsync_lease = 90\nsync_lease_renewal = 15\n")
        cache = host.plugins["PUBSUB_CACHE"]
        self.assertEqual(
            (cache.settings.sync_lease, cache.settings.sync_lease_renewal), (90.0, 15.0)
        )

    async def test_defaults(self) -> None:
        """By default a lease lasts 300 s and is renewed every 60 s."""
        cache = (await make_host(self)).plugins["PUBSUB_CACHE"]
        self.assertEqual(
            (cache.settings.sync_lease, cache.settings.sync_lease_renewal), (300.0, 60.0)
        )

    async def test_renewal_not_shorter(self) -> None:
        """A renewal interval not shorter than the lease is refused, naming both."""
        with self.assertLogs("sat_storage.plugin_loader", "ERROR"):
            host = await make_host(
                self, "[pubsub_cache]\nsync_lease = 30\nsync_lease_renewal = 30\n"
            )
        error = str(host.plugin_errors["PUBSUB_CACHE"])
        self.assertIn("sync_lease_renewal", error)
        self.assertIn("sync_lease (30)", error)
