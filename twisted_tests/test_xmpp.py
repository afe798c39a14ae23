"""Client connections to a real Prosody: TLS policy, login, clear errors, no hangs,
automatic reconnection after a lost connection."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.interfaces import ISSLTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage.xmpp import (
    SatXMPPClient,
    TLSPolicyError,
    XMPPAuthError,
    XMPPConnectionError,
    XMPPConnectTimeout,
    is_loopback,
)
from twisted_tests.xmpp_servers import Account, ejabberd, free_port, prosody

TIMEOUT = 15.0  # generous bound on a connection to a loopback server
RETRY_BOUND = 60.0  # seconds on the client's clock past the first reconnection delay (~3 s)


class ConnectTests(TestCase):
    async def setUp(self) -> None:
        self.server = prosody()
        self.account = await self.server.create_account()

    def make_client(
        self, account: Account | None = None, password: str | None = None, **kwargs: object
    ) -> SatXMPPClient:
        """A client of ``account`` (the test's by default) to the test server."""
        account = account or self.account
        options = {"host": self.server.host, "port": self.server.port, "tls": "plaintext"}
        options.update(kwargs)
        client = SatXMPPClient(
            None, "test", account.full_jid(), password or account.password, **options
        )
        self.addCleanup(client.disconnect)
        return client

    async def test_plaintext_on_loopback(self) -> None:
        """tls = plaintext connects to a loopback server and binds the requested JID."""
        client = await self.make_client().connect(TIMEOUT)
        self.assertTrue(client.is_connected)
        self.assertEqual(client.jid, self.account.full_jid())
        self.assertFalse(ISSLTransport.providedBy(client.xmlstream.transport))

    async def test_starttls_with_ca_file(self) -> None:
        """tls = required negotiates STARTTLS, trusting the given CA file."""
        client = self.make_client(tls="required", ca_file=self.server.ca_file)
        await client.connect(TIMEOUT)
        self.assertTrue(ISSLTransport.providedBy(client.xmlstream.transport))

    async def test_untrusted_certificate(self) -> None:
        """A certificate the system store does not trust fails the connection clearly."""
        client = self.make_client(tls="required")
        with self.assertRaises(XMPPConnectionError) as caught:
            await client.connect(TIMEOUT)
        self.assertIn("TLS handshake failed", str(caught.exception))
        self.assertIn("certificate verify failed", str(caught.exception))

    async def test_bad_password(self) -> None:
        """A wrong password gives XMPPAuthError naming the JID and the server."""
        client = self.make_client(password="wrong")
        with self.assertRaises(XMPPAuthError) as caught:
            await client.connect(TIMEOUT)
        message = str(caught.exception)
        self.assertIn(self.account.full_jid().full(), message)
        self.assertIn(f"127.0.0.1:{self.server.port}", message)
        self.assertIn("not-authorized", message)
        self.assertFalse(client.running)

    async def test_unreachable_server(self) -> None:
        """Nobody listening: XMPPConnectionError 'connection refused', no retry loop."""
        port = free_port()
        client = self.make_client(port=port)
        with self.assertRaises(XMPPConnectionError) as caught:
            await client.connect(TIMEOUT)
        self.assertIn(f"127.0.0.1:{port}: connection refused", str(caught.exception))
        self.assertFalse(client.running)

    async def test_timeout(self) -> None:
        """A server that accepts but never answers gives XMPPConnectTimeout after timeout."""
        accepted: defer.Deferred[None] = defer.Deferred()

        class Silent(protocol.Protocol):
            def connectionMade(self) -> None:
                accepted.callback(None)

        factory = protocol.Factory.forProtocol(Silent)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        clock = task.Clock()
        client = self.make_client(port=listening.getHost().port, clock=clock)
        connecting = client.connect(30)
        await accepted
        clock.advance(30)
        with self.assertRaises(XMPPConnectTimeout) as caught:
            await connecting
        self.assertIn("no session after 30 s", str(caught.exception))

    async def test_disconnect_waits_for_close(self) -> None:
        """disconnect() fires once the connection is closed and the client stopped."""
        client = await self.make_client().connect(TIMEOUT)
        await client.disconnect()
        self.assertFalse(client.running)
        self.assertFalse(client.is_connected)
        self.assertEqual(client._connection.state, "disconnected")

    async def test_reconnect(self) -> None:
        """A disconnected client can connect again."""
        client = await self.make_client().connect(TIMEOUT)
        await client.disconnect()
        await client.connect(TIMEOUT)
        self.assertTrue(client.is_connected)

    async def test_disconnect_unconnected(self) -> None:
        """disconnect() on a client never connected fires at once."""
        await self.make_client().disconnect()


class ReconnectionTests(TestCase):
    """A session lost without disconnect() is reported and re-established."""

    async def setUp(self) -> None:
        self.server = prosody()
        self.account = await self.server.create_account()
        self.clock = task.Clock()  # reconnection delays
        self.client = SatXMPPClient(
            None,
            "test",
            self.account.full_jid(),
            self.account.password,
            host=self.server.host,
            port=self.server.port,
            tls="plaintext",
            clock=self.clock,
        )
        self.addCleanup(self.client.disconnect)
        self.lost = self.watch("on_session_lost")
        self.restored = self.watch("on_session_restored")
        self.refused = self.watch("on_reconnect_failed")
        await self.client.connect(TIMEOUT)

    def watch(self, callback: str) -> defer.Deferred[tuple[Any, ...]]:
        """A Deferred fired by the client's ``callback``, with its arguments."""
        fired: defer.Deferred[tuple[Any, ...]] = defer.Deferred()
        setattr(self.client, callback, lambda *args: fired.callback(args))
        return fired

    async def wait(self, d: defer.Deferred[Any]) -> Any:
        """``d``'s result, failing the test after TIMEOUT seconds."""
        return await d.addTimeout(TIMEOUT, reactor)

    async def lose_session(self) -> tuple[Failure, list[str]]:
        """Close the TCP connection under the client, as a network failure would.

        Returns once the loss is reported: its reason and the warnings logged.
        """
        with self.assertLogs("sat_storage.xmpp", "WARNING") as logs:
            self.client.xmlstream.transport.abortConnection()
            (reason,) = await self.wait(self.lost)
        return reason, logs.output

    async def test_loss_reported(self) -> None:
        """A dropped connection calls on_session_lost, is logged; the client keeps running."""
        reason, logged = await self.lose_session()
        self.assertIsInstance(reason, Failure)
        self.assertTrue(reason.check(error.ConnectionLost))
        self.assertIn("connection lost", logged[0])
        self.assertTrue(self.client.running)
        self.assertFalse(self.client.is_connected)

    async def test_reconnected(self) -> None:
        """After the reconnection delay, a new session: on_session_restored, same JID."""
        await self.lose_session()
        self.clock.advance(RETRY_BOUND)
        await self.wait(self.restored)
        self.assertTrue(self.client.is_connected)
        self.assertEqual(self.client.jid, self.account.full_jid())

    async def test_disconnect_is_not_a_loss(self) -> None:
        """disconnect() closes without on_session_lost and without a reconnection."""
        await self.client.disconnect()
        self.assertFalse(self.lost.called)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    async def test_disconnect_while_reconnecting(self) -> None:
        """disconnect() between attempts cancels the next one and fires at once."""
        await self.lose_session()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        await self.wait(self.client.disconnect())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.client.running)

    async def test_reconnection_refused(self) -> None:
        """A login refused on reconnection stops the client: on_reconnect_failed, no retry."""
        await self.lose_session()
        self.client.factory.authenticator.password = "changed meanwhile"
        with self.assertLogs("sat_storage.xmpp", "ERROR"):
            self.clock.advance(RETRY_BOUND)
            (failure,) = await self.wait(self.refused)
        self.assertIsInstance(failure, XMPPAuthError)
        self.assertIn("not-authorized", str(failure))
        self.assertFalse(self.client.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.restored.called)


