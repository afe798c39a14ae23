"""Pure-logic tests of the XEP-0059 plugin: RSM objects, (de)serialisation, paging."""

from __future__ import annotations

from sat_storage.plugins import plugin_xep_0059 as rsm
from sat_storage.plugins.plugin_xep_0059 import NS_RSM, RSMError, RSMRequest, RSMResponse
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish


def parse_xml(xml: str) -> domish.Element:
    """Parse one XML element with Twisted's stream parser."""
    elements: list[domish.Element] = []
    parser = domish.elementStream()
    parser.DocumentStartEvent = lambda root: None
    parser.ElementEvent = elements.append
    parser.DocumentEndEvent = lambda: None
    parser.parse(f"<root>{xml}</root>")
    return elements[0]


def set_xml(body: str) -> domish.Element:
    """A ``<set/>`` element holding ``body``."""
    return parse_xml(f"<set xmlns='{NS_RSM}'>{body}</set>")


class RequestSerialisationTests(TestCase):
    """RSMRequest to and from XML."""

    def test_round_trip_after(self) -> None:
        """max and an opaque after cursor survive serialise + parse."""
        request = RSMRequest(max_=20, after="2026-11-27T06:32:04.086538Z")
        parsed = RSMRequest.from_element(parse_xml(request.to_element().toXml()))
        self.assertEqual(parsed, request)

    def test_empty_before_is_last_page(self) -> None:
        """before='' serialises as an empty <before/> and parses back as ''."""
        element = RSMRequest(max_=10, before="").to_element()
        self.assertEqual([c.name for c in element.elements()], ["max", "before"])
        self.assertEqual(str(element.before), "")
        self.assertEqual(RSMRequest.from_element(parse_xml(element.toXml())).before, "")

    def test_index(self) -> None:
        """index is serialised as <index/> and parsed as an int."""
        element = RSMRequest(max_=5, index=40).to_element()
        self.assertEqual(str(element.index), "40")
        self.assertEqual(RSMRequest.from_element(element).index, 40)

    def test_render_appends_to_parent(self) -> None:
        """render() adds the <set/> as the last child of the parent."""
        parent = domish.Element(("http://jabber.org/protocol/pubsub", "pubsub"))
        parent.addElement("items")["node"] = "n"
        RSMRequest(max_=3).render(parent)
        self.assertEqual(parent.children[-1].uri, NS_RSM)
        self.assertEqual(rsm.find_set(parent), parent.children[-1])

    def test_cursor_whitespace_kept(self) -> None:
        """Cursors are opaque: their text is kept byte for byte."""
        request = RSMRequest.from_element(set_xml("<after> a b </after>"))
        self.assertEqual(request.after, " a b ")


class MalformedRequestTests(TestCase):
    """A request <set/> that cannot be honoured raises RSMError naming the culprit."""

    def test_non_integer_max(self) -> None:
        """<max>ten</max> is refused."""
        error = self.assertRaises(RSMError, RSMRequest.from_element, set_xml("<max>ten</max>"))
        self.assertIn("max", str(error))
        self.assertIn("ten", str(error))

    def test_negative_max(self) -> None:
        """<max>-1</max> is refused."""
        self.assertRaises(RSMError, RSMRequest.from_element, set_xml("<max>-1</max>"))

    def test_non_integer_index(self) -> None:
        """<index>1.5</index> is refused."""
        error = self.assertRaises(RSMError, RSMRequest.from_element, set_xml("<index>1.5</index>"))
        self.assertIn("index", str(error))

    def test_after_and_before_exclusive(self) -> None:
        """after and before together are refused."""
        self.assertRaises(
            RSMError, RSMRequest.from_element, set_xml("<after>a</after><before>b</before>")
        )

    def test_wrong_element(self) -> None:
        """Parsing something that is not an RSM <set/> is refused."""
        self.assertRaises(RSMError, RSMRequest.from_element, parse_xml("<set xmlns='urn:x'/>"))

    def test_constructor_checks_types(self) -> None:
        """A non-int max given in Python is refused (bools too)."""
        self.assertRaises(RSMError, RSMRequest, max_="10")
        self.assertRaises(RSMError, RSMRequest, max_=True)

    def test_empty_after_refused(self) -> None:
        """after='' has no meaning (only before='' has) and is refused."""
        self.assertRaises(RSMError, RSMRequest, after="")

    def test_unknown_child_ignored(self) -> None:
        """Unknown children of <set/> are ignored (XEP-0059 may be extended)."""
        request = RSMRequest.from_element(set_xml("<max>4</max><foo>x</foo>"))
        self.assertEqual(request, RSMRequest(max_=4))


