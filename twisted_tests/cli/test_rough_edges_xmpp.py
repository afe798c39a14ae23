"""Rough edges of ``cache sync`` against a real Prosody: missing nodes, TLS hints."""

from __future__ import annotations

from twisted_tests.cli.helpers import assert_bad_input
from twisted_tests.cli.test_xmpp import ProsodyCliTestCase
from twisted_tests.xmpp_servers import unique_name


class MissingNodeTests(ProsodyCliTestCase):
    """A node the service does not have."""

    async def test_not_found_records_nothing(self) -> None:
        """``cache sync`` says "node ... not found at SERVICE" (exit 1), no node recorded."""
        missing = unique_name("urn:example:missing")
        result = await self.cli("cache", "sync", self.service.full(), missing, "-p", "reader")
        assert_bad_input(self, result, f"node {missing!r} not found at {self.service.full()}")
        stats = (await self.cli("--json", "cache", "stats")).json()
        self.assertEqual(stats["nodes"], 0)


class TlsHintTests(ProsodyCliTestCase):
    """A loopback test server whose certificate is not trusted."""

    async def test_starttls_failure_mentions_plaintext(self) -> None:
        """Without ``[xmpp] tls = plaintext`` the failure says how to set it (exit 2)."""
        self.config.write_text("[xmpp]\ntls = required\n")
        result = await self.cli("cache", "sync", self.service.full(), self.node, "-p", "reader")
        self.assertEqual(result.code, 2, str(result))
        self.assertIn("TLS", result.err)
        self.assertIn("[xmpp] tls = plaintext", result.err)
