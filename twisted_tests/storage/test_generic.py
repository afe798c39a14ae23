"""Generic access to mapped objects: get, add, delete."""

from types import SimpleNamespace

from sqlalchemy.exc import InvalidRequestError
from twisted.trial.unittest import TestCase

from sat_storage.exceptions import ConflictError, ProfileUnknownError
from sat_storage.models import History, Message, MessageType, ParamGen, PrivateIndBin, Subject
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.helpers import count_rows


def history(uid: str, profile_id: int, texts: dict[str, str] | None = None) -> History:
    """A history row with one message per language of ``texts``."""
    return History(
        uid=uid,
        profile_id=profile_id,
        source="alice@example.org",
        dest="bob@example.net",
        timestamp=1000.0,
        type=MessageType.chat,
        messages=[Message(message=t, language=lang) for lang, t in (texts or {}).items()],
        subjects=[Subject(subject="s")],
    )


class GenericTests(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        self.alice = SimpleNamespace(profile="alice")
        self.alice_id = self.storage.profiles["alice"]

    async def test_add_and_get(self) -> None:
        """An added object is found again by one of its columns, with its columns loaded."""
        await self.storage.add(ParamGen(category="General", name="lang", value="fr"))
        param = await self.storage.get(None, ParamGen, ParamGen.name, "lang")
        self.assertEqual((param.category, param.name, param.value), ("General", "lang", "fr"))

    async def test_get_missing(self) -> None:
        """get gives None when nothing matches."""
        self.assertIsNone(await self.storage.get(None, ParamGen, ParamGen.name, "missing"))

    async def test_get_client_filters_profile(self) -> None:
        """With a client, only objects of its profile are found."""
        await self.storage.add(
            PrivateIndBin(namespace="ns", key="k", profile_id=self.alice_id, value=[1])
        )
        bob = SimpleNamespace(profile="bob")
        found = await self.storage.get(self.alice, PrivateIndBin, PrivateIndBin.key, "k")
        self.assertEqual(found.value, [1])
        self.assertIsNone(await self.storage.get(bob, PrivateIndBin, PrivateIndBin.key, "k"))

    async def test_joined_loads(self) -> None:
        """Relationships in joined_loads are usable in the reactor thread; others raise."""
        await self.storage.add(history("h1", self.alice_id, {"": "hi", "fr": "salut"}))
        row = await self.storage.get(
            self.alice, History, History.uid, "h1", joined_loads=[History.messages]
        )
        self.assertEqual({m.language: m.message for m in row.messages}, {"": "hi", "fr": "salut"})
        with self.assertRaises(InvalidRequestError):
            row.subjects  # noqa: B018 - not loaded: raises instead of lazy loading

    async def test_add_saves_changes(self) -> None:
        """Adding an object got from get saves its changes."""
        await self.storage.add(ParamGen(category="General", name="lang", value="fr"))
        param = await self.storage.get(None, ParamGen, ParamGen.name, "lang")
        param.value = "en"
        await self.storage.add(param)
        again = await self.storage.get(None, ParamGen, ParamGen.name, "lang")
        self.assertEqual(again.value, "en")
        self.assertEqual(await count_rows(self.storage, ParamGen), 1)

    async def test_add_duplicate(self) -> None:
        """Adding a duplicate raises ConflictError naming the key; the stored row is kept."""
        await self.storage.add(ParamGen(category="General", name="lang", value="fr"))
        with self.assertRaises(ConflictError) as cm:
            await self.storage.add(ParamGen(category="General", name="lang", value="en"))
        self.assertIn("category, name", str(cm.exception))
        param = await self.storage.get(None, ParamGen, ParamGen.name, "lang")
        self.assertEqual(param.value, "fr")

    async def test_unicode_and_large(self) -> None:
        """Unicode and large values round-trip through add and get."""
        value = {"texte": "ça ✓ 日本語 🎉" * 20_000}
        await self.storage.add(
            PrivateIndBin(namespace="名前", key="clé", profile_id=self.alice_id, value=value)
        )
        found = await self.storage.get(self.alice, PrivateIndBin, PrivateIndBin.key, "clé")
        self.assertEqual(found.value, value)

    async def test_delete_one(self) -> None:
        """Deleting an object removes its row and the rows it owns (cascade)."""
        await self.storage.add(history("h1", self.alice_id, {"": "a", "fr": "b"}))
        await self.storage.add(history("h2", self.alice_id, {"": "c"}))
        row = await self.storage.get(None, History, History.uid, "h1")
        await self.storage.delete(row)
        self.assertIsNone(await self.storage.get(None, History, History.uid, "h1"))
        self.assertEqual(await count_rows(self.storage, Message, Subject), 2)

    async def test_delete_list(self) -> None:
        """delete takes a list of objects; an empty list does nothing."""
        for name in ("a", "b", "c"):
            await self.storage.add(ParamGen(category="c", name=name, value=name))
        rows = [await self.storage.get(None, ParamGen, ParamGen.name, n) for n in ("a", "c")]
        await self.storage.delete([])
        await self.storage.delete(rows)
        self.assertEqual(await count_rows(self.storage, ParamGen), 1)
        self.assertIsNotNone(await self.storage.get(None, ParamGen, ParamGen.name, "b"))

    async def test_delete_session_add(self) -> None:
        """session_add objects are saved in the transaction of the deletion."""
        await self.storage.add(ParamGen(category="c", name="old", value="x"))
        old = await self.storage.get(None, ParamGen, ParamGen.name, "old")
        await self.storage.delete(old, session_add=[ParamGen(category="c", name="new", value="y")])
        self.assertIsNone(await self.storage.get(None, ParamGen, ParamGen.name, "old"))
        self.assertIsNotNone(await self.storage.get(None, ParamGen, ParamGen.name, "new"))

    async def test_delete_not_stored(self) -> None:
        """Deleting an object that was never stored raises ValueError."""
        with self.assertRaises(ValueError) as cm:
            await self.storage.delete([ParamGen(category="c", name="n", value="v")])
        self.assertIn("db_obj[0]", str(cm.exception))

    async def test_wrong_types(self) -> None:
        """Arguments that are not mapped classes, objects or attributes raise TypeError."""
        calls = [
            (self.storage.get, (None, dict, ParamGen.name, "x"), "db_cls"),
            (self.storage.get, (None, ParamGen, History.uid, "x"), "db_id_col"),
            (self.storage.get, (None, ParamGen, "name", "x"), "db_id_col"),
            (self.storage.get, (None, History, History.messages, "x"), "db_id_col"),
            (self.storage.get, (None, History, History.uid, "x", [History.uid]), "joined_loads"),
            (self.storage.add, ({"category": "c"},), "db_obj"),
            (self.storage.delete, ("text",), "db_obj"),
        ]
        for method, args, culprit in calls:
            with self.assertRaises(TypeError) as cm:
                await method(*args)
            self.assertIn(culprit, str(cm.exception))

    async def test_client_on_general_table(self) -> None:
        """A client with a class that has no profile raises ValueError."""
        with self.assertRaises(ValueError):
            await self.storage.get(self.alice, ParamGen, ParamGen.name, "x")

    async def test_unknown_profile(self) -> None:
        """A client of an unknown profile raises ProfileUnknownError."""
        nobody = SimpleNamespace(profile="nobody")
        with self.assertRaises(ProfileUnknownError):
            await self.storage.get(nobody, History, History.uid, "h1")

    async def test_profile_deletion_cascades(self) -> None:
        """Objects of a deleted profile are gone."""
        await self.storage.add(history("h1", self.alice_id, {"": "a"}))
        await self.storage.delete_profile("alice")
        self.assertIsNone(await self.storage.get(None, History, History.uid, "h1"))
        self.assertEqual(await count_rows(self.storage, Message, Subject), 0)
