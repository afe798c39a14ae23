"""Analyser registration, validation and matching (pure logic)."""

from sat_storage.plugins.pubsub_cache.analysers import AnalyserRegistry, validate
from twisted.trial.unittest import TestCase

from sat_storage.exceptions import ConflictError

NS_ATOM = "http://www.w3.org/2005/Atom"


def blog(**extra: object) -> dict:
    analyser = {"name": "Blog", "type": "blog", "node": "urn:xmpp:microblog:0"}
    analyser.update(extra)
    return analyser


class ValidationTests(TestCase):
    def test_name_normalised(self) -> None:
        """The stored name is stripped and lower-cased; the caller's dict is untouched."""
        given = blog(name="  XEP-0277 ")
        checked = validate(given)
        self.assertEqual(checked["name"], "xep-0277")
        self.assertEqual(given["name"], "  XEP-0277 ")

    def test_to_sync_defaults_false(self) -> None:
        """``to_sync`` defaults to False."""
        self.assertIs(validate(blog())["to_sync"], False)

    def test_missing_name(self) -> None:
        """A missing name is a ValueError naming 'name'."""
        analyser = blog()
        del analyser["name"]
        with self.assertRaisesRegex(ValueError, "'name'"):
            validate(analyser)

    def test_blank_name(self) -> None:
        """A blank name is a ValueError naming 'name'."""
        with self.assertRaisesRegex(ValueError, "'name'"):
            validate(blog(name="   "))

    def test_missing_type(self) -> None:
        """A missing type is a ValueError naming 'type'."""
        analyser = blog()
        del analyser["type"]
        with self.assertRaisesRegex(ValueError, "'type'"):
            validate(analyser)

    def test_node_or_namespace_needed(self) -> None:
        """Without node and namespace, the error names both keys."""
        analyser = blog()
        del analyser["node"]
        with self.assertRaisesRegex(ValueError, "'node' and 'namespace'"):
            validate(analyser)

    def test_namespace_alone_is_enough(self) -> None:
        """A namespace without node prefix is valid."""
        analyser = blog(namespace=NS_ATOM)
        del analyser["node"]
        self.assertEqual(validate(analyser)["namespace"], NS_ATOM)

    def test_bad_node_type(self) -> None:
        """A node prefix that is not a string is a ValueError naming 'node'."""
        with self.assertRaisesRegex(ValueError, "'node'"):
            validate(blog(node=42))

    def test_bad_to_sync(self) -> None:
        """``to_sync`` must be a bool."""
        with self.assertRaisesRegex(ValueError, "'to_sync'"):
            validate(blog(to_sync="yes"))

    def test_parser_not_callable(self) -> None:
        """A parser that is not callable is a ValueError naming 'parser'."""
        with self.assertRaisesRegex(ValueError, "'parser'"):
            validate(blog(parser="parse"))

    def test_match_cb_not_callable(self) -> None:
        """A match_cb that is not callable is a ValueError naming 'match_cb'."""
        with self.assertRaisesRegex(ValueError, "'match_cb'"):
            validate(blog(match_cb=1))

    def test_unknown_key(self) -> None:
        """An unknown key (e.g. a typo) is a ValueError naming it."""
        with self.assertRaisesRegex(ValueError, "'to-sync'"):
            validate(blog(**{"to-sync": True}))

    def test_not_a_dict(self) -> None:
        """An analyser that is not a dict is a TypeError."""
        with self.assertRaises(TypeError):
            validate([("name", "x")])  # type: ignore[arg-type]


