"""The reference host: start/stop with real SQLite/PostgreSQL and fake plugin
distributions; profiles connected to a real Prosody (hooks, lost connections);
disco#info feature checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.interfaces import ISSLTransport
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from zope.interface.verify import verifyObject

from sat_storage.config import ConfigError
from sat_storage.exceptions import FeatureNotFound, ProfileNotConnected, ProfileUnknownError
from sat_storage.host import Host
from sat_storage.interfaces import IHost
from sat_storage.xmpp import XMPPAuthError, XMPPConnectionError
from twisted_tests.db import database_url
from twisted_tests.fake_plugins import fake_distribution, plugin_source
from twisted_tests.xmpp_servers import Account, free_port, prosody, unique_name

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
TIMEOUT = 15.0  # generous bound on an exchange with the loopback server
RETRY_BOUND = 60.0  # seconds on the host's clock past the first reconnection delay (~3 s)

#: A plugin with a handler and every hook, recording what happens in host.events.
HOOKED = plugin_source(
    "HOOKED",
    handler="yes",
    body="""
def get_handler(self, client):
    from wokkel.subprotocols import XMPPHandler

    events = self.host.events

    class Handler(XMPPHandler):
        def connectionInitialized(self):
            events.append(("handler initialized", client.profile))

    return Handler()

async def profile_connecting(self, client):
    self.host.events.append(("connecting", client.profile, client.is_connected))

def profile_connected(self, client):
    self.host.events.append(("connected", client.profile, client.is_connected))

def profile_disconnected(self, client):
    self.host.events.append(("disconnected", client.profile))

def stop(self):
    self.host.events.append(("stop", "HOOKED"))
""",
)


#: A plugin whose stop hook reads the database.
READS_AT_STOP = plugin_source(
    "READS_AT_STOP",
    body="""
async def stop(self):
    db = self.host.memory.storage.db
    one = await db.run_with_connection(lambda c: c.exec_driver_sql("SELECT 1").scalar())
    self.host.events.append(("stop read", one))
""",
)


class ShutdownReactor:
    """The reactor, with ``shutdown`` triggers of its own that :meth:`shut_down` fires
    as the reactor does: every ``before`` trigger at once, awaited, then ``during``."""

    def __init__(self) -> None:
        self.triggers: dict[int, tuple[str, Any]] = {}
        self._next = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)

    def addSystemEventTrigger(self, phase: str, event: str, fn: Any, *args: Any) -> int:
        assert event == "shutdown", event
        self._next += 1
        self.triggers[self._next] = (phase, lambda: fn(*args))
        return self._next

    def removeSystemEventTrigger(self, handle: int) -> None:
        del self.triggers[handle]

    async def shut_down(self) -> None:
        """Fire the shutdown triggers."""
        for phase in ("before", "during", "after"):
            called = [call for when, call in list(self.triggers.values()) if when == phase]
            self.triggers = {k: v for k, v in self.triggers.items() if v[0] != phase}
            await defer.gatherResults([defer.maybeDeferred(call) for call in called])


class EventLog(list):
    """A list of events whose appends can be awaited."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: list[tuple[tuple[Any, ...], int, defer.Deferred[None]]] = []

    def append(self, event: tuple[Any, ...]) -> None:
        super().append(event)
        for waiter in list(self.waiters):
            wanted, count, d = waiter
            if self.count(wanted) >= count:
                self.waiters.remove(waiter)
                d.callback(None)

    def when(self, event: tuple[Any, ...], count: int = 1) -> defer.Deferred[None]:
        """Fires once ``event`` was appended ``count`` times (fails after TIMEOUT s)."""
        d: defer.Deferred[None] = defer.Deferred()
        if self.count(event) >= count:
            d.callback(None)
        else:
            self.waiters.append((event, count, d))
        return d.addTimeout(TIMEOUT, reactor)


