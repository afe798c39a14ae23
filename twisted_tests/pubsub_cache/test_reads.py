"""Items requests mapped onto the storage's get_items (pure logic)."""

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.pubsub_cache.reads import get_items_args, network_only
from twisted.trial.unittest import TestCase


class GetItemsArgsTests(TestCase):
    def test_no_limit(self) -> None:
        """No max and no RSM: every item (as a server answers)."""
        self.assertEqual(
            get_items_args(None, None, None, None), {"order_by": None, "max_items": None}
        )

    def test_max_items(self) -> None:
        """``max_items`` alone: the newest items."""
        self.assertEqual(get_items_args(5, None, None, {})["max_items"], 5)

    def test_item_ids(self) -> None:
        """Item ids are asked by name."""
        args = get_items_args(None, ["a", "b"], None, None)
        self.assertEqual(args["item_ids"], ["a", "b"])

    def test_rsm_first_page(self) -> None:
        """RSM with only ``max``: the first page, in ascending order."""
        args = get_items_args(None, None, RSMRequest(10), None)
        self.assertEqual(
            args, {"order_by": None, "max_items": 10, "force_rsm": True, "desc": False}
        )

    def test_rsm_last_page(self) -> None:
        """``before=""``: the last page."""
        args = get_items_args(None, None, RSMRequest(10, before=""), None)
        self.assertEqual((args["before"], args["desc"]), (None, True))

    def test_rsm_before(self) -> None:
        """``before=ID``: the page before that item."""
        args = get_items_args(None, None, RSMRequest(10, before="item-5"), None)
        self.assertEqual((args["before"], args["desc"]), ("item-5", True))

    def test_rsm_after(self) -> None:
        """``after=ID``: the page after that item."""
        args = get_items_args(None, None, RSMRequest(10, after="item-5"), None)
        self.assertEqual((args["after"], args["desc"]), ("item-5", False))

    def test_rsm_index(self) -> None:
        """``index=N``: the page starting at that position."""
        args = get_items_args(None, None, RSMRequest(10, index=30), None)
        self.assertEqual((args["from_index"], args["desc"]), (30, False))

    def test_rsm_max_defaults_to_max_items(self) -> None:
        """An RSM request without ``max`` takes ``max_items`` as page size."""
        args = get_items_args(7, None, RSMRequest(before=""), None)
        self.assertEqual(args["max_items"], 7)

    def test_order_by(self) -> None:
        """``extra["order_by"]`` gives the order (a name or a list)."""
        self.assertEqual(
            get_items_args(None, None, None, {"order_by": "modification"})["order_by"],
            ["modification"],
        )

    def test_bad_order(self) -> None:
        """An unknown order is a ValueError naming it."""
        with self.assertRaisesRegex(ValueError, "'rank'"):
            get_items_args(None, None, None, {"order_by": "rank"})

    def test_bad_max_items(self) -> None:
        """A negative ``max_items`` is a ValueError."""
        with self.assertRaisesRegex(ValueError, "max_items"):
            get_items_args(-1, None, None, None)

    def test_bad_item_ids(self) -> None:
        """Empty item ids are refused."""
        with self.assertRaisesRegex(ValueError, "item_ids"):
            get_items_args(None, ["a", ""], None, None)

    def test_mam_goes_to_network(self) -> None:
        """A MAM request can't be answered from the cache."""
        self.assertEqual(network_only({"mam": {}}), "mam")
        self.assertIsNone(network_only({"order_by": "creation"}))
