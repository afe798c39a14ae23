"""Throwaway XMPP servers on 127.0.0.1 for the trial suite: Prosody and ejabberd.

Each server is Debian's package (``prosody``, ``ejabberd``), run from a fresh scratch
directory on free loopback ports with the configuration kept next to this file. The
first test that asks for one (:func:`prosody`, :func:`ejabberd`) starts it for the
whole test process; it is stopped, and its directory removed, when the process exits.
Tests stay independent by creating their own accounts
(:meth:`XMPPServer.create_account`, XEP-0077 in-band registration) and by using unique
node names (:func:`unique_name`). A missing server binary skips the test.

Prosody offers STARTTLS (optional) with a self-signed certificate for ``localhost``
(:attr:`XMPPServer.ca_file`) and accepts plaintext PLAIN logins; only its admin
(:meth:`XMPPServer.admin_account`, alice) may create nodes on ``pubsub.localhost``.
ejabberd (slow to start, ~4.5 s) pages pubsub items with RSM (XEP-0059); every local
user may create nodes there. See /work/shared/recipes/xmpp-test-servers.md.
"""

from __future__ import annotations

import atexit
import datetime
import os
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import SkipTest
from twisted.words.protocols.jabber import error, xmlstream
from twisted.words.protocols.jabber.jid import JID

HERE = Path(__file__).resolve().parent
PROSODY_CONFIG = HERE / "prosody.cfg.lua"
EJABBERD_CONFIG = HERE / "ejabberd.yml"
LOOPBACK = "127.0.0.1"
DOMAIN = "localhost"
PUBSUB_SERVICE = "pubsub.localhost"
ADMIN = "alice"
NS_REGISTER = "jabber:iq:register"
START_TIMEOUT = 60.0  # seconds for a server to accept connections


def unique_name(prefix: str) -> str:
    """A name no other test uses (account names, node names)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection((LOOPBACK, port), 0.2).close()
    except OSError:
        return False
    return True


def wait_for_port(port: int, alive: Callable[[], bool], what: str) -> None:
    """Block until ``port`` accepts connections; fail if ``alive()`` turns false or late."""
    deadline = time.monotonic() + START_TIMEOUT
    while not port_open(port):
        if not alive():
            raise RuntimeError(f"{what} exited before listening on {LOOPBACK}:{port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not listening on {LOOPBACK}:{port} after {START_TIMEOUT}s")
        time.sleep(0.02)  # server start-up, outside any test's reactor time


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_exit(pid: int, timeout: float) -> bool:
    """Block until process ``pid`` (not our child) has exited; False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # server shutdown, at process exit
    return True


def tail(path: Path, size: int = 3000) -> str:
    """The end of a log file (or a note that there is none)."""
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return f"(no log at {path})"


@dataclass(frozen=True)
class Account:
    """An account on a test server."""

    jid: JID  # bare JID
    password: str

    def full_jid(self, resource: str = "test") -> JID:
        """The account's JID with ``resource``."""
        return JID(tuple=(self.jid.user, self.jid.host, resource))


@dataclass
class XMPPServer:
    """A running test server and how to reach it."""

    kind: str  # "prosody" or "ejabberd"
    directory: Path
    port: int
    stop_server: Callable[[], None]
    log_file: Path
    host: str = LOOPBACK
    domain: str = DOMAIN
    pubsub_service: JID = field(default_factory=lambda: JID(PUBSUB_SERVICE))
    ca_file: Path | None = None  # certificate to trust for STARTTLS, when offered
    _admin: Account | None = None
    _stopped: bool = False

    def __str__(self) -> str:
        return f"{self.kind} on {self.host}:{self.port}"

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.stop_server()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def register(self, username: str, password: str, timeout: float = 10.0) -> Account:
        """Create ``username@domain`` through XEP-0077 in-band registration."""
        d = defer.ensureDeferred(self._register(username, password))
        d.addTimeout(timeout, reactor)
        try:
            await d
        except defer.TimeoutError:
            raise RuntimeError(
                f"registration of {username}@{self.domain} on {self} timed out after {timeout}s"
            ) from None
        return Account(JID(tuple=(username, self.domain, None)), password)

    async def create_account(self, prefix: str = "user") -> Account:
        """A new account with a unique name starting with ``prefix``."""
        username = unique_name(prefix)
        return await self.register(username, f"secret-{username}")

    async def admin_account(self) -> Account:
        """The server's admin (alice), registered on first use."""
        if self._admin is None:
            self._admin = await self.register(ADMIN, f"secret-{ADMIN}")
        return self._admin

    async def _register(self, username: str, password: str) -> None:
        xs = xmlstream.XmlStream(_UnauthenticatedStream(self.domain))
        ready: defer.Deferred[None] = defer.Deferred()
        ended: defer.Deferred[None] = defer.Deferred()
        xs.addOnetimeObserver(xmlstream.STREAM_AUTHD_EVENT, lambda _: ready.callback(None))
        xs.addOnetimeObserver(xmlstream.INIT_FAILED_EVENT, ready.errback)
        xs.addOnetimeObserver(xmlstream.STREAM_END_EVENT, lambda _: ended.callback(None))
        endpoint = TCP4ClientEndpoint(reactor, self.host, self.port, timeout=10)
        await connectProtocol(endpoint, xs)
        try:
            await ready
            iq = xmlstream.IQ(xs, "set")
            query = iq.addElement((NS_REGISTER, "query"))
            query.addElement("username", content=username)
            query.addElement("password", content=password)
            try:
                await iq.send(self.domain)
            except error.StanzaError as e:
                raise RuntimeError(
                    f"{self} refused to register {username}@{self.domain}: {e.condition}"
                ) from None
        finally:
            if xs.transport is not None and not ended.called:
                xs.sendFooter()
                xs.transport.loseConnection()
            await ended


