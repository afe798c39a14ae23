"""JSON values read back exactly on both engines (integers beyond 64 bits, floats)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from sat_storage import json_text
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.search_strategies import json_values

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


class EncoderTests(SynchronousTestCase):
    REFERENCE = json.JSONEncoder(allow_nan=False, ensure_ascii=False).encode

    @settings(max_examples=300, database=None, deadline=None)
    @given(json_values)
    def test_same_text_as_json(self, value: Any) -> None:
        """The C encoder made directly writes what JSONEncoder.encode writes."""
        self.assertEqual(json_text._encode_c(value), self.REFERENCE(value))

    def test_same_errors_as_json(self) -> None:
        """A circular value, NaN and an unknown type raise json's errors; the list that
        was circular is written as usual once it is not (no marker kept from the failure)."""
        circular: list[Any] = [1]
        circular.append(circular)
        for bad, error in ((circular, ValueError), ([float("nan")], ValueError),
                           ({"a": object()}, TypeError)):  # fmt: skip
            with self.assertRaises(error) as caught:
                json_text.dumps(bad)
            with self.assertRaises(error) as expected:
                self.REFERENCE(bad)
            self.assertEqual(str(caught.exception), str(expected.exception))
        circular.pop()  # no longer circular: a marker left from the failure would say it is
        self.assertEqual(json_text.dumps(circular), "[1]")