class RecordingHost(Host):
    """The host, plus the lists the fake plugins write to."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.load_order: list[str] = []
        self.events = EventLog()


class HostTestCase(TestCase):
    def write_config(self, text: str) -> Path:
        """A config file holding ``text``."""
        path = Path(self.mktemp())
        path.write_text(text)
        return path

    async def make_host(
        self,
        plugins: dict[str, str] | None = None,
        config: str = "[xmpp]\ntls = plaintext\n",
        **kwargs: Any,
    ) -> RecordingHost:
        """A started host on a fresh database with only ``plugins``, stopped at cleanup.

        ``kwargs`` go to the host (``clock``, ``reactor``).
        """
        path = fake_distribution(self, plugins or {})
        host = RecordingHost(
            self.write_config(config), database_url(self), plugin_path=[path], **kwargs
        )
        await host.start()
        self.addCleanup(host.stop)
        return host


class StartStopTests(HostTestCase):
    async def test_start(self) -> None:
        """start() initialises the storage and loads the plugins in dependency order."""
        host = await self.make_host({"A": plugin_source("A", ["B"]), "B": plugin_source("B")})
        self.assertEqual(host.load_order, ["B", "A"])
        self.assertEqual(sorted(host.plugins), ["A", "B"])
        self.assertEqual(host.memory.storage.get_profiles_list(), [])
        self.assertFalse(host.memory.storage.closed)

    async def test_provides_ihost(self) -> None:
        """The host provides IHost, what plugins rely on."""
        self.assertTrue(verifyObject(IHost, await self.make_host()))

    async def test_config_get(self) -> None:
        """memory.config_get reads the config file, with defaults for what is absent."""
        host = await self.make_host(config="[pubsub]\npubsub_cache_strategy = no_cache\n")
        self.assertEqual(host.memory.config_get("pubsub", "pubsub_cache_strategy"), "no_cache")
        self.assertEqual(host.memory.config_get("pubsub", "absent", "dflt"), "dflt")

    async def test_broken_plugin_isolated(self) -> None:
        """A plugin failing to load is reported in plugin_errors; the host still starts."""
        with self.assertLogs("sat_storage.plugin_loader", "ERROR"):
            host = await self.make_host(
                {"BAD": "raise ImportError('boom')\n", "OK": plugin_source("OK")}
            )
        self.assertEqual(list(host.plugins), ["OK"])
        self.assertIn("boom", str(host.plugin_errors["BAD"]))

    async def test_stops_at_reactor_shutdown(self) -> None:
        """The reactor's shutdown stops the host: its plugins' stop hooks still use the
        storage, which is closed last."""
        shutdown = ShutdownReactor()
        host = await self.make_host({"READS_AT_STOP": READS_AT_STOP}, reactor=shutdown)
        await shutdown.shut_down()
        self.assertEqual(host.events, [("stop read", 1)])
        self.assertTrue(host.memory.storage.closed)

    async def test_stop_removes_shutdown_trigger(self) -> None:
        """A stopped host leaves no shutdown trigger behind (nor does its storage)."""
        shutdown = ShutdownReactor()
        host = await self.make_host(reactor=shutdown)
        self.assertEqual(len(shutdown.triggers), 1)
        await host.stop()
        self.assertEqual(shutdown.triggers, {})

    async def test_concurrent_stops(self) -> None:
        """A stop() called while the host stops waits for that stop; the hooks run once."""
        host = await self.make_host({"READS_AT_STOP": READS_AT_STOP})
        first, second = host.stop(), host.stop()
        self.assertFalse(second.called)  # the hook's read is on its way
        await defer.gatherResults([first, second])
        self.assertEqual(host.events, [("stop read", 1)])
        self.assertTrue(host.memory.storage.closed)

    async def test_stop(self) -> None:
        """stop() runs the plugins' stop hooks and closes the storage; twice is harmless."""
        host = await self.make_host({"HOOKED": HOOKED})
        await host.stop()
        await host.stop()
        self.assertEqual(host.events, [("stop", "HOOKED")])
        self.assertTrue(host.memory.storage.closed)

    async def test_start_twice(self) -> None:
        """Starting a started host is refused."""
        host = await self.make_host()
        with self.assertRaises(RuntimeError):
            await host.start()

    def test_missing_config_file(self) -> None:
        """An explicit config path that does not exist is a ConfigError naming it."""
        with self.assertRaises(ConfigError) as caught:
            Host("/nonexistent/sat.conf")
        self.assertIn("/nonexistent/sat.conf", str(caught.exception))


class ProsodyHostTestCase(HostTestCase):
    """Hosts whose profiles connect to the test Prosody, with an account per test."""

    async def setUp(self) -> None:
        self.server = prosody()
        self.account = await self.server.create_account()

    async def add_profile(
        self, host: Host, account: Account, password: str | None = None, port: int | None = None
    ) -> str:
        """A new profile whose Connection params point at the test server."""
        storage = host.memory.storage
        profile = unique_name("profile")
        await storage.create_profile(profile)
        params = {
            "JabberID": account.jid.full(),
            "Password": password or account.password,
            "Force server": self.server.host,
            "Force port": str(port or self.server.port),
        }
        for name, value in params.items():
            await storage.set_ind_param("Connection", name, value, profile)
        return profile

    async def connected_host(self, **kwargs: Any) -> tuple[RecordingHost, str]:
        """A host with one profile of the test's account, connected."""
        host = await self.make_host(**kwargs)
        profile = await self.add_profile(host, self.account)
        await host.connect(profile)
        return host, profile


