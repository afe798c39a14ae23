"""XMPP client connections: wokkel's ``XMPPClient`` with a TLS policy and a clear connect.

:class:`SatXMPPClient` is what plugins get as ``client``: a wokkel ``XMPPClient`` (handlers
attach with ``handler.setHandlerParent(client)``) with ``profile`` and ``host_app``.
:meth:`SatXMPPClient.connect` fires once the stream is authenticated and bound, or fails
with an :class:`XMPPConnectionError` naming the JID, the server and the reason (refused
connection, TLS or login failure, timeout): it never hangs.

TLS policy (``[xmpp] tls`` in the config): ``required`` (default) negotiates STARTTLS and
verifies the server certificate for the JID's domain against ``ca_file`` (PEM) or the
system trust store; ``plaintext`` skips TLS and is only accepted for a loopback server.

Once connected, a session that ends without :meth:`SatXMPPClient.disconnect` (server
restart, network failure) is re-established automatically, with growing delays
(wokkel's reconnecting factory: about 3 s, then x2.7 each attempt, at most an hour).
The client's owner hears of it through three optional callbacks:
``on_session_lost(reason)``, ``on_session_restored()`` and
``on_reconnect_failed(error)`` (the server refused the new session, for instance the
login: the client stops and is not retried).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer, error, ssl
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.protocols.jabber import sasl, xmlstream
from twisted.words.protocols.jabber.jid import JID

import sat_storage.wokkel_compat  # noqa: F401  (before any wokkel import)

# isort: split
from wokkel.client import HybridAuthenticator, XMPPClient

log = logging.getLogger(__name__)

TLS_REQUIRED = "required"
TLS_PLAINTEXT = "plaintext"
TLS_MODES = (TLS_REQUIRED, TLS_PLAINTEXT)
DEFAULT_PORT = 5222
CONNECT_TIMEOUT = 30.0  # seconds from connect() to a bound session


class XMPPConnectionError(Exception):
    """A client could not connect; names the JID, the server and the reason."""

    def __init__(self, jid: JID, host: str, port: int, reason: str) -> None:
        self.jid = jid
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"cannot connect {jid.full()} to {host}:{port}: {reason}")


class XMPPAuthError(XMPPConnectionError):
    """The server refused the login (SASL failure)."""


class XMPPConnectTimeout(XMPPConnectionError):
    """No session within the connection timeout."""


class TLSPolicyError(ValueError):
    """The TLS settings are invalid or not allowed for this server."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_trust_root(ca_file: str | Path) -> ssl.IOpenSSLTrustRoot:
    """The certificates of a PEM file, as a trust root (``TLSPolicyError`` if unusable)."""
    try:
        pem = Path(ca_file).read_bytes()
    except OSError as e:
        raise TLSPolicyError(f"cannot read ca_file {str(ca_file)!r}: {e.strerror}") from None
    marker = b"-----BEGIN CERTIFICATE-----"
    blocks = [marker + block for block in pem.split(marker)[1:]]
    try:
        certificates = [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as e:  # OpenSSL raises its own error types
        raise TLSPolicyError(f"ca_file {str(ca_file)!r} holds an invalid certificate: {e}") from e
    if not certificates:
        raise TLSPolicyError(f"ca_file {str(ca_file)!r} holds no PEM certificate")
    return ssl.trustRootFromCertificates(certificates)


def tls_options(
    domain: str, host: str, mode: str = TLS_REQUIRED, ca_file: str | Path | None = None
) -> ssl.IOpenSSLClientConnectionCreator | None:
    """TLS settings for a server: None for plaintext (loopback ``host`` only)."""
    if mode not in TLS_MODES:
        raise TLSPolicyError(f"tls must be one of {', '.join(TLS_MODES)}, not {mode!r}")
    if mode == TLS_PLAINTEXT:
        if not is_loopback(host):
            raise TLSPolicyError(
                f"tls = plaintext is only allowed for a loopback server, not {host!r}"
            )
        return None
    trust_root = None if ca_file is None else load_trust_root(ca_file)
    return ssl.optionsForClientTLS(domain, trustRoot=trust_root)


#: Added to a TLS failure on a loopback server (test servers seldom have a trusted TLS).
PLAINTEXT_HINT = (
    "for a local test server without a trusted certificate, set [xmpp] tls = plaintext "
    "(or [xmpp] ca_file) in the configuration"
)


def _is_tls_failure(message: str) -> bool:
    """Whether a failure description (this module's) is about TLS/STARTTLS."""
    return "STARTTLS" in message or message.startswith("TLS handshake failed")


#: Why a connection could not be set up, by failure type.
FAILURE_REASONS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((error.ConnectionRefusedError,), "connection refused"),
    ((error.TimeoutError,), "TCP connection timed out"),
    ((error.ConnectionDone, error.ConnectionLost), "connection closed before the session"),
    ((sasl.SASLNoAcceptableMechanism,), "no SASL mechanism in common with the server"),
    ((xmlstream.TLSRequired,), "the server requires TLS, but tls = plaintext"),
    ((xmlstream.TLSFailed,), "the server refused STARTTLS"),
)