class RegistryTests(TestCase):
    def setUp(self) -> None:
        self.registry = AnalyserRegistry()

    def test_conflict_on_normalised_name(self) -> None:
        """Two names equal once normalised conflict."""
        self.registry.register(blog(name="Blog"))
        with self.assertRaises(ConflictError):
            self.registry.register(blog(name=" BLOG "))
        self.assertEqual(len(self.registry), 1)

    def test_get_any_case(self) -> None:
        """An analyser is found back by its name in any case."""
        self.registry.register(blog(name="XEP-0277"))
        self.assertEqual(self.registry.get("xep-0277")["type"], "blog")
        self.assertEqual(self.registry.get(" XEP-0277")["type"], "blog")
        self.assertIsNone(self.registry.get(None))

    def test_first_registered_wins(self) -> None:
        """Two analysers matching the same node prefix: the first registered wins."""
        self.registry.register(blog(name="first"))
        self.registry.register(blog(name="second"))
        self.assertEqual(self.registry.match("urn:xmpp:microblog:0", None)["name"], "first")

    def test_namespace_match(self) -> None:
        """A node whose last item is an Atom entry matches the namespace analyser."""
        self.registry.register({"name": "atom", "type": "blog", "namespace": NS_ATOM})
        self.assertEqual(self.registry.match("some-node", NS_ATOM)["name"], "atom")

    def test_no_match(self) -> None:
        """No prefix and no namespace in common: no match."""
        self.registry.register(blog())
        self.registry.register({"name": "atom", "type": "blog", "namespace": NS_ATOM})
        self.assertIsNone(self.registry.match("other", "urn:other"))
        self.assertIsNone(self.registry.match("other", None))

    def test_namespace_before_prefix(self) -> None:
        """Order decides between a namespace match and a later prefix match."""
        self.registry.register({"name": "events", "type": "event", "namespace": "urn:ev"})
        self.registry.register(blog())
        match = self.registry.match("urn:xmpp:microblog:0", "urn:ev")
        self.assertEqual(match["name"], "events")

    def test_needs_namespace(self) -> None:
        """The last item is only needed when a namespace analyser could win."""
        self.registry.register(blog())
        self.assertFalse(self.registry.needs_namespace("urn:xmpp:microblog:0"))
        self.assertFalse(self.registry.needs_namespace("other"))
        self.registry.register({"name": "atom", "type": "blog", "namespace": NS_ATOM})
        self.assertFalse(self.registry.needs_namespace("urn:xmpp:microblog:0"))
        self.assertTrue(self.registry.needs_namespace("other"))

    def test_apply_copies_keys(self) -> None:
        """apply() copies name, type, subtype, to_sync and parser into the analyse."""

        def parser(*args: object) -> dict:
            return {}

        self.registry.register(blog(subtype="micro", to_sync=True, parser=parser))
        analyse = {"service": None, "node": "urn:xmpp:microblog:0"}
        self.registry.apply(analyse)
        self.assertEqual(
            analyse,
            {
                "service": None,
                "node": "urn:xmpp:microblog:0",
                "name": "blog",
                "type": "blog",
                "subtype": "micro",
                "to_sync": True,
                "parser": parser,
            },
        )


class SortKeyValidationTests(TestCase):
    """The ``sort_keys`` of an analyser."""

    def test_defaults(self) -> None:
        """A key with a path only is a number key in ascending order."""
        checked = validate(blog(sort_keys=[{"path": ["published"]}]))
        self.assertEqual(
            checked["sort_keys"], [{"path": ["published"], "type": "number", "direction": "asc"}]
        )

    def test_bad_keys(self) -> None:
        """A bad list, entry, type or direction is a ValueError naming it."""
        for value, culprit in (
            ({"path": ["a"]}, "must be a list"),
            ([{"path": ["a"], "order": "asc"}], r"'sort_keys'\[0\] must be a dict"),
            ([{"type": "number"}], r"'sort_keys'\[0\] must be a dict"),
            ([{"path": ["a"], "type": "date"}], r"\[0\]\.type"),
            ([{"path": ["a"]}, {"path": ["b"], "direction": "up"}], r"\[1\]\.direction"),
        ):
            with self.assertRaisesRegex(ValueError, culprit):
                validate(blog(sort_keys=value))