class ConnectTests(ProsodyHostTestCase):
    async def test_connect(self) -> None:
        """connect() gives the profile's client, bound to its JID, with the host attached."""
        host, profile = await self.connected_host()
        client = host.get_client(profile)
        self.assertEqual(client.profile, profile)
        self.assertIs(client.host_app, host)
        self.assertEqual(client.jid.userhostJID(), self.account.jid)
        self.assertTrue(client.jid.resource)
        self.assertTrue(client.is_connected)

    async def test_connect_starttls(self) -> None:
        """With [xmpp] tls = required and ca_file, the connection uses STARTTLS."""
        host, profile = await self.connected_host(
            config=f"[xmpp]\ntls = required\nca_file = {self.server.ca_file}\n"
        )
        self.assertTrue(ISSLTransport.providedBy(host.get_client(profile).xmlstream.transport))

    async def test_connect_twice(self) -> None:
        """Concurrent and repeated connects of one profile give the same client."""
        host = await self.make_host()
        profile = await self.add_profile(host, self.account)
        first, second = await defer.gatherResults([host.connect(profile), host.connect(profile)])
        self.assertIs(first, second)
        self.assertIs(await host.connect(profile), first)

    async def test_hooks_and_handler(self) -> None:
        """Handlers attach; connecting/connected/disconnected hooks run in that order."""
        host = await self.make_host({"HOOKED": HOOKED})
        profile = await self.add_profile(host, self.account)
        await host.connect(profile)
        await host.disconnect(profile)
        self.assertEqual(
            host.events,
            [
                ("connecting", profile, False),
                ("handler initialized", profile),
                ("connected", profile, True),
                ("disconnected", profile),
            ],
        )

    async def test_disconnect(self) -> None:
        """After disconnect() the profile has no client and the connection is closed."""
        host, profile = await self.connected_host()
        client = host.get_client(profile)
        await host.disconnect(profile)
        self.assertFalse(client.is_connected)
        self.assertRaises(ProfileNotConnected, host.get_client, profile)

    async def test_stop_disconnects(self) -> None:
        """stop() disconnects the connected profiles."""
        host, profile = await self.connected_host()
        client = host.get_client(profile)
        await host.stop()
        self.assertFalse(client.is_connected)
        self.assertEqual(host.clients, {})

    async def test_bad_password(self) -> None:
        """A wrong password is an XMPPAuthError; plugins see the profile disconnected."""
        host = await self.make_host({"HOOKED": HOOKED})
        profile = await self.add_profile(host, self.account, password="wrong")
        with self.assertRaises(XMPPAuthError) as caught:
            await host.connect(profile)
        self.assertIn(self.account.jid.userhost(), str(caught.exception))
        self.assertEqual(host.events[-1], ("disconnected", profile))
        self.assertRaises(ProfileNotConnected, host.get_client, profile)

    async def test_password_argument(self) -> None:
        """A password given to connect() wins over the stored one."""
        host = await self.make_host()
        profile = await self.add_profile(host, self.account, password="stale")
        client = await host.connect(profile, password=self.account.password)
        self.assertTrue(client.is_connected)

    async def test_unreachable_server(self) -> None:
        """Nobody listening on the forced port: XMPPConnectionError naming host and port."""
        host = await self.make_host()
        port = free_port()
        profile = await self.add_profile(host, self.account, port=port)
        with self.assertRaises(XMPPConnectionError) as caught:
            await host.connect(profile)
        self.assertIn(f"127.0.0.1:{port}: connection refused", str(caught.exception))

    async def test_unknown_profile(self) -> None:
        """Connecting a profile that does not exist is ProfileUnknownError."""
        host = await self.make_host()
        with self.assertRaises(ProfileUnknownError):
            await host.connect("nobody")

    async def test_missing_jid(self) -> None:
        """A profile without a JabberID param is refused, naming the profile and param."""
        host = await self.make_host()
        await host.memory.storage.create_profile("nojid")
        with self.assertRaises(ValueError) as caught:
            await host.connect("nojid")
        self.assertIn("'nojid' has no ('Connection', 'JabberID')", str(caught.exception))


