"""File metadata: set_file, get_files, file_get_used_space, file_delete, file_update."""

import time
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage import engines
from sat_storage.exceptions import ConflictError, NotFound, ProfileUnknownError
from sat_storage.models import File, FileType
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.helpers import count_rows

OWNER = JID("alice@example.org")


class FilesTestCase(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")
        self.alice = SimpleNamespace(profile="alice")
        self.bob = SimpleNamespace(profile="bob")

    async def set_file(self, file_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"{file_id}.txt")
        await self.storage.set_file(kwargs.pop("client", self.alice), file_id=file_id, **kwargs)

    async def ids(self, client: Any = None, **filters: Any) -> list[str]:
        files = await self.storage.get_files(client or self.alice, **filters)
        return sorted(f["id"] for f in files)


class SetGetTests(FilesTestCase):
    async def test_round_trip(self) -> None:
        """Every field set is given back, with type as text and owner as a JID."""
        await self.set_file(
            "f1",
            name="photo.jpg",
            version="",
            parent="dir1",
            type_=FileType.file,
            file_hash="abc",
            hash_algo="sha-256",
            size=1234,
            namespace="album",
            media_type="image",
            media_subtype="jpeg",
            public_id="pub1",
            created=1000.5,
            modified=2000,
            owner=JID("alice@example.org/phone"),
            access={"read": {"type": "public"}},
            extra={"thumbnails": [{"id": "t1", "size": [100, 100]}]},
        )
        [file] = await self.storage.get_files(self.alice)
        self.assertEqual(
            file,
            {
                "id": "f1",
                "version": "",
                "parent": "dir1",
                "type": "file",
                "file_hash": "abc",
                "hash_algo": "sha-256",
                "name": "photo.jpg",
                "size": 1234,
                "namespace": "album",
                "media_type": "image",
                "media_subtype": "jpeg",
                "public_id": "pub1",
                "created": 1000.5,
                "modified": 2000.0,
                "owner": JID("alice@example.org/phone"),
                "access": {"read": {"type": "public"}},
                "extra": {"thumbnails": [{"id": "t1", "size": [100, 100]}]},
            },
        )
        self.assertIsInstance(file["owner"], JID)

    async def test_defaults(self) -> None:
        """Defaults: current version, root parent, type file, created now, the rest None."""
        before = time.time()
        await self.set_file("f1")
        [file] = await self.storage.get_files(self.alice)
        self.assertTrue(before <= file["created"] <= time.time())
        self.assertEqual(
            (file["version"], file["parent"], file["type"], file["owner"], file["access"]),
            ("", "", "file", None, None),
        )

    async def test_empty(self) -> None:
        """get_files without files gives an empty list."""
        self.assertEqual(await self.storage.get_files(self.alice), [])

    async def test_unicode_and_large(self) -> None:
        """Unicode names and large extra data round-trip."""
        extra = {"description": "日本語 ✓ 🎉 ça" * 20_000}
        await self.set_file("fé🎉", name="résumé 日本.pdf", extra=extra, namespace="é")
        [file] = await self.storage.get_files(self.alice, name="résumé 日本.pdf")
        self.assertEqual((file["id"], file["extra"], file["namespace"]), ("fé🎉", extra, "é"))

    async def test_profiles_separate(self) -> None:
        """A client only gets the files of its profile."""
        await self.set_file("a1")
        await self.set_file("b1", client=self.bob)
        self.assertEqual(await self.ids(self.alice), ["a1"])
        self.assertEqual(await self.ids(self.bob), ["b1"])

    async def test_versions(self) -> None:
        """version "" gives current versions, None every version, else that version."""
        await self.set_file("f1")
        await self.set_file("f1", version="1")
        await self.set_file("f2", version="2")
        self.assertEqual(await self.ids(), ["f1"])
        self.assertEqual(await self.ids(version=None), ["f1", "f1", "f2"])
        self.assertEqual(await self.ids(version="2"), ["f2"])

    async def test_filters(self) -> None:
        """Each column filter keeps the matching files; None filters are ignored."""
        await self.set_file("d", type_="directory")
        await self.set_file("f1", parent="d", file_hash="h1", hash_algo="sha-256", namespace="n")
        await self.set_file("f2", parent="d", file_hash="h2", hash_algo="sha-512", name="x.txt")
        self.assertEqual(await self.ids(parent=""), ["d"])
        self.assertEqual(await self.ids(parent="d"), ["f1", "f2"])
        self.assertEqual(await self.ids(type_="directory"), ["d"])
        self.assertEqual(await self.ids(type_=FileType.file), ["f1", "f2"])
        self.assertEqual(await self.ids(file_hash="h2", hash_algo="sha-512"), ["f2"])
        self.assertEqual(await self.ids(file_hash="h2", hash_algo="sha-256"), [])
        self.assertEqual(await self.ids(name="x.txt"), ["f2"])
        self.assertEqual(await self.ids(namespace="n"), ["f1"])
        self.assertEqual(await self.ids(file_id="f1"), ["f1"])
        self.assertEqual(await self.ids(file_id=None, name=None, parent=None), ["d", "f1", "f2"])

    async def test_mime_type(self) -> None:
        """mime_type "type/subtype" matches both columns, "type" alone any subtype."""
        await self.set_file("jpg", media_type="image", media_subtype="jpeg")
        await self.set_file("png", media_type="image", media_subtype="png")
        await self.set_file("txt", media_type="text", media_subtype="plain")
        self.assertEqual(await self.ids(mime_type="image/png"), ["png"])
        self.assertEqual(await self.ids(mime_type="image"), ["jpg", "png"])
        self.assertEqual(await self.ids(mime_type="video/mp4"), [])

    async def test_owner(self) -> None:
        """owner matches the JID as stored: bare and full JIDs are distinct owners."""
        await self.set_file("bare", owner=OWNER)
        await self.set_file("full", owner=JID("alice@example.org/pc"))
        await self.set_file("other", owner=JID("bob@example.org"))
        self.assertEqual(await self.ids(owner=OWNER), ["bare"])
        self.assertEqual(await self.ids(owner=JID("alice@example.org/pc")), ["full"])

    async def test_public_id_without_client(self) -> None:
        """With public_id, client may be None: the file is found whatever its profile."""
        await self.set_file("f1", client=self.bob, public_id="abc")
        [file] = await self.storage.get_files(None, public_id="abc")
        self.assertEqual(file["id"], "f1")

    async def test_no_client_needs_public_id(self) -> None:
        """client None without public_id raises ValueError."""
        with self.assertRaises(ValueError):
            await self.storage.get_files(None, file_id="f1")

    async def test_access_filter(self) -> None:
        """access keeps files whose access rules equal it."""
        await self.set_file("public", access={"read": {"type": "public"}})
        await self.set_file("none")
        files = await self.storage.get_files(
            self.alice, access={"read": {"type": "public"}}, projection=["id"]
        )
        self.assertEqual(files, [{"id": "public"}])

    async def test_projection_and_unique(self) -> None:
        """projection limits the keys given; unique drops duplicate results."""
        await self.set_file("f1", namespace="n")
        await self.set_file("f2", namespace="n")
        await self.set_file("f3", namespace="m")
        files = await self.storage.get_files(self.alice, projection=["namespace"])
        self.assertEqual(sorted(f["namespace"] for f in files), ["m", "n", "n"])
        files = await self.storage.get_files(self.alice, projection=["namespace"], unique=True)
        self.assertEqual(files, [{"namespace": "m"}, {"namespace": "n"}])

    async def test_unknown_projection(self) -> None:
        """An unknown projection column raises ValueError naming it."""
        with self.assertRaises(ValueError) as cm:
            await self.storage.get_files(self.alice, projection=["id", "password"])
        self.assertIn("'password'", str(cm.exception))

    async def test_duplicate(self) -> None:
        """An existing (id, version) or public_id raises ConflictError; stored file kept."""
        await self.set_file("f1", name="first", public_id="p1")
        with self.assertRaises(ConflictError) as cm:
            await self.set_file("f1", name="second")
        self.assertIn("'f1'", str(cm.exception))
        with self.assertRaises(ConflictError) as cm:
            await self.set_file("f2", public_id="p1")
        self.assertIn("'p1'", str(cm.exception))
        self.assertEqual([f["name"] for f in await self.storage.get_files(self.alice)], ["first"])

    async def test_wrong_types(self) -> None:
        """Wrong argument types raise TypeError naming the argument; nothing stored."""
        cases = {
            "name": {"name": 3},
            "owner": {"owner": "alice@example.org"},
            "size": {"size": "12"},
            "created": {"created": "now"},
            "access": {"access": ["read"]},
            "extra": {"extra": {"when": time}},
            "parent": {"parent": 1},
        }
        for culprit, kwargs in cases.items():
            with self.assertRaises(TypeError) as cm:
                await self.set_file("f1", **kwargs)
            self.assertIn(culprit, str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            await self.storage.get_files(self.alice, owner="alice@example.org")
        self.assertIn("owner", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, File), 0)

    async def test_bad_values(self) -> None:
        """An unknown type or an out-of-range size raises ValueError; nothing stored."""
        bad = ({"type_": "link"}, "'link'"), ({"size": -1}, "size"), ({"size": 2**63}, "size")
        for kwargs, culprit in bad:
            with self.assertRaises(ValueError) as cm:
                await self.set_file("f1", **kwargs)
            self.assertIn(culprit, str(cm.exception))
        self.assertEqual(await count_rows(self.storage, File), 0)

    async def test_unknown_profile(self) -> None:
        """A client of an unknown profile raises ProfileUnknownError; nothing stored."""
        nobody = SimpleNamespace(profile="nobody")
        with self.assertRaises(ProfileUnknownError):
            await self.set_file("f1", client=nobody)
        with self.assertRaises(ProfileUnknownError):
            await self.storage.get_files(nobody)
        with self.assertRaises(ProfileUnknownError):
            await self.storage.file_get_used_space(nobody, OWNER)
        self.assertEqual(await count_rows(self.storage, File), 0)

    async def test_profile_deletion_cascades(self) -> None:
        """Deleting a profile deletes its files' metadata, not the others'."""
        await self.set_file("a1")
        await self.set_file("b1", client=self.bob)
        await self.storage.delete_profile("alice")
        self.assertEqual(await count_rows(self.storage, File), 1)
        self.assertEqual(await self.ids(self.bob), ["b1"])


class UsedSpaceDeleteTests(FilesTestCase):
    async def test_used_space(self) -> None:
        """Used space sums the sizes of the owner's files of this profile only."""
        await self.set_file("f1", owner=OWNER, size=100)
        await self.set_file("f1", version="old", owner=OWNER, size=20)
        await self.set_file("f2", owner=OWNER, size=None)
        await self.set_file("d", owner=OWNER, size=5000, type_="directory")
        await self.set_file("f3", owner=JID("bob@example.org"), size=7)
        await self.set_file("f4", owner=OWNER, size=9, client=self.bob)
        self.assertEqual(await self.storage.file_get_used_space(self.alice, OWNER), 120)

    async def test_used_space_none(self) -> None:
        """An owner without files uses 0."""
        self.assertEqual(await self.storage.file_get_used_space(self.alice, OWNER), 0)

    async def test_used_space_large(self) -> None:
        """Sizes of files over 2 GiB are stored as they are and add up."""
        for i in range(3):
            await self.set_file(f"f{i}", owner=OWNER, size=5 * 2**30)
        used = await self.storage.file_get_used_space(self.alice, OWNER)
        self.assertEqual(used, 15 * 2**30)
        files = await self.storage.get_files(self.alice, file_id="f0")
        self.assertEqual(files[0]["size"], 5 * 2**30)

    async def test_delete(self) -> None:
        """file_delete removes every version of the file, other files stay."""
        await self.set_file("f1")
        await self.set_file("f1", version="1")
        await self.set_file("f2")
        await self.storage.file_delete("f1")
        self.assertEqual(await self.ids(version=None), ["f2"])

    async def test_delete_missing(self) -> None:
        """Deleting an unknown file is not an error."""
        await self.storage.file_delete("missing")

    async def test_delete_wrong_type(self) -> None:
        """A non-text file_id raises TypeError."""
        with self.assertRaises(TypeError):
            await self.storage.file_delete(None)


class FileUpdateTests(FilesTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        await self.set_file("f1", access={"list": []})

    async def value(self, column: str = "access", version: str = "") -> Any:
        [file] = await self.storage.get_files(self.alice, file_id="f1", version=version)
        return file[column]

    def other_writer(self, value: Any) -> None:
        """Write ``value`` to f1's access from another connection (another process'
        writer), synchronously, while no transaction of the storage is open."""
        engine = getattr(self, "_engine", None)
        if engine is None:
            engine = self._engine = engines.create_engine(self.storage.db_url)
            self.addCleanup(engine.dispose)
        with Session(engine) as session, session.begin():
            session.execute(update(File).where(File.id == "f1").values(access=value))

    async def test_update(self) -> None:
        """update_cb edits the current value in place and the result is stored."""
        await self.storage.file_update("f1", "access", lambda v: v["list"].append("x"))
        self.assertEqual(await self.value(), {"list": ["x"]})

    async def test_update_unset(self) -> None:
        """An unset (NULL) column is given to update_cb as an empty dict."""
        seen = []
        await self.storage.file_update(
            "f1", "extra", lambda v: (seen.append(dict(v)), v.update(a=1))
        )
        self.assertEqual((seen, await self.value("extra")), ([{}], {"a": 1}))

    async def test_update_version(self) -> None:
        """Only the given version is updated."""
        await self.set_file("f1", version="1", access={"list": []})
        await self.storage.file_update("f1", "access", lambda v: v["list"].append(1), "1")
        self.assertEqual(await self.value(version="1"), {"list": [1]})
        self.assertEqual(await self.value(), {"list": []})

    async def test_update_retries_after_concurrent_write(self) -> None:
        """When another writer changes the column between read and write, the value is read
        again and update_cb called again: both changes land."""
        calls = []

        def update_cb(value: dict) -> None:
            calls.append(list(value["list"]))
            if len(calls) == 1:
                self.other_writer({"list": ["other"]})
            value["list"].append("mine")

        await self.storage.file_update("f1", "access", update_cb)
        self.assertEqual(calls, [[], ["other"]])
        self.assertEqual(await self.value(), {"list": ["other", "mine"]})

    async def test_update_gives_up(self) -> None:
        """After file_update_attempts lost races, ConflictError; the other writes stay."""
        self.storage.file_update_attempts = 3
        calls = []

        def update_cb(value: dict) -> None:
            calls.append(1)
            self.other_writer({"list": [f"other{len(calls)}"]})
            value["list"].append("mine")

        with self.assertRaises(ConflictError) as cm:
            await self.storage.file_update("f1", "access", update_cb)
        self.assertIn("'f1'", str(cm.exception))
        self.assertEqual(len(calls), 3)
        self.assertEqual(await self.value(), {"list": ["other3"]})

    async def test_concurrent_updates(self) -> None:
        """Concurrent file_update calls on one file all land (several DB threads on
        PostgreSQL, interleaved transactions on SQLite)."""
        await defer.gatherResults(
            [
                self.storage.file_update("f1", "access", lambda v, i=i: v["list"].append(i))
                for i in range(8)
            ],
            consumeErrors=True,
        )
        self.assertEqual(sorted((await self.value())["list"]), list(range(8)))

    async def test_bad_column(self) -> None:
        """A column other than access/extra raises ValueError naming it."""
        with self.assertRaises(ValueError) as cm:
            await self.storage.file_update("f1", "name", lambda v: None)
        self.assertIn("'name'", str(cm.exception))

    async def test_missing_file(self) -> None:
        """Updating an unknown file raises NotFound."""
        with self.assertRaises(NotFound):
            await self.storage.file_update("missing", "access", lambda v: None)

    async def test_not_serialisable(self) -> None:
        """A value update_cb made non-JSON raises TypeError; the stored value is kept."""
        with self.assertRaises(TypeError) as cm:
            await self.storage.file_update("f1", "access", lambda v: v.update(bad={1}))
        self.assertIn("access of file 'f1'", str(cm.exception))
        self.assertEqual(await self.value(), {"list": []})

    async def test_callback_error(self) -> None:
        """An exception of update_cb is passed on; the stored value is kept."""

        def update_cb(value: dict) -> None:
            value["list"].append(1)
            raise RuntimeError("boom")

        with self.assertRaises(RuntimeError):
            await self.storage.file_update("f1", "access", update_cb)
        self.assertEqual(await self.value(), {"list": []})

    async def test_stored_json(self) -> None:
        """access is stored as JSON (readable by the database)."""
        await self.storage.file_update("f1", "access", lambda v: v.update(n=1))
        stored = await self.storage.db.run(
            lambda session: session.execute(select(File.access)).scalar_one()
        )
        self.assertEqual(stored, {"list": [], "n": 1})