class _Authenticator(HybridAuthenticator):
    """wokkel's authenticator with our STARTTLS settings (None = no TLS)."""

    def __init__(
        self, jid: JID, password: str, tls: ssl.IOpenSSLClientConnectionCreator | None
    ) -> None:
        super().__init__(jid, password)
        self.tls = tls

    def associateWithStream(self, xs: xmlstream.XmlStream) -> None:
        super().associateWithStream(xs)
        for index, init in enumerate(xs.initializers):
            if isinstance(init, xmlstream.TLSInitiatingInitializer):
                if self.tls is None:
                    init.wanted = init.required = False
                else:
                    xs.initializers[index] = xmlstream.TLSInitiatingInitializer(
                        xs, required=True, configurationForTLS=self.tls
                    )


class _ClientFactory(xmlstream.XmlStreamFactory):
    """Reconnecting stream factory that tells its client when a connection ends."""

    def __init__(self, client: SatXMPPClient, authenticator: _Authenticator) -> None:
        super().__init__(authenticator)
        self.client = client

    # The client is told last: what it runs (a waiter's callback) may connect again.

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        super().clientConnectionFailed(connector, reason)
        self.client._connection_ended(reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        super().clientConnectionLost(connector, reason)
        self.client._connection_ended(reason)


class SatXMPPClient(XMPPClient):
    """A profile's client connection (Libervia's ``client``).

    ``host``/``port`` is the server to reach (never an SRV lookup); the certificate is
    checked for the JID's domain. ``clock`` times the connection timeout and the
    delays between automatic reconnections.
    """

    #: called with the Failure when a session ends without :meth:`disconnect`
    #: (a reconnection is then scheduled)
    on_session_lost: Callable[[Failure], object] | None = None
    #: called when a session is established again after ``on_session_lost``
    on_session_restored: Callable[[], object] | None = None
    #: called with an :class:`XMPPConnectionError` when a reconnection is refused by the
    #: server (login, TLS, stream error): the client is stopped, no more attempts
    on_reconnect_failed: Callable[[XMPPConnectionError], object] | None = None

    def __init__(
        self,
        host_app: Any,
        profile: str,
        jid: JID,
        password: str,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        tls: str = TLS_REQUIRED,
        ca_file: str | Path | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        host = host or jid.host
        options = tls_options(jid.host, host, tls, ca_file)
        # XMPPClient.__init__ with our factory (it hard-codes wokkel's).
        self.jid = jid
        self.domain = jid.host.encode("idna")
        self.host = host
        self.port = port
        authenticator = _Authenticator(jid, password, options)
        super(XMPPClient, self).__init__(_ClientFactory(self, authenticator))
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.factory.clock = clock  # delays between reconnection attempts
        self.profile = profile
        self.host_app = host_app
        self.tls_mode = tls
        self._connection = None
        self._connecting: defer.Deferred[SatXMPPClient] | None = None
        self._failure: XMPPConnectionError | None = None
        self._closed_waiters: list[defer.Deferred[None]] = []
        self._session_up = False  # a session was established and its connection is open
        self.factory.addBootstrap(xmlstream.STREAM_ERROR_EVENT, self._stream_failed)

    def __repr__(self) -> str:
        return f"<SatXMPPClient {self.profile!r} {self.jid.full()} via {self.host}:{self.port}>"

    @property
    def is_connected(self) -> bool:
        """True while the stream is authenticated."""
        return self._initialized

    def connect(self, timeout: float = CONNECT_TIMEOUT) -> defer.Deferred[SatXMPPClient]:
        """Connect; fires with this client once bound, or fails with XMPPConnectionError."""
        if self.running:
            raise RuntimeError(f"{self!r} is already started")
        self._failure = None
        self._connecting = connecting = defer.Deferred()
        timer = self.clock.callLater(
            timeout,
            self._abort,
            XMPPConnectTimeout(self.jid, self.host, self.port, f"no session after {timeout} s"),
        )

        def stop_timer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        connecting.addBoth(stop_timer)
        self.factory.resetDelay()
        self.factory.continueTrying = True  # reset by an earlier disconnect
        self.startService()
        return connecting

    def disconnect(self) -> defer.Deferred[None]:
        """Close the stream and fire once the connection is closed (no reconnection)."""
        closed: defer.Deferred[None] = defer.Deferred()
        if self._connection is None or self._connection.state == "disconnected":
            if self.running:
                super().stopService()
            closed.callback(None)
            return closed
        self._closed_waiters.append(closed)
        if self.xmlstream is not None:
            self.xmlstream.sendFooter()
        super().stopService()
        return closed

    def stopService(self) -> defer.Deferred[None]:
        """Service API: same as :meth:`disconnect`."""
        return self.disconnect()

    # Internals

    def _authd(self, xs: xmlstream.XmlStream) -> None:
        super()._authd(xs)
        self._session_up = True
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.callback(self)
        elif self.running:
            log.info("%r: session established again", self)
            self._notify(self.on_session_restored)

    def _disconnected(self, reason: Failure) -> None:
        self._stream_failed(reason)
        super()._disconnected(reason)

    def _stream_failed(self, reason: Failure) -> None:
        """Keep why a stream being set up ended (a TLS or stream error) for the report."""
        if self._connecting is None or self._failure is not None:
            return
        if isinstance(reason, Failure) and not reason.check(
            error.ConnectionDone, error.ConnectionLost
        ):
            self._failure = self._error(self._describe(reason), reason)

    def initializationFailed(self, reason: Failure) -> None:
        """Stream negotiation (TLS, login, bind) failed: abort with a clear error.

        On an automatic reconnection, the client stops (no more attempts) and
        ``on_reconnect_failed`` is told.
        """
        xs = self.xmlstream
        pending = xs.initializers[0] if xs is not None and xs.initializers else None
        failure = self._error(self._describe_init_failure(reason, pending), reason)
        if self._connecting is not None:
            self._abort(failure)
        elif self.running:
            log.error("%r: reconnection refused, giving up: %s", self, failure.reason)
            XMPPClient.stopService(self)  # no more attempts; closes the connection
            self._notify(self.on_reconnect_failed, failure)

    def _describe_init_failure(self, reason: Failure, pending: object) -> str:
        if reason.check(sasl.SASLAuthError):
            return f"login refused by the server ({reason.value.condition})"
        if reason.check(xmlstream.FeatureNotAdvertized):
            if isinstance(pending, xmlstream.TLSInitiatingInitializer):
                return "the server does not offer STARTTLS (tls = required)"
            return f"the server does not offer a required stream feature ({type(pending).__name__})"
        return self._describe(reason)

    def _error(self, message: str, reason: Failure | None = None) -> XMPPConnectionError:
        if self.tls_mode == TLS_REQUIRED and is_loopback(self.host) and _is_tls_failure(message):
            message += f"; {PLAINTEXT_HINT}"
        if reason is not None and reason.check(sasl.SASLError):
            return XMPPAuthError(self.jid, self.host, self.port, message)
        return XMPPConnectionError(self.jid, self.host, self.port, message)

    @staticmethod
    def _describe(reason: Failure) -> str:
        for kinds, text in FAILURE_REASONS:
            if reason.check(*kinds):
                return text
        if reason.check(error.DNSLookupError, jabber_error.StreamError):
            return f"{type(reason.value).__name__}: {reason.value}"
        value = reason.value
        text = str(value) or type(value).__name__
        if type(value).__module__.startswith("OpenSSL"):
            return f"TLS handshake failed: {text}"
        return text

    def _abort(self, failure: XMPPConnectionError) -> None:
        """Give up connecting: close now, report ``failure`` once the socket is closed."""
        if self._connecting is None:
            return
        self._failure = failure
        self.factory.stopTrying()
        connector = self._connection
        if connector is None or connector.state == "disconnected":
            self._connection_ended(None)
        elif connector.state == "connecting":
            connector.stopConnecting()
        else:
            connector.transport.abortConnection()

    def _connection_ended(self, reason: Failure | None) -> None:
        """The TCP connection is closed (or could not be made)."""
        lost = self._session_up and self.running and self._connecting is None
        self._session_up = False
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            if self.running:
                XMPPClient.stopService(self)
            failure = self._failure
            if failure is None:
                failure = self._error(self._describe(reason) if reason else "connection closed")
            connecting.errback(failure)
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        if lost:
            assert reason is not None
            log.warning("%r: connection lost (%s), reconnecting", self, reason.getErrorMessage())
            self._notify(self.on_session_lost, reason)
        elif self.running and reason is not None:  # a reconnection attempt
            log.info("%r: reconnection attempt failed (%s)", self, self._describe(reason))

    def _notify(self, callback: Callable[..., object] | None, *args: Any) -> None:
        """Call an owner's callback; its failure (or its Deferred's) is logged."""
        if callback is not None:
            d = defer.maybeDeferred(callback, *args)
            d.addErrback(lambda f: log.error("%r: %r failed: %s", self, callback, f))