class ResponseSerialisationTests(TestCase):
    """RSMResponse to and from XML."""

    def test_round_trip(self) -> None:
        """first, first@index, last and count survive serialise + parse."""
        response = RSMResponse(first="t1", last="t9", index=10, count=250)
        parsed = RSMResponse.from_element(parse_xml(response.to_element().toXml()))
        self.assertEqual(parsed, response)
        self.assertEqual(parsed.to_dict(), {"first": "t1", "last": "t9", "index": 10, "count": 250})

    def test_ejabberd_reply(self) -> None:
        """The <set/> ejabberd 23.01 sends (timestamp cursors) is read as is."""
        response = RSMResponse.from_element(
            set_xml(
                "<count>50</count><first index='0'>2026-11-27T06:32:04.075118Z</first>"
                "<last>2026-11-27T06:32:04.086538Z</last>"
            )
        )
        self.assertEqual(
            response.to_dict(),
            {
                "first": "2026-11-27T06:32:04.075118Z",
                "last": "2026-11-27T06:32:04.086538Z",
                "index": 0,
                "count": 50,
            },
        )

    def test_count_only(self) -> None:
        """A count-only answer (empty page) has no cursors."""
        response = RSMResponse.from_element(set_xml("<count>7</count>"))
        expected = {"first": None, "last": None, "index": None, "count": 7}
        self.assertEqual(response.to_dict(), expected)

    def test_parse_response_without_set(self) -> None:
        """parse_response() gives None when the parent has no <set/> (e.g. Prosody)."""
        parent = parse_xml("<pubsub xmlns='urn:x'><items node='n'/></pubsub>")
        self.assertIsNone(rsm.XEP_0059.parse_response(parent))


class MalformedResponseTests(TestCase):
    """Bad values in a response <set/> are logged and read as None; the rest is kept."""

    def test_non_integer_count(self) -> None:
        """<count>many</count> is logged and ignored; cursors are kept."""
        with self.assertLogs(rsm.log, "WARNING") as logs:
            response = RSMResponse.from_element(
                set_xml("<first index='0'>a</first><last>b</last><count>many</count>")
            )
        self.assertEqual(response.to_dict(), {"first": "a", "last": "b", "index": 0, "count": None})
        self.assertIn("many", logs.output[0])

    def test_non_integer_index(self) -> None:
        """first@index='x' is logged and ignored; the first cursor is kept."""
        with self.assertLogs(rsm.log, "WARNING"):
            set_elt = set_xml("<first index='x'>a</first><count>3</count>")
            response = RSMResponse.from_element(set_elt)
        self.assertEqual((response.first, response.index, response.count), ("a", None, 3))

    def test_empty_cursor(self) -> None:
        """An empty <last/> is read as no cursor."""
        response = RSMResponse.from_element(set_xml("<first>a</first><last/>"))
        self.assertIsNone(response.last)


