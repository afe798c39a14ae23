"""Message history: add_to_history and history_get."""

from typing import Any

from sqlalchemy import event, select
from twisted.internet import defer
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage.exceptions import ProfileUnknownError
from sat_storage.models import History, Message, Subject, Thread
from twisted_tests.db import storage_with_profiles
from twisted_tests.storage.helpers import count_rows

ALICE = JID("alice@example.org/phone")
ALICE_PC = JID("alice@example.org/pc")
BOB = JID("bob@example.net/home")
CAROL = JID("carol@example.com/work")
HISTORY_TABLES = (History, Message, Subject, Thread)


def msg(
    uid: str,
    from_: JID = ALICE,
    to: JID = BOB,
    timestamp: float = 1000.0,
    message: Any = None,
    type_: str = "chat",
    extra: Any = None,
    subject: Any = None,
) -> dict[str, Any]:
    """Message data as a Libervia host builds it."""
    return {
        "uid": uid,
        "from": from_,
        "to": to,
        "timestamp": timestamp,
        "message": {"": f"text of {uid}"} if message is None else message,
        "subject": subject or {},
        "type": type_,
        "extra": extra or {},
    }


class HistoryTestCase(TestCase):
    async def setUp(self) -> None:
        self.storage = await storage_with_profiles(self, "alice", "bob")

    async def add(self, *messages: dict[str, Any], profile: str = "alice") -> None:
        for data in messages:
            await self.storage.add_to_history(data, profile)

    async def uids(self, *args: Any, **kwargs: Any) -> list[str]:
        kwargs.setdefault("profile", "alice")
        return [row[0] for row in await self.storage.history_get(*args, **kwargs)]


