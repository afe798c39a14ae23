"""Differential property-based tests of search_pubsub_items: SQLite, PostgreSQL, oracle.

Hypothesis generates data sets, stored through the public API into a SQLite file
and a PostgreSQL database (the test server of pg_server.py, whatever
``SAT_STORAGE_TEST_DB`` says: both engines are compared in one test), and valid
queries over every documented key and operator. Each answer is compared three ways:
SQLite, PostgreSQL and the pure-Python oracle of the documented semantics
(search_oracle.py): ordered lists of items when the order is total (every order
ends with creation order), sets when the full-text rank decides. Generated invalid
queries must raise ``ValueError`` naming the culprit on both engines, data unchanged.

The number of examples is a Hypothesis settings profile chosen by
``SAT_STORAGE_HYPOTHESIS``: ``ci`` (default, bounded: a minute or so), ``dev`` (a
few examples) or ``long`` (a long local run, e.g.
``SAT_STORAGE_HYPOTHESIS=long python -m twisted.trial
twisted_tests.storage.test_search_differential``). The counts of examples and
queries are logged to trial's test.log (``search differential:`` lines).
Without a PostgreSQL server (no ``initdb``), the tests skip, saying why.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, threads
from twisted.python import log
from twisted.trial.unittest import SkipTest, TestCase

from sat_storage import Storage
from twisted_tests.db import make_storage, migrate, sqlite_url
from twisted_tests.storage import search_data
from twisted_tests.storage.search_oracle import Oracle
from twisted_tests.storage.search_strategies import data_sets, invalid_queries, queries

PROFILE_ENV = "SAT_STORAGE_HYPOTHESIS"
_common = {
    "deadline": None,
    "report_multiple_bugs": False,  # trial shows one error, not an ExceptionGroup
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=50, database=None, **_common)
# dev: quick feedback, the first failure as found (no shrinking)
settings.register_profile("dev", max_examples=40, database=None, phases=[Phase.generate], **_common)
settings.register_profile("long", max_examples=2000, **_common)
# (examples, queries per example); trial's timeout per test, seconds
PROFILE = os.environ.get(PROFILE_ENV, "ci")
QUERIES = {"ci": 8, "dev": 4, "long": 12}
TIMEOUTS = {"ci": 600, "dev": 300, "long": 6 * 3600}
if PROFILE not in QUERIES:
    raise RuntimeError(f"{PROFILE_ENV} must be one of {', '.join(QUERIES)}, not {PROFILE!r}")


def postgresql_url(testcase: TestCase) -> str:
    """A fresh migrated PostgreSQL database, or SkipTest when no server can run."""
    from twisted_tests.pg_server import fresh_database

    try:
        return fresh_database(testcase, migrate)
    except RuntimeError as e:  # no server installed, or it did not start
        raise SkipTest(f"the differential search tests need PostgreSQL: {e}") from None


async def engine_storages(testcase: TestCase) -> dict[str, Storage]:
    """A storage on a new SQLite file and one on a new PostgreSQL database (the test
    server, whatever the suite's engine), closed at cleanup."""
    pg_url = postgresql_url(testcase)
    return {
        "sqlite": await make_storage(testcase, sqlite_url(testcase)),
        "postgresql": await make_storage(testcase, pg_url),
    }


def canonical(*fields: Any) -> str:
    """An item's identity and parsed data as comparable text.

    What PostgreSQL's jsonb does not keep is left out: the order of object keys and
    the sign of a float zero (documented).
    """

    def unsigned_zero(value: Any) -> Any:
        if isinstance(value, float) and value == 0:
            return 0.0
        if isinstance(value, dict):
            return {k: unsigned_zero(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [unsigned_zero(v) for v in value]
        return value

    return json.dumps(unsigned_zero(fields), sort_keys=True, ensure_ascii=False)


def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` (giving a Deferred or a coroutine) on the reactor from a worker thread."""
    return threads.blockingCallFromThread(
        reactor, lambda: defer.ensureDeferred(fn(*args, **kwargs))
    )


class DifferentialSearchTests(TestCase):
    timeout = TIMEOUTS[PROFILE]

    async def setUp(self) -> None:
        self.storages = await engine_storages(self)
        self.stats: Counter[str] = Counter()
        self.stopping = False  # set when the test ends (timeout): no more examples
        self.addCleanup(setattr, self, "stopping", True)

    def tearDown(self) -> None:
        log.msg(f"search differential: {self.id()} profile={PROFILE} {dict(self.stats)}")

    # --- storing a data set on every engine and in the oracle ---

    async def store(self, data_set: dict[str, Any], oracle: Oracle) -> None:
        for storage in self.storages.values():
            nodes = []
            for profile in data_set["profiles"]:
                await storage.create_profile(profile)
            for spec in data_set["nodes"]:
                nodes.append(
                    await search_data.node(
                        storage, spec["profile"], search_data.JID(spec["service"]), spec["name"],
                        type_=spec["type"], subtype=spec["subtype"],
                    )
                )  # fmt: skip
            for index, batch in data_set["writes"]:
                items = [search_data.atom_item(e["name"], e["title"], e["content"]) for e in batch]
                profile = data_set["nodes"][index]["profile"]
                await search_data.cache(
                    storage, profile, nodes[index], items, [e["parsed"] for e in batch]
                )
        for index, batch in data_set["writes"]:
            oracle.cache(data_set["nodes"][index]["profile"], data_set["nodes"][index], batch)

    async def clear(self, profiles: list[str]) -> None:
        for storage in self.storages.values():
            for profile in profiles:
                if storage.has_profile(profile):
                    await storage.delete_profile(profile)

    # --- answers ---

    async def answers(self, query: dict[str, Any], all_profiles: bool) -> dict[str, list[Any]]:
        """Each engine's answer as (profile, service, node, item, parsed) tuples."""
        result = {}
        for dialect, storage in self.storages.items():
            names = {storage.get_profile_id(p): p for p in storage.get_profiles_list()}
            items = await storage.search_pubsub_items(
                copy.deepcopy(query), all_profiles=all_profiles
            )
            result[dialect] = [
                (names[i.node.profile_id], i.node.service, i.node.name, i.name, i.parsed)
                for i in items
            ]
        return result

    async def compare(self, oracle: Oracle, query: dict[str, Any], all_profiles: bool) -> None:
        expected = [canonical(*i.key, i.parsed) for i in oracle.search(query)]
        got = await self.answers(query, all_profiles)
        order_by = query.get("order-by")
        ranked = "fts" in query and (
            not order_by or any(e.get("order") == "rank" for e in order_by)
        )
        context = f"query={query!r} all_profiles={all_profiles}"
        for dialect, items in got.items():
            answer = [canonical(*i) for i in items]
            if not ranked:
                self.assertEqual(answer, expected, f"{dialect}: {context}")
                continue
            # the rank's values are engine-specific: sets (and page sizes) only
            everything = {
                canonical(*i.key, i.parsed) for i in oracle.search(dict(query, index=0, limit=None))
            }
            if "index" in query or "limit" in query:
                self.assertEqual(len(answer), len(expected), f"{dialect}: {context}")
                self.assertEqual(set(answer) - everything, set(), f"{dialect}: extra, {context}")
            else:
                self.assertEqual(set(answer) - everything, set(), f"{dialect}: extra, {context}")
                self.assertEqual(everything - set(answer), set(), f"{dialect}: missing, {context}")

    # --- the tests ---

    def run_examples(
        self, check: Callable[[Oracle, st.DataObject, list[str]], None]
    ) -> defer.Deferred[None]:
        """For generated data sets stored on both engines and in the oracle, run
        ``check(oracle, data)`` a few times, in a thread (the reactor serves the
        storages meanwhile); the data set is removed after each example."""

        @settings(settings.get_profile(PROFILE))
        @given(data_sets(), st.data())
        def test(data_set: dict[str, Any], data: st.DataObject) -> None:
            if self.stopping:
                return
            self.stats["examples"] += 1
            oracle = Oracle()
            try:
                blocking(self.store, data_set, oracle)
                for _ in range(data.draw(st.integers(1, QUERIES[PROFILE]), label="queries")):
                    check(oracle, data, data_set["profiles"])
                    self.stats["queries"] += 1
                # the stored data is what the oracle holds (unchanged by any query)
                blocking(self.compare, oracle, {"profiles": data_set["profiles"]}, False)
            finally:
                blocking(self.clear, data_set["profiles"])

        return threads.deferToThread(test)

    def test_engines_agree_with_oracle(self) -> None:
        """Generated data and valid queries: SQLite, PostgreSQL and the oracle agree."""

        def check(oracle: Oracle, data: st.DataObject, profiles: list[str]) -> None:
            query, all_profiles = data.draw(queries(profiles), label="query")
            blocking(self.compare, oracle, query, all_profiles)

        return self.run_examples(check)

    def test_invalid_queries_refused(self) -> None:
        """Generated invalid queries: ValueError naming the culprit, data unchanged."""

        def check(oracle: Oracle, data: st.DataObject, profiles: list[str]) -> None:
            query, all_profiles, culprit = data.draw(invalid_queries(profiles), label="invalid")
            for dialect, storage in self.storages.items():
                with self.assertRaises(ValueError, msg=f"{dialect}: {query!r}") as caught:
                    blocking(storage.search_pubsub_items, query, all_profiles=all_profiles)
                self.assertIn(culprit, str(caught.exception), f"{dialect}: {query!r}")

        return self.run_examples(check)