class ConnectionLossTests(ProsodyHostTestCase):
    """A connected profile whose connection drops (not host.disconnect)."""

    async def setUp(self) -> None:
        await super().setUp()
        self.clock = task.Clock()  # reconnection delays
        self.host = await self.make_host({"HOOKED": HOOKED}, clock=self.clock)
        self.profile = await self.add_profile(self.host, self.account)
        self.client = await self.host.connect(self.profile)

    async def lose_session(self) -> None:
        """Drop the client's TCP connection; returns once the plugins were told."""
        with self.assertLogs("sat_storage.xmpp", "WARNING"):
            self.client.xmlstream.transport.abortConnection()
            await self.host.events.when(("disconnected", self.profile))

    async def test_loss_runs_disconnected_hooks(self) -> None:
        """profile_disconnected runs; the client stays the profile's, reconnecting."""
        await self.lose_session()
        self.assertEqual(self.host.events[-1], ("disconnected", self.profile))
        self.assertIs(self.host.get_client(self.profile), self.client)
        self.assertFalse(self.client.is_connected)
        self.assertTrue(self.client.running)

    async def test_reconnection_runs_connected_hooks(self) -> None:
        """Once reconnected: presence sent again, then profile_connected (not connecting)."""
        presences = []
        available = self.client.presence.available
        self.client.presence.available = lambda *a, **kw: presences.append(available(*a, **kw))
        await self.lose_session()
        self.clock.advance(RETRY_BOUND)
        await self.host.events.when(("connected", self.profile, True), count=2)
        p = self.profile
        self.assertEqual(
            self.host.events,
            [
                ("connecting", p, False),
                ("handler initialized", p),
                ("connected", p, True),
                ("disconnected", p),
                ("handler initialized", p),
                ("connected", p, True),
            ],
        )
        self.assertEqual(len(presences), 1)
        self.assertTrue(self.client.is_connected)

    async def test_disconnect_after_loss(self) -> None:
        """host.disconnect() while reconnecting: no further attempt, hooks not repeated."""
        await self.lose_session()
        await self.host.disconnect(self.profile)
        self.assertEqual(self.host.events.count(("disconnected", self.profile)), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.host.clients, {})

    async def test_reconnection_refused(self) -> None:
        """A login refused on reconnection disconnects the profile, logged; hooks once."""
        await self.lose_session()
        self.client.factory.authenticator.password = "changed meanwhile"
        handled: defer.Deferred[Any] = defer.Deferred()
        on_failed = self.client.on_reconnect_failed
        self.client.on_reconnect_failed = lambda e: on_failed(e).chainDeferred(handled)
        with self.assertLogs("sat_storage", "WARNING") as logs:
            self.clock.advance(RETRY_BOUND)
            await handled.addTimeout(TIMEOUT, reactor)
        self.assertIn("not-authorized", "\n".join(logs.output))
        self.assertRaises(ProfileNotConnected, self.host.get_client, self.profile)
        self.assertEqual(self.host.events.count(("disconnected", self.profile)), 1)
        self.assertFalse(self.client.running)


class CheckFeaturesTests(ProsodyHostTestCase):
    async def count_disco_requests(self, host: Host, profile: str) -> list[JID]:
        """Record the disco#info requests the client sends (still sent to the server)."""
        disco = host.get_client(profile).disco_client
        sent: list[JID] = []
        request_info = disco.requestInfo

        def counting(entity: JID, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
            sent.append(entity)
            return request_info(entity, *args, **kwargs)

        disco.requestInfo = counting
        return sent

    async def test_feature_present(self) -> None:
        """check_features succeeds when the pubsub service has the namespace."""
        host, profile = await self.connected_host()
        client = host.get_client(profile)
        await host.check_features(client, [NS_PUBSUB], self.server.pubsub_service)

    async def test_feature_missing(self) -> None:
        """A missing feature is FeatureNotFound naming the feature and the service."""
        host, profile = await self.connected_host()
        client = host.get_client(profile)
        with self.assertRaises(FeatureNotFound) as caught:
            await host.check_features(
                client, [NS_PUBSUB, "urn:example:nope"], self.server.pubsub_service
            )
        message = str(caught.exception)
        self.assertIn("pubsub.localhost lacks feature(s) urn:example:nope", message)
        self.assertNotIn(NS_PUBSUB + ",", message)

    async def test_default_service_is_server(self) -> None:
        """Without a service, the client's server is asked."""
        host, profile = await self.connected_host()
        sent = await self.count_disco_requests(host, profile)
        await host.check_features(host.get_client(profile), ["urn:xmpp:ping"])
        self.assertEqual(sent, [JID("localhost")])

    async def test_cached(self) -> None:
        """A second check of the same service is answered from the cache."""
        host, profile = await self.connected_host()
        client = host.get_client(profile)
        sent = await self.count_disco_requests(host, profile)
        service = self.server.pubsub_service
        await defer.gatherResults(
            [host.check_features(client, [NS_PUBSUB], service) for _ in range(2)]
        )
        await host.check_features(client, [NS_PUBSUB + "#publish"], service)
        self.assertEqual(sent, [service])

    async def test_unknown_service(self) -> None:
        """disco#info on a service that does not exist fails (and is not cached)."""
        host, profile = await self.connected_host()
        client = host.get_client(profile)
        sent = await self.count_disco_requests(host, profile)
        nowhere = JID("nowhere.localhost")
        for _ in range(2):
            with self.assertRaises(StanzaError):
                await host.check_features(client, [NS_PUBSUB], nowhere)
        self.assertEqual(sent, [nowhere, nowhere])