class AddTests(HistoryTestCase):
    async def test_round_trip(self) -> None:
        """A stored message comes back as (uid, timestamp, from, to, message, subject, type,
        extra) with full JIDs as text and float timestamp."""
        await self.add(
            msg(
                "m1",
                timestamp=1234,
                message={"": "hello", "fr": "bonjour"},
                subject={"en": "greetings"},
                extra={"custom": {"a": [1, 2]}},
            )
        )
        [row] = await self.storage.history_get(None, None, profile="alice")
        self.assertEqual(
            row,
            (
                "m1",
                1234.0,
                "alice@example.org/phone",
                "bob@example.net/home",
                {"": "hello", "fr": "bonjour"},
                {"en": "greetings"},
                "chat",
                {"custom": {"a": [1, 2]}},
            ),
        )
        self.assertIsInstance(row[1], float)

    async def test_bare_jids(self) -> None:
        """JIDs without resource are stored and given back bare."""
        await self.add(msg("m1", from_=JID("alice@example.org"), to=JID("example.net")))
        [row] = await self.storage.history_get(None, None, profile="alice")
        self.assertEqual(row[2:4], ("alice@example.org", "example.net"))

    async def test_special_extra_columns(self) -> None:
        """origin_id, stanza_id, update_uid, received_timestamp, thread and thread_parent
        are kept in their own columns/table and given back in extra."""
        extra = {
            "origin_id": "o1",
            "stanza_id": "s1",
            "update_uid": "u0",
            "received_timestamp": 1001.5,
            "thread": "t1",
            "thread_parent": "t0",
            "other": "kept",
        }
        await self.add(msg("m1", extra=extra))
        [row] = await self.storage.history_get(None, None, profile="alice")
        self.assertEqual(row[7], extra)

        def stored(session) -> tuple:
            h = session.scalars(select(History)).one()
            t = session.scalars(select(Thread)).one()
            return (h.origin_id, h.stanza_id, h.update_uid, h.received_timestamp, h.extra,
                    t.history_uid, t.thread_id, t.parent_id)  # fmt: skip

        self.assertEqual(
            await self.storage.db.run(stored),
            ("o1", "s1", "u0", 1001.5, {"other": "kept"}, "m1", "t1", "t0"),
        )

    async def test_received_timestamp_top_level(self) -> None:
        """A received_timestamp at the top of data (where Libervia puts it) is kept too."""
        data = msg("m1")
        data["received_timestamp"] = 1002.0
        await self.add(data)
        [row] = await self.storage.history_get(None, None, profile="alice")
        self.assertEqual(row[7], {"received_timestamp": 1002.0})

    async def test_input_not_modified(self) -> None:
        """add_to_history leaves the caller's data untouched."""
        data = msg("m1", extra={"stanza_id": "s1", "other": 1})
        await self.add(data)
        self.assertEqual(data["extra"], {"stanza_id": "s1", "other": 1})

    async def test_empty_texts(self) -> None:
        """A message without body nor subject (e.g. a chat state) round-trips with {}."""
        await self.add(msg("m1", message={}))
        [row] = await self.storage.history_get(None, None, profile="alice")
        self.assertEqual((row[4], row[5], row[7]), ({}, {}, {}))

    async def test_unicode_and_large(self) -> None:
        """Unicode JIDs, languages and large texts round-trip."""
        big = "日本語のテキスト ✓ 🎉 " * 20_000
        from_ = JID("élise@exämple.org/téléphone")
        await self.add(msg("ü🎉", from_=from_, message={"ja": big, "": "ça"}, subject={"": big}))
        [row] = await self.storage.history_get(from_, None, profile="alice")
        self.assertEqual(row[0], "ü🎉")
        self.assertEqual(row[2], from_.full())
        self.assertEqual(row[4], {"ja": big, "": "ça"})
        self.assertEqual(row[5], {"": big})

    async def test_duplicate_uid_ignored(self) -> None:
        """A message with an existing uid is ignored (False) and the stored one kept."""
        self.assertTrue(await self.storage.add_to_history(msg("m1", message={"": "a"}), "alice"))
        stored = await self.storage.add_to_history(msg("m1", message={"": "b"}), "alice")
        self.assertFalse(stored)
        [row] = await self.storage.history_get(None, None, profile="alice")
        self.assertEqual(row[4], {"": "a"})
        self.assertEqual(await count_rows(self.storage, Message), 1)

    async def test_duplicate_stanza_id_ignored(self) -> None:
        """A second message with the same stanza_id between the same JIDs is ignored."""
        await self.add(msg("m1", extra={"stanza_id": "s1"}))
        await self.add(msg("m2", extra={"stanza_id": "s1"}))
        await self.add(msg("m3", to=CAROL, extra={"stanza_id": "s1"}))
        self.assertEqual(await self.uids(None, None), ["m1", "m3"])

    async def test_duplicate_origin_id_ignored(self) -> None:
        """A second message with the same origin_id from the same sender is ignored."""
        await self.add(msg("m1", extra={"origin_id": "o1"}))
        await self.add(msg("m2", to=CAROL, extra={"origin_id": "o1"}))
        await self.add(msg("m3", from_=CAROL, extra={"origin_id": "o1"}))
        self.assertEqual(await self.uids(None, None), ["m1", "m3"])

    async def test_concurrent_duplicates(self) -> None:
        """Many concurrent adds of one message store it once, without error."""
        results = await defer.gatherResults(
            [self.storage.add_to_history(msg("m1"), "alice") for _ in range(20)],
            consumeErrors=True,
        )
        self.assertEqual(sorted(results), [False] * 19 + [True])
        self.assertEqual(await count_rows(self.storage, History), 1)

    async def test_unknown_type(self) -> None:
        """An unknown message type raises ValueError naming it; nothing is stored."""
        with self.assertRaises(ValueError) as cm:
            await self.add(msg("m1", type_="shout"))
        self.assertIn("'shout'", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, *HISTORY_TABLES), 0)

    async def test_missing_key(self) -> None:
        """Data without a required key raises ValueError naming it."""
        data = msg("m1")
        del data["timestamp"]
        with self.assertRaises(ValueError) as cm:
            await self.add(data)
        self.assertIn("'timestamp'", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, *HISTORY_TABLES), 0)

    async def test_thread_parent_without_thread(self) -> None:
        """A thread_parent without thread raises ValueError; nothing is stored."""
        with self.assertRaises(ValueError) as cm:
            await self.add(msg("m1", extra={"thread_parent": "t0"}))
        self.assertIn("thread_parent", str(cm.exception))
        self.assertEqual(await count_rows(self.storage, *HISTORY_TABLES), 0)

    async def test_wrong_types(self) -> None:
        """Wrong types in the data raise TypeError naming the culprit; nothing is stored."""
        cases = {
            "data": "not a dict",
            "data['from']": msg("m1", from_="alice@example.org"),
            "data['uid']": {**msg("m1"), "uid": 1},
            "data['timestamp']": msg("m1", timestamp="1000"),
            "data['message']": msg("m1", message="hello"),
            "data['message']['fr']": msg("m1", message={"fr": 3}),
            "data['extra']['custom']": msg("m1", extra={"custom": {1, 2}}),
            "data['extra']['stanza_id']": msg("m1", extra={"stanza_id": 5}),
            "received_timestamp": msg("m1", extra={"received_timestamp": "x"}),
        }
        for culprit, data in cases.items():
            with self.assertRaises(TypeError) as cm:
                await self.add(data)
            self.assertIn(culprit, str(cm.exception))
        self.assertEqual(await count_rows(self.storage, *HISTORY_TABLES), 0)

    async def test_unknown_profile(self) -> None:
        """An unknown profile raises ProfileUnknownError; nothing is stored."""
        with self.assertRaises(ProfileUnknownError):
            await self.storage.add_to_history(msg("m1"), "nobody")
        self.assertEqual(await count_rows(self.storage, *HISTORY_TABLES), 0)

    async def test_profile_deletion_cascades(self) -> None:
        """Deleting a profile deletes its messages, texts and threads, not the others'."""
        await self.add(
            msg("a1", subject={"": "s"}, extra={"thread": "t"}),
            msg("a2", message={"": "x", "fr": "y"}),
        )
        await self.add(msg("b1", subject={"": "s"}, extra={"thread": "t"}), profile="bob")
        await self.storage.delete_profile("alice")
        self.assertEqual(await count_rows(self.storage, History), 1)
        self.assertEqual(await count_rows(self.storage, Message, Subject, Thread), 3)
        self.assertEqual(await self.uids(None, None, profile="bob"), ["b1"])


