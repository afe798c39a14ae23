"""An independent XMPP client (slixmpp, asyncio) driven with JSON lines on stdin/stdout.

Run as a subprocess by :mod:`twisted_tests.slix` so that the tests can publish and read
pubsub nodes with a client library that shares no code with the project (its own
XEP-0060 and XEP-0059 implementations), whatever reactor trial uses.

Usage: ``python slix_peer.py JID PASSWORD HOST PORT``. Once logged in it prints
``{"ready": true}``; then each input line is a request ``{"id": N, "op": NAME, ...}``
and gets one answer line ``{"id": N, "ok": true, "result": ...}`` or
``{"id": N, "ok": false, "condition": ..., "text": ...}``. Operations: ``create``,
``configure``, ``config``, ``publish``, ``retract``, ``purge``, ``delete``, ``items``,
``disco_items``, ``disco_info``, ``batch`` (a list of requests run in order). End of
input disconnects and exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import xml.etree.ElementTree as ET
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0059.stanza import Set
from slixmpp.plugins.xep_0060.stanza.pubsub import Item, Pubsub
from slixmpp.xmlstream import register_stanza_plugin

NS_RSM = "http://jabber.org/protocol/rsm"
NS_DATA = "jabber:x:data"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
TIMEOUT = 30
LINE_LIMIT = 16 * 1024 * 1024  # one request line (a ~200 KB payload fits)


def _form(fields: dict[str, Any]) -> Form:
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NODE_CONFIG)
    for var, value in fields.items():
        if isinstance(value, bool):
            form.add_field(var=var, ftype="boolean", value=value)
        elif isinstance(value, list):
            form.add_field(var=var, ftype="list-multi", value=value)
        else:
            form.add_field(var=var, value=str(value))
    return form


def _form_values(form: Any) -> dict[str, Any]:
    return {var: field.get_value(convert=False) for var, field in form.get_fields().items()}


class Peer(slixmpp.ClientXMPP):
    """The client; one method per operation."""

    def __init__(self, jid: str, password: str) -> None:
        super().__init__(jid, password)
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.enable_plaintext = True  # loopback test servers only
        for plugin in ("xep_0004", "xep_0030", "xep_0059", "xep_0060"):
            self.register_plugin(plugin)
        self.plugin["feature_mechanisms"].unencrypted_plain = True
        self.plugin["feature_mechanisms"].unencrypted_scram = True
        register_stanza_plugin(Pubsub, Set)  # <set/> beside <items/> (XEP-0060 §6.5.4)
        self.ready = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self._started)
        self.add_event_handler("failed_all_auth", self._failed)

    async def _started(self, _: Any) -> None:
        self.send_presence()
        await self.get_roster()
        if not self.ready.done():
            self.ready.set_result(None)

    def _failed(self, _: Any) -> None:
        if not self.ready.done():
            self.ready.set_exception(RuntimeError("authentication failed"))

    # --- operations ---

    async def op_create(
        self, service: str, node: str, config: dict[str, Any] | None = None
    ) -> None:
        form = None if config is None else _form(config)
        await self.plugin["xep_0060"].create_node(service, node, config=form, timeout=TIMEOUT)

    async def op_configure(self, service: str, node: str, config: dict[str, Any]) -> None:
        await self.plugin["xep_0060"].set_node_config(service, node, _form(config), timeout=TIMEOUT)

    async def op_config(self, service: str, node: str) -> dict[str, Any]:
        iq = await self.plugin["xep_0060"].get_node_config(service, node, timeout=TIMEOUT)
        return _form_values(iq["pubsub_owner"]["configure"]["form"])

    async def op_publish(self, service: str, node: str, item: str, payload: str) -> str | None:
        iq = await self.plugin["xep_0060"].publish(
            service, node, id=item, payload=ET.fromstring(payload), timeout=TIMEOUT
        )
        return iq["pubsub"]["publish"]["item"]["id"] or item

    async def op_retract(self, service: str, node: str, item: str, notify: bool = True) -> None:
        await self.plugin["xep_0060"].retract(service, node, item, notify=notify, timeout=TIMEOUT)

    async def op_purge(self, service: str, node: str) -> None:
        await self.plugin["xep_0060"].purge(service, node, timeout=TIMEOUT)

    async def op_delete(self, service: str, node: str) -> None:
        await self.plugin["xep_0060"].delete_node(service, node, timeout=TIMEOUT)

    async def op_items(
        self,
        service: str,
        node: str,
        max_items: int | None = None,
        item_ids: list[str] | None = None,
        rsm: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The service's answer: item XML texts and its ``<set/>`` (None if it has none)."""
        iq = self.Iq(sto=service, stype="get")
        iq["pubsub"]["items"]["node"] = node
        if max_items is not None:
            iq["pubsub"]["items"]["max_items"] = max_items
        for item_id in item_ids or ():
            item = Item()
            item["id"] = item_id
            iq["pubsub"]["items"].append(item)
        if rsm is not None:
            set_ = iq["pubsub"]["rsm"]
            if rsm.get("max") is not None:
                set_["max"] = str(rsm["max"])
            if rsm.get("after") is not None:
                set_["after"] = rsm["after"]
            if rsm.get("before") is not None:
                before = ET.SubElement(set_.xml, f"{{{NS_RSM}}}before")
                before.text = rsm["before"] or None
            if rsm.get("index") is not None:
                ET.SubElement(set_.xml, f"{{{NS_RSM}}}index").text = str(rsm["index"])
        answer = await iq.send(timeout=TIMEOUT)
        items_xml = answer.xml.find(
            "{http://jabber.org/protocol/pubsub}pubsub/{http://jabber.org/protocol/pubsub}items"
        )
        items = [] if items_xml is None else list(items_xml)
        set_xml = answer.xml.find(f"{{http://jabber.org/protocol/pubsub}}pubsub/{{{NS_RSM}}}set")
        return {
            "items": [ET.tostring(item, encoding="unicode") for item in items],
            "rsm": None if set_xml is None else _rsm(set_xml),
        }

    async def op_disco_items(self, service: str, node: str) -> list[str | None]:
        iq = await self.plugin["xep_0030"].get_items(jid=service, node=node, timeout=TIMEOUT)
        return [name for _, _, name in iq["disco_items"]["items"]]

    async def op_disco_info(self, service: str, node: str | None = None) -> dict[str, Any]:
        iq = await self.plugin["xep_0030"].get_info(jid=service, node=node, timeout=TIMEOUT)
        info = iq["disco_info"]
        forms = [
            {
                field.get("var"): [value.text for value in field.findall(f"{{{NS_DATA}}}value")]
                for field in form.findall(f"{{{NS_DATA}}}field")
            }
            for form in info.xml.iter(f"{{{NS_DATA}}}x")
        ]
        return {
            "identities": [list(i) for i in info["identities"]],
            "features": sorted(info["features"]),
            "forms": forms,
        }

    async def op_batch(self, requests: list[dict[str, Any]]) -> list[Any]:
        return [await self.run(dict(request)) for request in requests]

    async def run(self, request: dict[str, Any]) -> Any:
        op = request.pop("op")
        request.pop("id", None)
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise ValueError(f"unknown op {op!r}")
        return await method(**request)


def _rsm(set_xml: ET.Element) -> dict[str, Any]:
    def text(name: str) -> str | None:
        element = set_xml.find(f"{{{NS_RSM}}}{name}")
        return None if element is None else (element.text or "")

    first = set_xml.find(f"{{{NS_RSM}}}first")
    count = text("count")
    index = None if first is None else first.get("index")
    return {
        "first": text("first"),
        "last": text("last"),
        "count": None if count is None else int(count),
        "index": None if index is None else int(index),
    }


def _write(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(jid: str, password: str, host: str, port: int) -> None:
    peer = Peer(jid, password)
    peer.connect(host, port)
    await asyncio.wait_for(peer.ready, TIMEOUT)
    _write({"ready": True})
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        answer: dict[str, Any] = {"id": request.get("id")}
        try:
            answer.update(ok=True, result=await peer.run(request))
        except IqError as e:
            answer.update(ok=False, condition=e.condition, text=e.text)
        except IqTimeout:
            answer.update(ok=False, condition="timeout", text="no answer")
        except Exception as e:  # reported to the test, which fails with it
            answer.update(ok=False, condition="exception", text=f"{type(e).__name__}: {e}")
        _write(answer)
    peer.disconnect()
    await peer.disconnected


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