class NoStartTLSTests(TestCase):
    async def test_server_without_starttls(self) -> None:
        """tls = required against a server offering no STARTTLS fails, naming the cause."""
        server = ejabberd()
        account = await server.create_account()
        client = SatXMPPClient(
            None, "test", account.full_jid(), account.password, server.host, server.port
        )
        self.addCleanup(client.disconnect)
        with self.assertRaises(XMPPConnectionError) as caught:
            await client.connect(TIMEOUT)
        self.assertIn("does not offer STARTTLS", str(caught.exception))


class PolicyTests(TestCase):
    def test_plaintext_refused_for_remote_host(self) -> None:
        """tls = plaintext is refused for a non-loopback server, before any network use."""
        with self.assertRaises(TLSPolicyError) as caught:
            SatXMPPClient(None, "p", JID("a@example.org/r"), "pw", "example.org", tls="plaintext")
        self.assertIn("'example.org'", str(caught.exception))

    def test_unknown_mode(self) -> None:
        """An unknown tls mode is refused, naming it."""
        with self.assertRaises(TLSPolicyError) as caught:
            SatXMPPClient(None, "p", JID("a@localhost/r"), "pw", "127.0.0.1", tls="maybe")
        self.assertIn("'maybe'", str(caught.exception))

    def test_missing_ca_file(self) -> None:
        """An unreadable CA file is refused, naming it."""
        with self.assertRaises(TLSPolicyError) as caught:
            SatXMPPClient(None, "p", JID("a@localhost/r"), "pw", ca_file="/nonexistent/ca.pem")
        self.assertIn("/nonexistent/ca.pem", str(caught.exception))

    def test_loopback_hosts(self) -> None:
        """localhost, 127.0.0.0/8 and ::1 are loopback; other hosts are not."""
        for host in ("localhost", "127.0.0.1", "127.1.2.3", "::1"):
            self.assertTrue(is_loopback(host), host)
        for host in ("example.org", "10.0.0.1", "localhost.example.org", "::"):
            self.assertFalse(is_loopback(host), host)