class GetTests(HistoryTestCase):
    async def test_empty(self) -> None:
        """An empty history gives an empty list."""
        self.assertEqual(await self.uids(None, None), [])

    async def test_limit_newest_oldest_first(self) -> None:
        """limit gives the newest messages, returned oldest first."""
        await self.add(*(msg(f"m{i}", timestamp=1000 + i) for i in (3, 1, 4, 0, 2)))
        self.assertEqual(await self.uids(None, None, limit=3), ["m2", "m3", "m4"])

    async def test_limit_none_and_zero(self) -> None:
        """limit None gives every message, limit 0 none."""
        await self.add(*(msg(f"m{i}", timestamp=1000 + i) for i in range(3)))
        self.assertEqual(await self.uids(None, None, limit=None), ["m0", "m1", "m2"])
        self.assertEqual(await self.uids(None, None, limit=0), [])

    async def test_multi_language_counts_once(self) -> None:
        """A message in several languages counts once towards limit, with all languages."""
        texts = {"": "hi", "fr": "salut", "de": "hallo", "ja": "やあ"}
        await self.add(
            msg("m0", timestamp=1000),
            msg("m1", timestamp=1001, message=texts, subject={"": "s", "fr": "sujet"}),
            msg("m2", timestamp=1002, message=texts),
        )
        rows = await self.storage.history_get(None, None, limit=2, profile="alice")
        self.assertEqual([row[0] for row in rows], ["m1", "m2"])
        self.assertEqual([row[4] for row in rows], [texts, texts])
        self.assertEqual(rows[0][5], {"": "s", "fr": "sujet"})

    async def test_ties_ordered(self) -> None:
        """Messages with the same timestamp are ordered by reception time, then uid."""
        await self.add(
            msg("b", timestamp=1000, extra={"received_timestamp": 1005.0}),
            msg("c", timestamp=1000),
            msg("a", timestamp=1000, extra={"received_timestamp": 1003.0}),
            msg("d", timestamp=999, extra={"received_timestamp": 2000.0}),
        )
        self.assertEqual(await self.uids(None, None), ["d", "c", "a", "b"])
        self.assertEqual(await self.uids(None, None, limit=2), ["a", "b"])

    async def test_between(self) -> None:
        """between=True matches both directions between the two JIDs, and only them."""
        await self.add(
            msg("ab", ALICE, BOB, 1000),
            msg("ba", BOB, ALICE, 1001),
            msg("ac", ALICE, CAROL, 1002),
            msg("cb", CAROL, BOB, 1003),
        )
        self.assertEqual(await self.uids(ALICE, BOB), ["ab", "ba"])
        self.assertEqual(await self.uids(BOB, ALICE), ["ab", "ba"])

    async def test_not_between(self) -> None:
        """between=False matches one direction only."""
        await self.add(msg("ab", ALICE, BOB, 1000), msg("ba", BOB, ALICE, 1001))
        self.assertEqual(await self.uids(ALICE, BOB, between=False), ["ab"])
        self.assertEqual(await self.uids(BOB, ALICE, between=False), ["ba"])

    async def test_one_jid(self) -> None:
        """With one JID None, between gives messages from or to the other; without
        between, from_jid filters the sender and to_jid the recipient."""
        await self.add(
            msg("ab", ALICE, BOB, 1000),
            msg("ca", CAROL, ALICE, 1001),
            msg("cb", CAROL, BOB, 1002),
        )
        self.assertEqual(await self.uids(ALICE, None), ["ab", "ca"])
        self.assertEqual(await self.uids(None, ALICE), ["ab", "ca"])
        self.assertEqual(await self.uids(CAROL, None, between=False), ["ca", "cb"])
        self.assertEqual(await self.uids(None, BOB, between=False), ["ab", "cb"])

    async def test_bare_jid_matches_resources(self) -> None:
        """A bare JID matches every resource; a full JID only its own."""
        await self.add(msg("phone", ALICE, BOB, 1000), msg("pc", ALICE_PC, BOB, 1001))
        self.assertEqual(await self.uids(JID("alice@example.org"), BOB), ["phone", "pc"])
        self.assertEqual(await self.uids(ALICE_PC, BOB), ["pc"])
        self.assertEqual(await self.uids(ALICE_PC, JID("bob@example.net")), ["pc"])
        self.assertEqual(await self.uids(JID("alice@example.org/other"), None), [])

    async def test_profiles_separate(self) -> None:
        """Each profile only sees its own history."""
        await self.add(msg("a1"))
        await self.add(msg("b1"), profile="bob")
        self.assertEqual(await self.uids(None, None), ["a1"])
        self.assertEqual(await self.uids(None, None, profile="bob"), ["b1"])

    async def test_filters_none_and_empty(self) -> None:
        """filters None and {} filter nothing."""
        await self.add(msg("m1"))
        self.assertEqual(await self.uids(None, None, filters=None), ["m1"])
        self.assertEqual(await self.uids(None, None, filters={}), ["m1"])

    async def test_timestamp_start(self) -> None:
        """timestamp_start keeps messages at or after it (number or Libervia's text)."""
        await self.add(*(msg(f"m{i}", timestamp=1000 + i) for i in range(4)))
        self.assertEqual(
            await self.uids(None, None, filters={"timestamp_start": 1002}), ["m2", "m3"]
        )
        self.assertEqual(await self.uids(None, None, filters={"timestamp_start": "1003"}), ["m3"])

    async def test_before_uid_pages(self) -> None:
        """before_uid with limit pages backwards through history without gaps or repeats."""
        await self.add(*(msg(f"m{i}", timestamp=1000 + i // 2) for i in range(7)))
        pages = []
        uids = await self.uids(None, None, limit=3)
        while uids:
            pages.append(uids)
            uids = await self.uids(None, None, limit=3, filters={"before_uid": uids[0]})
        self.assertEqual(pages, [["m4", "m5", "m6"], ["m1", "m2", "m3"], ["m0"]])

    async def test_before_unknown_uid(self) -> None:
        """before_uid naming no message gives an empty list."""
        await self.add(msg("m1"))
        self.assertEqual(await self.uids(None, None, filters={"before_uid": "nope"}), [])

    async def test_before_uid_other_profile(self) -> None:
        """before_uid naming another profile's message gives an empty list."""
        await self.add(msg("a1", timestamp=1))
        await self.add(msg("b1", timestamp=2), profile="bob")
        self.assertEqual(await self.uids(None, None, filters={"before_uid": "b1"}), [])

    async def test_body(self) -> None:
        """body keeps messages containing the substring (case-sensitive, in any language,
        LIKE wildcards taken literally)."""
        await self.add(
            msg("m1", timestamp=1, message={"": "Hello world"}),
            msg("m2", timestamp=2, message={"": "hello", "fr": "le monde entier"}),
            msg("m3", timestamp=3, message={"": "100% sure_thing"}),
            msg("m4", timestamp=4, message={"": "100 x sure"}),
        )
        self.assertEqual(await self.uids(None, None, filters={"body": "Hello"}), ["m1"])
        self.assertEqual(await self.uids(None, None, filters={"body": "monde"}), ["m2"])
        self.assertEqual(await self.uids(None, None, filters={"body": "0% s"}), ["m3"])
        self.assertEqual(await self.uids(None, None, filters={"body": "e_t"}), ["m3"])

    async def test_search(self) -> None:
        """search is case-insensitive (unicode letters too) and looks in every language."""
        await self.add(
            msg("m1", timestamp=1, message={"": "Hello World"}),
            msg("m2", timestamp=2, message={"en": "summer", "fr": "L'ÉTÉ arrive"}),
            msg("m3", timestamp=3, message={"": "nothing"}),
        )
        self.assertEqual(await self.uids(None, None, filters={"search": "wORLD"}), ["m1"])
        self.assertEqual(await self.uids(None, None, filters={"search": "été"}), ["m2"])
        self.assertEqual(await self.uids(None, None, filters={"search": "%"}), [])

    async def test_search_resource(self) -> None:
        """search also matches the sender's resource (a MUC nickname), like Libervia."""
        room = JID("room@muc.example.org/Louise")
        await self.add(msg("m1", from_=room, type_="groupchat"), msg("m2"))
        self.assertEqual(await self.uids(None, None, filters={"search": "louise"}), ["m1"])

    async def test_types(self) -> None:
        """types / not_types keep / drop the listed types (list or space-separated text)."""
        await self.add(
            msg("c", timestamp=1, type_="chat"),
            msg("g", timestamp=2, type_="groupchat"),
            msg("h", timestamp=3, type_="headline"),
        )
        self.assertEqual(await self.uids(None, None, filters={"types": ["chat"]}), ["c"])
        self.assertEqual(
            await self.uids(None, None, filters={"types": "chat headline"}), ["c", "h"]
        )
        self.assertEqual(
            await self.uids(None, None, filters={"not_types": "groupchat"}), ["c", "h"]
        )
        self.assertEqual(await self.uids(None, None, filters={"types": []}), [])

    async def test_last_stanza_id(self) -> None:
        """last_stanza_id gives the newest message having a stanza_id."""
        await self.add(
            msg("m1", timestamp=1, extra={"stanza_id": "s1"}),
            msg("m2", timestamp=2, extra={"stanza_id": "s2"}),
            msg("m3", timestamp=3),
        )
        rows = await self.storage.history_get(
            None, None, limit=1, filters={"last_stanza_id": True}, profile="alice"
        )
        self.assertEqual([(row[0], row[7]["stanza_id"]) for row in rows], [("m2", "s2")])

    async def test_last_stanza_id_needs_limit_1(self) -> None:
        """last_stanza_id without limit=1 raises ValueError."""
        with self.assertRaises(ValueError) as cm:
            await self.uids(None, None, filters={"last_stanza_id": True})
        self.assertIn("last_stanza_id", str(cm.exception))

    async def test_origin_id(self) -> None:
        """origin_id keeps the message with that origin id."""
        await self.add(msg("m1", extra={"origin_id": "o1"}), msg("m2", extra={"origin_id": "o2"}))
        self.assertEqual(await self.uids(None, None, filters={"origin_id": "o2"}), ["m2"])

    async def test_filters_combined(self) -> None:
        """Filters, JIDs and limit combine (all must hold)."""
        await self.add(
            msg("m1", ALICE, BOB, 1, message={"": "x yes"}),
            msg("m2", BOB, ALICE, 2, message={"": "yes"}),
            msg("m3", ALICE, CAROL, 3, message={"": "yes"}),
            msg("m4", ALICE, BOB, 4, message={"": "no"}),
            msg("m5", ALICE, BOB, 5, message={"": "yes"}, type_="normal"),
        )
        filters = {"body": "yes", "types": ["chat"], "timestamp_start": 1}
        self.assertEqual(await self.uids(ALICE, BOB, filters=filters), ["m1", "m2"])
        self.assertEqual(await self.uids(ALICE, BOB, limit=1, filters=filters), ["m2"])

    async def test_unknown_filter(self) -> None:
        """An unknown filter key raises ValueError naming it."""
        with self.assertRaises(ValueError) as cm:
            await self.uids(None, None, filters={"bogus": "x"})
        self.assertIn("'bogus'", str(cm.exception))

    async def test_unknown_type_filter(self) -> None:
        """An unknown type in types/not_types raises ValueError naming it."""
        with self.assertRaises(ValueError) as cm:
            await self.uids(None, None, filters={"not_types": "chat shout"})
        self.assertIn("'shout'", str(cm.exception))

    async def test_wrong_types(self) -> None:
        """Wrong argument types raise TypeError naming the argument."""
        cases = [
            ((ALICE.full(), None), {}, "from_jid"),
            ((None, 3), {}, "to_jid"),
            ((None, None), {"limit": "10"}, "limit"),
            ((None, None), {"between": None}, "between"),
            ((None, None), {"filters": [("body", "x")]}, "filters"),
            ((None, None), {"filters": {"body": 3}}, "filters['body']"),
            ((None, None), {"profile": None}, "profile"),
        ]
        for args, kwargs, culprit in cases:
            kwargs.setdefault("profile", "alice")
            with self.assertRaises(TypeError) as cm:
                await self.storage.history_get(*args, **kwargs)
            self.assertIn(culprit, str(cm.exception))

    async def test_negative_limit(self) -> None:
        """A negative limit raises ValueError."""
        with self.assertRaises(ValueError):
            await self.uids(None, None, limit=-1)

    async def test_unknown_profile(self) -> None:
        """An unknown profile raises ProfileUnknownError."""
        with self.assertRaises(ProfileUnknownError):
            await self.uids(None, None, profile="nobody")

    async def test_no_n_plus_one(self) -> None:
        """The number of queries does not grow with the number of messages returned."""
        await self.add(
            *(
                msg(f"m{i}", timestamp=i, message={"": "a", "fr": "b"}, subject={"": "s"},
                    extra={"thread": "t"})
                for i in range(30)
            )
        )  # fmt: skip
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append(statement)

        engine = self.storage.db.engine
        event.listen(engine, "before_cursor_execute", count)
        self.addCleanup(event.remove, engine, "before_cursor_execute", count)
        rows = await self.storage.history_get(None, None, limit=25, profile="alice")
        self.assertEqual(len(rows), 25)
        self.assertLessEqual(len(statements), 4)
