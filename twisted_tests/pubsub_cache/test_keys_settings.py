"""NodeKey and CacheSettings (pure logic)."""

from __future__ import annotations

from typing import Any

from sat_storage.plugins.pubsub_cache.keys import NodeKey
from sat_storage.plugins.pubsub_cache.settings import CacheSettings
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID


def config(values: dict[tuple[str | None, str], Any]) -> Any:
    """A ``config_get`` answering from ``values``."""

    def config_get(section: str | None, name: str, default: Any = None) -> Any:
        return values.get((section, name), default)

    return config_get


class NodeKeyTests(SynchronousTestCase):
    def test_same_as_tuple(self) -> None:
        """A key equals, and hashes as, the plain (profile, service, node) tuple."""
        key = NodeKey.of("alice", JID("pubsub.example.org"), "blog")
        self.assertEqual({key: 1}[("alice", "pubsub.example.org", "blog")], 1)

    def test_parts(self) -> None:
        """service_jid, where and label name the node."""
        key = NodeKey("alice", "pubsub.example.org", "blog")
        self.assertEqual(
            (key.service_jid, key.where, key.label),
            (
                JID("pubsub.example.org"),
                ("pubsub.example.org", "blog"),
                "node 'blog' at pubsub.example.org [alice]",
            ),
        )


class CacheSettingsTests(SynchronousTestCase):
    def test_parsed_once(self) -> None:
        """Options are converted to their types; the others keep their defaults."""
        settings = CacheSettings.from_config(
            config({("pubsub_cache", "page_size"): "7", ("pubsub_cache", "sync_lease"): "90"})
        )
        self.assertEqual(
            (settings.page_size, settings.sync_lease, settings.cache_limit, settings.use_cache),
            (7, 90.0, 5000, True),
        )

    def test_libervia_strategy(self) -> None:
        """Libervia's [DEFAULT] pubsub_cache_strategy = no_cache disables the cache."""
        settings = CacheSettings.from_config(config({(None, "pubsub_cache_strategy"): "no_cache"}))
        self.assertFalse(settings.use_cache)

    def test_bad_value_named(self) -> None:
        """A bad option gives a ValueError naming it."""
        with self.assertRaisesRegex(ValueError, r"\[pubsub_cache\] cache_limit must be at least"):
            CacheSettings.from_config(config({("pubsub_cache", "cache_limit"): "0"}))

    def test_renewal_shorter_than_lease(self) -> None:
        """A renewal interval not shorter than the lease is refused."""
        with self.assertRaisesRegex(ValueError, "sync_lease_renewal"):
            CacheSettings(sync_lease=10, sync_lease_renewal=10)
