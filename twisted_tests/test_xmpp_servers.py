"""The test servers' fixtures: start once, register unique accounts, explain refusals."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from twisted_tests.xmpp_servers import ejabberd, port_open, prosody


class ProsodyFixtureTests(TestCase):
    def test_listening_on_loopback(self) -> None:
        """Prosody accepts connections on its 127.0.0.1 port and offers a CA file."""
        server = prosody()
        self.assertEqual(server.host, "127.0.0.1")
        self.assertTrue(port_open(server.port))
        self.assertTrue(server.ca_file.is_file())

    def test_started_once(self) -> None:
        """Asking twice gives the same running server."""
        self.assertIs(prosody(), prosody())

    async def test_accounts_are_unique(self) -> None:
        """Two accounts with the same prefix get different JIDs on the server domain."""
        server = prosody()
        first = await server.create_account("bob")
        second = await server.create_account("bob")
        self.assertNotEqual(first.jid, second.jid)
        self.assertEqual(first.jid.host, "localhost")
        self.assertTrue(first.jid.user.startswith("bob-"))

    async def test_conflict_is_explained(self) -> None:
        """Registering an existing name fails with an error naming account and server."""
        server = prosody()
        account = await server.create_account()
        with self.assertRaises(RuntimeError) as caught:
            await server.register(account.jid.user, "other")
        self.assertIn(account.jid.userhost(), str(caught.exception))
        self.assertIn("conflict", str(caught.exception))


class EjabberdFixtureTests(TestCase):
    async def test_account_created(self) -> None:
        """ejabberd runs on loopback and registers accounts in-band."""
        server = ejabberd()
        account = await server.create_account("carol")
        self.assertTrue(port_open(server.port))
        self.assertEqual(account.jid.host, "localhost")