class _UnauthenticatedStream(xmlstream.ConnectAuthenticator):
    """Client stream that stops after the stream features (no TLS, no login)."""

    namespace = "jabber:client"

    def associateWithStream(self, xs: xmlstream.XmlStream) -> None:
        super().associateWithStream(xs)
        xs.initializers = []


def write_certificate(directory: Path, hostname: str) -> Path:
    """A self-signed certificate and key for ``hostname`` (``<hostname>.crt/.key``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / f"{hostname}.key").write_bytes(key_pem)
    crt = directory / f"{hostname}.crt"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt


def start_prosody() -> XMPPServer:
    """Start a Prosody with its own scratch directory on a free loopback port."""
    if shutil.which("prosody") is None:
        raise SkipTest("Prosody is not installed (apt-get install prosody)")
    directory = Path(tempfile.mkdtemp(prefix="sat-prosody."))
    port = free_port()
    for sub in ("data", "certs"):
        (directory / sub).mkdir()
    ca_file = write_certificate(directory / "certs", DOMAIN)
    env = dict(os.environ, XMPP_TEST_DIR=str(directory), XMPP_TEST_PORT=str(port))
    proc = subprocess.Popen(
        ["prosody", "--config", str(PROSODY_CONFIG), "-F"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    log_file = directory / "prosody.log"
    server = XMPPServer("prosody", directory, port, stop, log_file, ca_file=ca_file)
    try:
        wait_for_port(port, lambda: proc.poll() is None, "prosody")
    except RuntimeError as e:
        log = tail(server.log_file)
        server.stop()
        raise RuntimeError(f"{e}; its log:\n{log}") from None
    return server


def start_ejabberd() -> XMPPServer:
    """Start an ejabberd node with its own scratch directory on free loopback ports."""
    ctl = shutil.which("ejabberdctl") or (
        "/usr/sbin/ejabberdctl" if os.path.exists("/usr/sbin/ejabberdctl") else None
    )
    if ctl is None:
        raise SkipTest("ejabberd is not installed (apt-get install ejabberd)")
    if os.geteuid() != 0:
        raise SkipTest("ejabberdctl runs the node as user ejabberd: run the tests as root")
    directory = Path(tempfile.mkdtemp(prefix="sat-ejabberd."))
    port, dist_port = free_port(), free_port()
    node = f"sat{uuid.uuid4().hex[:8]}@localhost"
    (directory / "db").mkdir()
    (directory / "logs").mkdir()
    config = string.Template(EJABBERD_CONFIG.read_text()).substitute(C2S_PORT=port)
    (directory / "ejabberd.yml").write_text(config)
    (directory / "ejabberdctl.cfg").write_text(
        f"ERLANG_NODE={node}\nINET_DIST_INTERFACE=127.0.0.1\nERL_DIST_PORT={dist_port}\n"
        f"ERL_EPMD_ADDRESS=127.0.0.1\nEJABBERD_PID_PATH={directory}/ejabberd.pid\n"
        "EJABBERD_BYPASS_WARNINGS=true\n"
    )
    for path in (directory, *directory.rglob("*")):
        shutil.chown(path, "ejabberd", "ejabberd")
    command = [
        ctl,
        *("-c", str(directory / "ejabberdctl.cfg"), "-f", str(directory / "ejabberd.yml")),
        *("-s", str(directory / "db"), "-l", str(directory / "logs")),
    ]

    def run(*args: str, timeout: float = START_TIMEOUT) -> None:
        subprocess.run(
            [*command, *args],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=timeout,
        )

    def stop() -> None:
        pid_file = directory / "ejabberd.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        try:
            run("stop")
            # Not "ejabberdctl stopped": it polls every 2 s.
            if pid is not None and not wait_exit(pid, 20.0):
                raise RuntimeError(f"ejabberd (pid {pid}) still running 20 s after stop")
        finally:
            # Whatever happened, the node (its beam process) must not outlive the tests.
            if pid is not None and process_alive(pid):
                os.kill(pid, signal.SIGKILL)

    server = XMPPServer("ejabberd", directory, port, stop, directory / "logs" / "ejabberd.log")
    try:
        run("start")
        run("started")
        wait_for_port(port, lambda: True, "ejabberd")
    except (subprocess.SubprocessError, RuntimeError) as e:
        output = getattr(e, "output", b"") or b""
        log = tail(server.log_file)
        server.stop()
        raise RuntimeError(
            f"ejabberd did not start: {e}\n{output.decode(errors='replace')}\nlog:\n{log}"
        ) from None
    return server


_servers: dict[str, XMPPServer] = {}


def _shared(kind: str, start: Callable[[], XMPPServer]) -> XMPPServer:
    server = _servers.get(kind)
    if server is None:
        server = _servers[kind] = start()
        atexit.register(server.stop)
    return server


def prosody() -> XMPPServer:
    """The process's Prosody, started on first use (``SkipTest`` if not installed)."""
    return _shared("prosody", start_prosody)


def ejabberd() -> XMPPServer:
    """The process's ejabberd, started on first use (``SkipTest`` if not installed)."""
    return _shared("ejabberd", start_ejabberd)
