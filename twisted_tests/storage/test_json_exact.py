"""JSON values read back exactly on both engines (integers beyond 64 bits, floats)."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from twisted_tests.db import storage_with_profiles

BIG = 2**70
VALUES: list[Any] = [BIG, -(2**80), 2**63, 3.0, -0.5, 7, {"n": BIG}, [BIG, 1.0, 2], "2"]
# floats from 1e16 on: jsonb would give back ints (most with another value)
VALUES += [1e16, {"f": -2.730648000375673e16}, [1e300]]


def _same(value: Any) -> Any:
    """``value`` with the type of every part, so that 3 and 3.0 differ."""
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same(v) for v in value]
    return (type(value).__name__, value)


class ExactJSONTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice")

    async def test_binary_private_values(self) -> None:
        """Binary private values (general and per profile) keep big integers and floats."""
        for index, value in enumerate(VALUES):
            await self.storage.set_private_value("ns", f"k{index}", value, binary=True)
            await self.storage.set_private_value(
                "ns", f"k{index}", value, binary=True, profile="alice"
            )
        for profile in (None, "alice"):
            got = await self.storage.get_privates("ns", binary=True, profile=profile)
            self.assertEqual(
                [_same(got[f"k{i}"]) for i in range(len(VALUES))], [_same(v) for v in VALUES]
            )

    async def test_history_extra(self) -> None:
        """A big integer in a message's extra reads back exactly."""
        await self.storage.add_to_history(
            {
                "uid": "u1",
                "from": JID("alice@example.org/r"),
                "to": JID("bob@example.org"),
                "timestamp": 1.0,
                "message": {"": "hi"},
                "subject": {},
                "type": "chat",
                "extra": {"big": BIG, "float": 2.0},
            },
            "alice",
        )
        (row,) = await self.storage.history_get(None, None, profile="alice")
        self.assertEqual(_same(row[7]), _same({"big": BIG, "float": 2.0}))

    async def test_parsed_item(self) -> None:
        """A big integer in an item's parsed data reads back exactly."""

        class Client:
            profile = "alice"

        node = await self.storage.set_pubsub_node(Client(), JID("pubsub.example.org"), "n")
        item = domish.Element((None, "item"))
        item["id"] = "i1"
        await self.storage.cache_pubsub_items(Client(), node, [item], [{"big": BIG}])
        items, _ = await self.storage.get_items(node)
        self.assertEqual(_same(items[0].parsed), _same({"big": BIG}))