class NextRequestTests(TestCase):
    """next_request(): the request for the following page, or None at the end."""

    def test_forward_uses_last_cursor(self) -> None:
        """The next forward page starts after the opaque last cursor, same max."""
        nxt = rsm.next_request(RSMRequest(max_=20), RSMResponse("c0", "c19", 0, 250), 20)
        self.assertEqual(nxt, RSMRequest(max_=20, after="c19"))

    def test_forward_end_by_count(self) -> None:
        """index + received >= count ends the paging."""
        request = RSMRequest(max_=20, after="c229")
        self.assertIsNone(rsm.next_request(request, RSMResponse("c230", "c249", 230, 250), 20))

    def test_forward_short_page_not_end_without_count(self) -> None:
        """Without count, paging goes on while pages are not empty."""
        nxt = rsm.next_request(RSMRequest(max_=20), RSMResponse("a", "b"), 5)
        self.assertEqual(nxt, RSMRequest(max_=20, after="b"))

    def test_received_defaults_to_max(self) -> None:
        """Without received, max is taken as the page size."""
        self.assertIsNone(rsm.next_request(RSMRequest(max_=10), RSMResponse("a", "b", 0, 10)))

    def test_no_response_ends(self) -> None:
        """No <set/> in the answer (no RSM on the server) ends the paging."""
        self.assertIsNone(rsm.next_request(RSMRequest(max_=20), None, 20))

    def test_empty_page_ends(self) -> None:
        """An empty page ends the paging."""
        self.assertIsNone(rsm.next_request(RSMRequest(max_=20), RSMResponse("a", "b"), 0))

    def test_count_only_request_ends(self) -> None:
        """max=0 (count only) has no next page."""
        self.assertIsNone(rsm.next_request(RSMRequest(max_=0), RSMResponse(count=4)))

    def test_missing_last_ends(self) -> None:
        """Without a last cursor there is no way forward."""
        self.assertIsNone(rsm.next_request(RSMRequest(max_=20), RSMResponse(count=40), 20))

    def test_backward_uses_first_cursor(self) -> None:
        """Backward paging (before) goes on before the first cursor."""
        request = RSMRequest(max_=20, before="")
        nxt = rsm.next_request(request, RSMResponse("c230", "c249", 230, 250))
        self.assertEqual(nxt, RSMRequest(max_=20, before="c230"))

    def test_backward_end_at_index_zero(self) -> None:
        """Backward paging ends at index 0."""
        request = RSMRequest(max_=20, before="c20")
        self.assertIsNone(rsm.next_request(request, RSMResponse("c0", "c19", 0, 250), 20))


class ParseExtraTests(TestCase):
    """XEP_0059.parse_extra(): Libervia-style rsm_* keys."""

    def test_no_keys(self) -> None:
        """No rsm_* key gives None."""
        self.assertIsNone(rsm.XEP_0059.parse_extra({"use_cache": False}))

    def test_string_numbers(self) -> None:
        """Numbers given as strings are parsed."""
        request = rsm.XEP_0059.parse_extra({"rsm_max": "10", "rsm_after": "x"})
        self.assertEqual(request, RSMRequest(max_=10, after="x"))

    def test_bad_number(self) -> None:
        """A non-numeric rsm_max raises RSMError."""
        self.assertRaises(RSMError, rsm.XEP_0059.parse_extra, {"rsm_max": "lots"})


class GetNextRequestTests(TestCase):
    """XEP_0059.get_next_request(): Libervia's name of next_request, on the plugin."""

    def test_forward_page(self) -> None:
        """The next forward page starts after the last cursor, with the same max."""
        nxt = rsm.XEP_0059.get_next_request(
            RSMRequest(max_=20), RSMResponse("c0", "c19", 0, 250), 20
        )
        self.assertEqual(nxt, RSMRequest(max_=20, after="c19"))

    def test_backward_page(self) -> None:
        """A backward request goes on before the first cursor."""
        nxt = rsm.XEP_0059.get_next_request(
            RSMRequest(max_=10, before=""), RSMResponse("c240", "c249", 240, 250)
        )
        self.assertEqual(nxt, RSMRequest(max_=10, before="c240"))

    def test_end(self) -> None:
        """None once index + received reaches count."""
        request = RSMRequest(max_=20, after="c229")
        response = RSMResponse("c230", "c249", 230, 250)
        self.assertIsNone(rsm.XEP_0059.get_next_request(request, response, 20))

    def test_no_rsm_answer(self) -> None:
        """None when the service answered without <set/>."""
        self.assertIsNone(rsm.XEP_0059.get_next_request(RSMRequest(max_=5), None, 5))

    def test_on_the_host(self) -> None:
        """The loaded plugin object answers as the static method does."""
        plugin = rsm.XEP_0059(host=None)
        nxt = plugin.get_next_request(RSMRequest(max_=3), RSMResponse("a", "b", 0, 9), 3)
        self.assertEqual(nxt, RSMRequest(max_=3, after="b"))
