"""Items requests: checked once (ItemsRequest), mapped onto the storage's get_items
(pure logic)."""

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from sat_storage.plugins.pubsub_items import (
    RequestExtra,
    check_items_request,
    get_items_args,
    get_node_uri,
    network_only,
    request_of,
)
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.jid import JID

from sat_storage import ItemsQuery

SERVICE = JID("pubsub.example.org")


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


class ItemsRequestTests(TestCase):
    """check_items_request(): one checked request, read by the cache as a query."""

    def test_query(self) -> None:
        """The request reads as the storage's ItemsQuery (RSM page after an id)."""
        request = check_items_request(SERVICE, "blog", rsm_request=RSMRequest(5, after="x"))
        self.assertEqual(
            request.query,
            ItemsQuery(max_items=5, after="x", desc=False, force_rsm=True),
        )

    def test_item_ids_drop_max_items(self) -> None:
        """With item_ids, max_items is dropped (Libervia's rule)."""
        request = check_items_request(SERVICE, "blog", 3, ["a", "b"])
        self.assertEqual((request.max_items, request.query.item_ids), (None, ("a", "b")))

    def test_bad_arguments_named(self) -> None:
        """Bad arguments of get_items raise at once, naming the argument."""
        with self.assertRaisesRegex(TypeError, "service must be a twisted JID"):
            check_items_request("pubsub.example.org", "blog")  # type: ignore[arg-type]
        with self.assertRaisesRegex(ValueError, "node must not be empty"):
            check_items_request(SERVICE, "")
        with self.assertRaisesRegex(ValueError, "can't be used together"):
            check_items_request(SERVICE, "blog", item_ids=["a"], rsm_request=RSMRequest(2))

    def test_cache_reading_error_kept(self) -> None:
        """An order the cache does not know is refused only when the request is read
        for the cache (check), so that it does not stop a network request."""
        request = check_items_request(SERVICE, "blog", extra={"order_by": "rank"})
        with self.assertRaisesRegex(ValueError, r"unknown order 'rank' in extra\['order_by'\]"):
            request.check()

    def test_metadata(self) -> None:
        """The answer's envelope: rsm and complete only for a paged answer."""
        request = check_items_request(None, "blog")
        rsm = {"first": "a", "last": "b", "index": 0, "count": 2}
        self.assertEqual(
            request.metadata(SERVICE, rsm, True),
            {
                "service": SERVICE,
                "node": "blog",
                "uri": get_node_uri(SERVICE, "blog"),
                "rsm": rsm,
                "complete": True,
            },
        )
        self.assertNotIn("rsm", request.metadata(SERVICE, None, None))

    def test_request_extra(self) -> None:
        """Triggers get a copy of the caller's extra that carries the request."""
        extra = {"k": 1}
        request = check_items_request(SERVICE, "blog", extra=extra)
        given = RequestExtra(request)
        given["added"] = True
        self.assertEqual((request_of(given), extra), (request, {"k": 1}))
        self.assertIsNone(request_of({"k": 1}))
