"""``cache search``'s flags parsed into the storage's query (no database)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sat_storage.cli.runtime import BadInput
from sat_storage.cli.search_flags import parse_order, parse_path, search_query
from sat_storage.storage.search import DIRECTIONS, ORDERS


class SearchFlagsTests(SynchronousTestCase):
    """Paths, orders and the query built from the flags."""

    def test_every_storage_order(self) -> None:
        """Each order name of the storage is a named order, with each of its directions."""
        for order in ORDERS:
            for direction in DIRECTIONS:
                spec = parse_order(f"{order}:{direction}")
                self.assertEqual(spec, {"order": order, "direction": direction})

    def test_path_order(self) -> None:
        """Another name is a parsed path (digits are indexes)."""
        self.assertEqual(parse_order("tags.0"), {"path": ["tags", 0]})

    def test_unknown_direction(self) -> None:
        """A direction the storage does not know is refused, naming it."""
        with self.assertRaises(BadInput) as caught:
            parse_order("rank:up")
        self.assertIn("'up'", caught.exception.message)

    def test_malformed_path(self) -> None:
        """An empty path part is refused."""
        self.assertRaises(BadInput, parse_path, "a..b")

    def test_query_leaves_out_missing_flags(self) -> None:
        """Only the flags given are in the query; '' type means no type."""
        query = search_query("cache", (), (), (), ("",), (), (), (), (), None, 10)
        self.assertEqual(query, {"fts": "cache", "types": [None], "limit": 10})
