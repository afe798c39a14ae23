"""The small reference host: a Libervia-style backend in miniature.

::

    host = Host(config_path=None, db_url=None)
    await host.start()          # config read, storage initialised, plugins loaded
    client = await host.connect("alice")   # the profile's XMPP client, once bound
    host.plugins["XEP-0060"]; host.trigger; host.memory.storage
    await host.disconnect("alice")
    await host.stop()           # clients disconnected, plugins stopped, storage closed

Connection settings are the profile's individual params ("Connection", "JabberID" /
"Password" / "Force server" / "Force port"); the ``[xmpp]`` config section gives
``tls`` (required | plaintext), ``ca_file``, ``connect_timeout`` and ``iq_timeout``.
A real Libervia-style backend may replace this class: plugins only rely on
:class:`sat_storage.interfaces.IHost`.

Plugins hear of connections through their hooks: ``profile_connecting`` once per
:meth:`Host.connect`, then ``profile_connected`` each time a session is ready and
``profile_disconnected`` each time it ends, alternating, never twice in a row. A
session lost unexpectedly (server restart, network failure; not :meth:`Host.disconnect`)
is logged and announced with ``profile_disconnected``; the client stays in
``host.clients`` (``client.is_connected`` is False) and reconnects by itself; once its
new session is ready, the host sends the initial presence again and runs
``profile_connected``. A reconnection the server refuses (login changed...) ends it:
the profile is no longer connected.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from zope.interface import implementer

from sat_storage.config import Config
from sat_storage.deferreds import SingleFlight, as_deferred
from sat_storage.exceptions import FeatureNotFound, ProfileNotConnected
from sat_storage.interfaces import IHost
from sat_storage.libervia import credentials
from sat_storage.plugin_loader import PluginError, PluginLoader
from sat_storage.storage import Storage
from sat_storage.trigger import TriggerManager
from sat_storage.xmpp import (
    CONNECT_TIMEOUT,
    DEFAULT_PORT,
    TLS_REQUIRED,
    SatXMPPClient,
    XMPPConnectionError,
)

# isort: split
from wokkel.disco import DiscoClientProtocol
from wokkel.xmppim import PresenceClientProtocol

log = logging.getLogger(__name__)

XMPP_SECTION = "xmpp"
IQ_TIMEOUT = 60.0  # seconds before an unanswered IQ request fails
PARAM_JID = ("Connection", "JabberID")
PARAM_PASSWORD = ("Connection", "Password")
PARAM_FORCE_SERVER = ("Connection", "Force server")
PARAM_FORCE_PORT = ("Connection", "Force port")
HOOK_CONNECTING = "profile_connecting"
HOOK_CONNECTED = "profile_connected"
HOOK_DISCONNECTED = "profile_disconnected"
#: hook -> the hooks it may follow for one client (None: no hook run yet)
HOOK_FOLLOWS: dict[str, set[str | None]] = {
    HOOK_CONNECTING: {None},
    HOOK_CONNECTED: {HOOK_CONNECTING, HOOK_DISCONNECTED},
    HOOK_DISCONNECTED: {HOOK_CONNECTING, HOOK_CONNECTED},
}


@dataclass
class _ClientHooks:
    """The last connection hook run for a client; the lock keeps its hooks in order."""

    lock: defer.DeferredLock = field(default_factory=defer.DeferredLock)
    last: str | None = None


class Memory:
    """``host.memory``: the storage and the configuration."""

    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.storage = storage

    def config_get(self, section: str | None, name: str, default: Any = None) -> Any:
        """Value of ``name`` in config ``section`` (None = ``[DEFAULT]``), else ``default``."""
        return self.config.get(section, name, default)


@implementer(IHost)
class Host:
    """Storage, triggers, plugins and the profiles' XMPP clients.

    ``plugin_path``: directories searched for plugin (and plugin schema)
    distributions (default ``sys.path``); ``plugin_group``: the entry point group
    (default ``sat.plugins``);
    ``clock``: times the clients' connection timeouts and reconnection delays
    (default: the reactor); ``reactor``: the storage's reactor, whose shutdown stops
    the host (default: the global one).
    """

    def __init__(
        self,
        config_path: str | os.PathLike | None = None,
        db_url: str | None = None,
        *,
        plugin_path: list[str] | None = None,
        plugin_group: str = "sat.plugins",
        clock: IReactorTime | None = None,
        reactor: Any = None,
    ) -> None:
        self.config = Config.from_path(config_path)
        storage = Storage(db_url, config=self.config, reactor=reactor, schema_path=plugin_path)
        self.memory = Memory(self.config, storage)
        self.trigger = TriggerManager()
        self.plugins: dict[str, Any] = {}
        self.plugin_loader = PluginLoader(plugin_group, plugin_path)
        self.clients: dict[str, SatXMPPClient] = {}
        self.clock = clock
        self._hooks: WeakKeyDictionary[SatXMPPClient, _ClientHooks] = WeakKeyDictionary()
        self._connecting = SingleFlight()  # profile: one connection at a time
        self._features: dict[tuple[str, str], set[str]] = {}  # (profile, service): disco
        self._features_pending = SingleFlight()  # (profile, service): one disco#info
        self.started = False
        self._stopping = SingleFlight()  # one stop at a time, shared by its callers
        self._shutdown_trigger: Any = None

    def __repr__(self) -> str:
        return f"<Host {self.memory.storage!r}, {len(self.plugins)} plugins>"

    @property
    def plugin_errors(self) -> dict[str, PluginError]:
        """Why plugins were skipped, by import name (or entry point name)."""
        return self.plugin_loader.errors

    # Start and stop

    def start(self) -> defer.Deferred[None]:
        """Initialise the storage, then discover and load the plugins.

        Once started, the host stops itself (:meth:`stop`) before the reactor shuts
        down, the storage last: the plugins' ``stop`` and ``profile_disconnected``
        hooks still use it (the storage alone would close at once).
        """
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        if self.started:
            raise RuntimeError(f"{self!r} is already started")
        storage = self.memory.storage
        await storage.initialise()
        storage.keep_open_at_shutdown()
        self._shutdown_trigger = storage.db.reactor.addSystemEventTrigger(
            "before", "shutdown", self._on_shutdown
        )
        self.started = True
        self.plugin_loader.schema_states = self.memory.storage.plugin_schemas
        self.plugin_loader.load(self)

    def stop(self) -> defer.Deferred[None]:
        """Disconnect every client, run the plugins' ``stop`` hooks, close the storage.

        A call while the host is stopping fires once it has stopped.
        """
        if not self.started and not self._stopping.running(None):
            return defer.succeed(None)
        return self._stopping.run(None, self._stop)

    def _on_shutdown(self) -> defer.Deferred[None]:
        self._shutdown_trigger = None
        return self.stop()

    async def _stop(self) -> None:
        self.started = False
        if self._shutdown_trigger is not None:
            self.memory.storage.db.reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        try:
            for profile in list(self.clients):
                await self.disconnect(profile)
            for name, plugin in reversed(list(self.plugins.items())):
                await self._call_hook(name, plugin, "stop")
        finally:
            await self.memory.storage.close()

    # Clients

    def get_client(self, profile: str) -> SatXMPPClient:
        """The connected client of ``profile`` (``ProfileNotConnected`` otherwise)."""
        try:
            return self.clients[profile]
        except KeyError:
            raise ProfileNotConnected(f"profile {profile!r} is not connected") from None

    def connect(
        self, profile: str, password: str | None = None, profile_password: str | None = None
    ) -> defer.Deferred[SatXMPPClient]:
        """Connect ``profile``; fires with its client once the session is ready.

        ``password``: the XMPP password (default: the stored one; credentials adopted
        from Libervia are decrypted, with ``profile_password`` when the profile has one:
        :class:`~sat_storage.libervia.ProfilePasswordError` if missing or wrong).

        Fails with :class:`~sat_storage.xmpp.XMPPConnectionError` (naming the JID, the
        server and the reason) when the server cannot be reached, refuses the login or
        does not answer within ``[xmpp] connect_timeout`` seconds. A session lost later
        is re-established automatically (see the module's documentation).
        """
        if profile in self.clients:
            return defer.succeed(self.clients[profile])
        return self._connecting.run(profile, self._connect, profile, password, profile_password)

    async def _connect(
        self, profile: str, password: str | None, profile_password: str | None
    ) -> SatXMPPClient:
        if not self.started:
            raise RuntimeError(f"{self!r} is not started: call start() first")
        client = await self._make_client(profile, password, profile_password)
        for name, plugin in self.plugins.items():
            spec = self.plugin_loader.loaded.get(name)
            if spec is not None and spec.has_handler:
                plugin.get_handler(client).setHandlerParent(client)
        try:
            await self._run_hooks(client, HOOK_CONNECTING, errors=True)
            await client.connect(self._config_float("connect_timeout", CONNECT_TIMEOUT))
        except BaseException:
            await self._run_hooks(client, HOOK_DISCONNECTED)
            raise
        self.clients[profile] = client
        client.presence.available()
        await self._run_hooks(client, HOOK_CONNECTED)
        log.info("profile %r connected as %s", profile, client.jid.full())
        return client

    async def _make_client(
        self, profile: str, password: str | None, profile_password: str | None
    ) -> SatXMPPClient:
        storage = self.memory.storage
        storage.get_profile_id(profile)  # ProfileUnknownError first
        jid_s = await storage.get_ind_param(*PARAM_JID, profile)
        if not jid_s:
            raise ValueError(f"profile {profile!r} has no {PARAM_JID} parameter")
        try:
            jid = JID(jid_s)
        except InvalidFormat as e:
            raise ValueError(f"profile {profile!r}: invalid {PARAM_JID} {jid_s!r}: {e}") from None
        if password is None:
            password = await storage.get_ind_param(*PARAM_PASSWORD, profile)
            if password is None:
                raise ValueError(f"profile {profile!r} has no {PARAM_PASSWORD} parameter")
            password = await credentials.xmpp_password(storage, profile, password, profile_password)
        server = await storage.get_ind_param(*PARAM_FORCE_SERVER, profile)
        port_s = await storage.get_ind_param(*PARAM_FORCE_PORT, profile)
        try:
            port = int(port_s) if port_s else DEFAULT_PORT
        except ValueError:
            reason = f"{PARAM_FORCE_PORT} is not a port: {port_s!r}"
            raise ValueError(f"profile {profile!r}: {reason}") from None
        client = SatXMPPClient(
            self,
            profile,
            jid,
            password,
            host=server or jid.host,
            port=port,
            tls=self.memory.config_get(XMPP_SECTION, "tls", TLS_REQUIRED),
            ca_file=self.memory.config_get(XMPP_SECTION, "ca_file"),
            clock=self.clock,
        )
        client.on_session_lost = partial(self._session_lost, client)
        client.on_session_restored = partial(self._session_restored, client)
        client.on_reconnect_failed = partial(self._reconnect_failed, client)
        client.timeout = self._config_float("iq_timeout", IQ_TIMEOUT)
        client.disco_client = DiscoClientProtocol()
        client.disco_client.setHandlerParent(client)
        client.presence = PresenceClientProtocol()
        client.presence.setHandlerParent(client)
        return client

    def disconnect(self, profile: str) -> defer.Deferred[None]:
        """Close ``profile``'s connection; fires once closed and plugins notified."""
        client = self.get_client(profile)
        return defer.ensureDeferred(self._disconnect(client))

    async def _disconnect(self, client: SatXMPPClient) -> None:
        del self.clients[client.profile]
        self._forget_features(client.profile)
        try:
            await client.disconnect()
        finally:
            await self._run_hooks(client, HOOK_DISCONNECTED)
        log.info("profile %r disconnected", client.profile)

    # Sessions lost and restored (the client reconnects by itself)

    def _session_lost(self, client: SatXMPPClient, reason: Failure) -> defer.Deferred[None]:
        """The session ended unexpectedly (the client logged it and reconnects)."""
        self._forget_features(client.profile)
        return defer.ensureDeferred(self._run_hooks(client, HOOK_DISCONNECTED))

    def _session_restored(self, client: SatXMPPClient) -> defer.Deferred[None]:
        """A new session after a loss: initial presence again, then the plugins."""
        client.presence.available()
        return defer.ensureDeferred(self._run_hooks(client, HOOK_CONNECTED))

    def _reconnect_failed(
        self, client: SatXMPPClient, error: XMPPConnectionError
    ) -> defer.Deferred[None]:
        """The server refused the new session: the profile is no longer connected."""
        if self.clients.get(client.profile) is client:
            del self.clients[client.profile]
        self._forget_features(client.profile)
        log.warning("profile %r is disconnected: %s", client.profile, error)
        return defer.ensureDeferred(self._run_hooks(client, HOOK_DISCONNECTED))

    async def _run_hooks(self, client: SatXMPPClient, hook: str, errors: bool = False) -> None:
        """Run every plugin's ``hook(client)``, after the client's earlier hooks.

        Skipped when it cannot follow the last hook run (``HOOK_FOLLOWS``): plugins
        told of a lost session are not told again at :meth:`disconnect`.
        """
        state = self._hooks.setdefault(client, _ClientHooks())
        await state.lock.acquire()
        try:
            if state.last not in HOOK_FOLLOWS[hook]:
                return
            state.last = hook
            for name, plugin in self.plugins.items():
                await self._call_hook(name, plugin, hook, client, errors=errors)
        finally:
            state.lock.release()

    def _forget_features(self, profile: str) -> None:
        for key in [key for key in self._features if key[0] == profile]:
            del self._features[key]

    async def _call_hook(
        self, name: str, plugin: Any, hook: str, *args: Any, errors: bool = False
    ) -> None:
        """Run ``plugin.hook(*args)`` if it exists; log its failure unless ``errors``."""
        method = getattr(plugin, hook, None)
        if method is None:
            return
        try:
            await as_deferred(method, *args)
        except Exception:
            if errors:
                raise
            log.exception("plugin %s: %s failed", name, hook)

    def _config_float(self, name: str, default: float) -> float:
        value = self.memory.config_get(XMPP_SECTION, name, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            reason = f"must be a number: {value!r}"
            raise ValueError(f"config [{XMPP_SECTION}] {name} {reason}") from None

    # Service discovery

    def check_features(
        self, client: SatXMPPClient, namespaces: Iterable[str], service: JID | None = None
    ) -> defer.Deferred[None]:
        """Fail with FeatureNotFound unless ``service`` (default: the server) has them all.

        disco#info answers are cached per (profile, service) until the profile disconnects.
        """
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        wanted = list(namespaces)
        return defer.ensureDeferred(self._check_features(client, wanted, service))

    async def _check_features(
        self, client: SatXMPPClient, namespaces: list[str], service: JID | None
    ) -> None:
        if service is None:
            service = JID(client.jid.host)
        features = await self.get_features(client, service)
        missing = [ns for ns in namespaces if ns not in features]
        if missing:
            raise FeatureNotFound(
                f"{service.full()} lacks feature(s) {', '.join(missing)} "
                f"(asked by profile {client.profile!r})"
            )

    def get_features(self, client: SatXMPPClient, service: JID) -> defer.Deferred[set[str]]:
        """The disco#info features of ``service`` (cached per profile and service)."""
        key = (client.profile, service.full())
        if key in self._features:
            return defer.succeed(set(self._features[key]))

        async def request() -> set[str]:
            info = await client.disco_client.requestInfo(service)
            features = {str(feature) for feature in info.features}
            if self.clients.get(client.profile) is client and client.is_connected:
                self._features[key] = features
            return set(features)

        return self._features_pending.run(key, request)
