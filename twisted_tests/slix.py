"""An independent pubsub client for the tests: slixmpp in a subprocess (:mod:`.slix_peer`).

Why a subprocess: slixmpp runs on asyncio, the suite on Twisted's default reactor. A
child process with its own asyncio loop, spoken to with JSON lines through
``reactor.spawnProcess``, needs no reactor change and no thread sharing, is stopped
cleanly (end of input) and shares nothing with the code under test but the server.
Each request is one Deferred, bounded by a timeout on the real reactor.

``canonical`` puts item XML from both clients in one form (qualified names, sorted
attributes), so that answers can be compared whatever the serialiser.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from twisted.internet import defer, error, protocol, reactor
from twisted.trial.unittest import SkipTest, TestCase
from twisted.words.xish import domish

from twisted_tests.xmpp_servers import Account, XMPPServer

PEER = Path(__file__).resolve().parent / "slix_peer.py"
TIMEOUT = 60.0  # seconds for one request (a batch of publications included)


class SlixError(Exception):
    """The service (or the peer) refused a request: ``condition`` says why."""

    def __init__(self, op: str, condition: str, text: str | None) -> None:
        super().__init__(f"{op}: {condition} ({text})")
        self.condition = condition


class _PeerProtocol(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.pending: dict[int, tuple[str, defer.Deferred[Any]]] = {}
        self.buffer = b""
        self.stderr = b""

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            message = json.loads(line)
            if message.get("ready"):
                self.ready.callback(None)
                continue
            op, d = self.pending.pop(message["id"])
            if message["ok"]:
                d.callback(message["result"])
            else:
                d.errback(SlixError(op, message["condition"], message.get("text")))

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def processEnded(self, reason: Any) -> None:
        failure = RuntimeError(f"slixmpp peer ended: {self.stderr.decode(errors='replace')}")
        if not self.ready.called:
            self.ready.errback(failure)
        for _, d in self.pending.values():
            d.errback(failure)
        self.pending.clear()
        self.ended.callback(None)


class SlixClient:
    """A connected slixmpp client of one account; methods mirror :mod:`.slix_peer`."""

    def __init__(self, proto: _PeerProtocol, transport: Any, service: str) -> None:
        self._proto = proto
        self._transport = transport
        self._next_id = 0
        self.service = service

    def request(self, op: str, **args: Any) -> defer.Deferred[Any]:
        self._next_id += 1
        d: defer.Deferred[Any] = defer.Deferred()
        self._proto.pending[self._next_id] = (op, d)
        line = json.dumps({"id": self._next_id, "op": op, **args}) + "\n"
        self._transport.write(line.encode())
        return d.addTimeout(TIMEOUT, reactor)

    def _node(self, op: str, node: str, **args: Any) -> defer.Deferred[Any]:
        return self.request(op, service=self.service, node=node, **args)

    def create(self, node: str, config: dict[str, Any] | None = None) -> defer.Deferred[None]:
        return self._node("create", node, config=config)

    def configure(self, node: str, config: dict[str, Any]) -> defer.Deferred[None]:
        return self._node("configure", node, config=config)

    def config(self, node: str) -> defer.Deferred[dict[str, Any]]:
        return self._node("config", node)

    def publish(self, node: str, item_id: str, payload: str) -> defer.Deferred[str]:
        return self._node("publish", node, item=item_id, payload=payload)

    def publish_many(self, node: str, items: list[tuple[str, str]]) -> defer.Deferred[list[str]]:
        """Publish ``(id, payload XML)`` pairs one IQ each, in order (one batch)."""
        requests = [
            {"op": "publish", "service": self.service, "node": node, "item": i, "payload": p}
            for i, p in items
        ]
        return self.request("batch", requests=requests)

    def retract(self, node: str, item_id: str, notify: bool = True) -> defer.Deferred[None]:
        return self._node("retract", node, item=item_id, notify=notify)

    def purge(self, node: str) -> defer.Deferred[None]:
        return self._node("purge", node)

    def delete(self, node: str) -> defer.Deferred[None]:
        return self._node("delete", node)

    def items(
        self,
        node: str,
        max_items: int | None = None,
        item_ids: list[str] | None = None,
        rsm: dict[str, Any] | None = None,
    ) -> defer.Deferred[dict[str, Any]]:
        """``{"items": [item XML], "rsm": {first, last, count, index} | None}``."""
        return self._node("items", node, max_items=max_items, item_ids=item_ids, rsm=rsm)

    def disco_items(self, node: str) -> defer.Deferred[list[str]]:
        return self._node("disco_items", node)

    def disco_info(self, node: str | None = None) -> defer.Deferred[dict[str, Any]]:
        return self.request("disco_info", service=self.service, node=node)

    async def close(self) -> None:
        """End the session and wait for the process to exit."""
        if not self._proto.ended.called:
            try:
                self._transport.closeStdin()
            except error.ProcessExitedAlready:
                pass
        await self._proto.ended.addTimeout(TIMEOUT, reactor)


async def slix_client(testcase: TestCase, server: XMPPServer, account: Account) -> SlixClient:
    """A slixmpp client of ``account`` on ``server`` (pubsub service = the server's),
    logged in; closed at cleanup."""
    try:
        import slixmpp  # noqa: F401
    except ImportError:
        raise SkipTest("slixmpp is not installed (pip install '.[test]')") from None
    proto = _PeerProtocol()
    args = [sys.executable, str(PEER), account.full_jid("slix").full(), account.password]
    args += [server.host, str(server.port)]
    transport = reactor.spawnProcess(proto, sys.executable, args, env=None)
    client = SlixClient(proto, transport, server.pubsub_service.full())
    testcase.addCleanup(client.close)
    await proto.ready.addTimeout(TIMEOUT, reactor)
    return client


def _tree(element: ET.Element) -> list[Any]:
    return [
        element.tag,
        sorted(element.attrib.items()),
        element.text or "",
        [[*_tree(child), child.tail or ""] for child in element],
    ]


def canonical(item: str | domish.Element) -> str:
    """``item`` XML in a canonical form: its tree with namespace-qualified names and
    sorted attributes, as JSON (prefixes and serialisers make no difference)."""
    text = item.toXml() if isinstance(item, domish.Element) else item
    return json.dumps(_tree(ET.fromstring(text)), ensure_ascii=False)
