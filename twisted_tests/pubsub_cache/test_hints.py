"""XEP-0460 caching hints. Neither ejabberd 23.01 nor Prosody 0.12 puts them in a
node's metadata (disco#info), so the metadata is a hand-built disco answer here; the
nodes themselves are real (a node configured with max_items=3 on the service)."""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (before wokkel)

# isort: split
from collections.abc import Callable
from typing import Any

from sat_storage.plugins.pubsub_cache import hints
from twisted.trial.unittest import TestCase
from wokkel import data_form, disco

from sat_storage.models import SyncState
from twisted_tests.pubsub_cache.helpers import parse
from twisted_tests.pubsub_cache.transparency import TransparencyCase, atom
from twisted_tests.xmpp_servers import XMPPServer, ejabberd, prosody

DISCO_INFO = f"""<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity category='pubsub' type='leaf'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>{hints.FORM_META}</value></field>
    <field var='{hints.FIELD_PERSISTENCE}' type='boolean'><value>PERSISTENT</value></field>
    <field var='pubsub#max_items'><value>MAX_ITEMS</value></field>
    <field var='pubsub#item_expire'><value>EXPIRE</value></field>
  </x>
</query>"""


def metadata(persistent: str = "true", max_items: str = "3", expire: str = "") -> Any:
    """The ``pubsub#meta-data`` form of a hand-built disco#info answer."""
    text = DISCO_INFO.replace("PERSISTENT", persistent).replace("MAX_ITEMS", max_items)
    text = text.replace("EXPIRE", expire)
    return hints.metadata_form(disco.DiscoInfo.fromElement(parse(text)))


def configuration(**fields: str) -> data_form.Form:
    """A node configuration form with ``fields`` (var -> value)."""
    form = data_form.Form("result", formNamespace="http://jabber.org/protocol/pubsub#node_config")
    for var, value in fields.items():
        form.addField(data_form.Field(var=var, value=value))
    return form


class ReadTests(TestCase):
    def test_metadata(self) -> None:
        """Persistence, max_items and item_expire are read from the metadata form."""
        self.assertEqual(
            hints.read(metadata("false", "10", "3600")), hints.Hints(False, 10, 3600.0)
        )

    def test_configuration_after_metadata(self) -> None:
        """The configuration fills what the metadata does not say; ``max`` is no limit."""
        form = data_form.Form("result", formNamespace="x")
        form.addField(data_form.Field(var="pubsub#persist_items", value="0"))
        form.addField(data_form.Field(var="pubsub#max_items", value="max"))
        found = hints.read(None, form)
        self.assertEqual((found.persistent, found.max_items, found.cacheable), (False, None, False))

    def test_without_notifications(self) -> None:
        """A configuration without retraction notifications (or without any) makes the
        node not cacheable, naming why; both notifying keeps it cacheable."""
        for var in hints.NOTIFICATION_FIELDS:
            found = hints.read(None, configuration(**{var: "0"}))
            self.assertEqual((found.notifies, found.cacheable), (False, False))
            self.assertIn("notify", found.why_not())
        both = configuration(**{var: "1" for var in hints.NOTIFICATION_FIELDS})
        self.assertEqual(hints.read(None, both).notifies, True)
        self.assertTrue(hints.read(None, both).cacheable)

    def test_cacheable(self) -> None:
        """A persistent node without expiry is cacheable; an expiring one is not."""
        self.assertTrue(hints.read(metadata()).cacheable)
        self.assertIn("expire", hints.read(metadata(expire="60")).why_not())


class HintsMixin:
    server_factory: Callable[[], XMPPServer]

    def announce(self, form: Any) -> None:
        """The service's disco answer for nodes is ``form`` (hand-built)."""

        async def node_metadata(client: Any, service: Any, node: str) -> dict[str, Any]:
            return {"meta": form}

        self.patch(self.cache.analysis, "_node_metadata", node_metadata)

    def configured(self, form: Any) -> None:
        """The node configuration the reader gets is ``form`` (as an owner would)."""

        async def node_configuration(client: Any, service: Any, node: str) -> dict[str, Any]:
            return {"conf": form}

        self.patch(self.cache.analysis, "_node_configuration", node_configuration)

    async def test_not_persistent(self) -> None:
        """A node that is not persistent is not cached: NO_SYNC, answers from the network."""
        self.announce(metadata(persistent="false"))
        await self.create()
        await self.peer.publish_many(self.node, [atom(f"i{n}", str(n)) for n in range(3)])
        await self.assert_same()
        self.assertEqual((await self.cached_node()).sync_state, SyncState.NO_SYNC)
        sent = self.count_iqs(self.reader)
        await self.assert_same()
        self.assertEqual(len(sent), 1)

    async def test_no_retract_notifications(self) -> None:
        """A node configured not to notify retractions is not cached: a retraction
        the cache could not see is still the service's answer (from the network)."""
        self.configured(configuration(**{"pubsub#notify_retract": "0"}))
        await self.create(**{"pubsub#notify_retract": "0"})
        await self.peer.publish_many(self.node, [atom(f"i{n}", str(n)) for n in range(3)])
        await self.assert_same()
        self.assertEqual((await self.cached_node()).sync_state, SyncState.NO_SYNC)
        await self.peer.retract(self.node, "i1")
        await self.assert_same()

    async def test_max_items(self) -> None:
        """The cache keeps no more items than the service (max_items=3): after new
        items, the oldest go as on the service, and the answers stay the service's."""
        self.announce(metadata(max_items="3"))
        await self.create(**{"pubsub#max_items": "3"})
        await self.peer.publish_many(self.node, [atom(f"i{n}", str(n)) for n in range(3)])
        await self.synced()
        last = self.item_event("new1")
        await self.peer.publish_many(self.node, [atom(f"new{n}", str(n)) for n in range(2)])
        await last
        ids, _, _ = await self.from_cache()
        self.assertEqual(ids, ["i2", "new0", "new1"])
        await self.assert_same()


class ProsodyHintsTests(HintsMixin, TransparencyCase):
    server_factory = staticmethod(prosody)


class EjabberdHintsTests(HintsMixin, TransparencyCase):
    server_factory = staticmethod(ejabberd)
