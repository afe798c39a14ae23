"""XEP-0059 Result Set Management: request/response objects and paging logic.

wokkel 18.0.0 has no RSM module, so this plugin carries its own small objects.

Cursors (``after``, ``before``, ``first``, ``last``) are opaque strings: servers
choose them (ejabberd uses timestamps, not item ids), so they are only ever
copied from a response into the next request, never built from item ids.

Malformed ``<set/>`` elements:

- in a *request* (:meth:`RSMRequest.from_element`), a ``<max/>`` or ``<index/>``
  that is not a non-negative integer, or a forbidden combination of
  ``after``/``before``/``index``, raises :class:`RSMError` (a ``ValueError``)
  naming the culprit: a request that cannot be honoured must be refused;
- in a *response* (:meth:`RSMResponse.from_element`), a ``<count/>`` or
  ``first@index`` that is not a non-negative integer is logged and read as
  ``None``, and an empty ``<first/>``/``<last/>`` is read as ``None``: the page
  of items that came with it stays usable, only that piece of metadata is lost.

Unknown children of ``<set/>`` are ignored (XEP-0059 may be extended).
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.words.xish import domish

log = logging.getLogger(__name__)

NS_RSM = "http://jabber.org/protocol/rsm"

PLUGIN_INFO = {
    "name": "Result Set Management",
    "import_name": "XEP-0059",
    "type": "XEP",
    "modes": ["client", "component"],
    "dependencies": [],
    "recommendations": [],
    "main": "XEP_0059",
    "handler": "no",
    "description": "XEP-0059 Result Set Management: request/response objects and paging",
}


class RSMError(ValueError):
    """A ``<set/>`` element or an RSM argument is invalid."""


def _check_count(name: str, value: object) -> int | None:
    """Return ``value`` if it is None or a non-negative int, else raise RSMError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RSMError(f"RSM {name} must be a non-negative integer, not {value!r}")
    return value


def _check_cursor(name: str, value: object) -> str | None:
    """Return ``value`` if it is None or a str, else raise RSMError."""
    if value is not None and not isinstance(value, str):
        raise RSMError(f"RSM {name} must be a string (an opaque cursor), not {value!r}")
    return value


def _parse_int(text: str, name: str) -> int:
    """Parse a non-negative decimal integer from XML text, or raise RSMError."""
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit():
        raise RSMError(f"RSM <{name}/> must be a non-negative integer, not {text!r}")
    return int(stripped)


def find_set(parent: domish.Element) -> domish.Element | None:
    """The first ``<set xmlns=NS_RSM/>`` among ``parent``'s direct children, or None."""
    for child in parent.elements(NS_RSM, "set"):
        return child
    return None


def _children(set_elt: domish.Element) -> dict[str, domish.Element]:
    """RSM children of ``set_elt`` by name (the first one wins when repeated)."""
    if set_elt.uri != NS_RSM or set_elt.name != "set":
        raise RSMError(
            f"expected <set xmlns='{NS_RSM}'/>, got <{set_elt.name}/> in {set_elt.uri!r}"
        )
    found: dict[str, domish.Element] = {}
    for child in set_elt.elements():
        if child.uri == NS_RSM:
            found.setdefault(child.name, child)
    return found


class _RSMSet:
    """What requests and responses share: equality, repr and rendering from to_dict()."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_element(self) -> domish.Element:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v is not None)
        return f"{type(self).__name__}({args})"

    def render(self, parent: domish.Element) -> domish.Element:
        """Append the ``<set/>`` to ``parent`` and return it."""
        set_elt = self.to_element()
        parent.addChild(set_elt)
        return set_elt


class RSMRequest(_RSMSet):
    """What a requester asks for: page size and where the page starts.

    :param max_: page size (``0`` asks only for the count), None = server default
    :param after: opaque cursor: the page after this one (forward paging)
    :param before: opaque cursor: the page before this one; ``""`` = last page
    :param index: absolute position of the first wanted item
    """

    def __init__(
        self,
        max_: int | None = None,
        after: str | None = None,
        before: str | None = None,
        index: int | None = None,
    ) -> None:
        self.max = _check_count("max", max_)
        self.after = _check_cursor("after", after)
        self.before = _check_cursor("before", before)
        self.index = _check_count("index", index)
        if sum(v is not None for v in (after, before, index)) > 1:
            raise RSMError(
                "RSM after, before and index are exclusive, got "
                f"after={after!r}, before={before!r}, index={index!r}"
            )
        if after == "":
            raise RSMError("RSM after must not be empty (only before='' has a meaning)")

    @property
    def backward(self) -> bool:
        """True when this request pages backward (``before`` is set)."""
        return self.before is not None

    def to_dict(self) -> dict[str, Any]:
        """``{"max", "after", "before", "index"}``, None for what is unset."""
        return {"max": self.max, "after": self.after, "before": self.before, "index": self.index}

    def to_element(self) -> domish.Element:
        """Serialise as ``<set xmlns=NS_RSM/>`` (empty ``<before/>`` = last page)."""
        set_elt = domish.Element((NS_RSM, "set"))
        if self.max is not None:
            set_elt.addElement("max", content=str(self.max))
        if self.after is not None:
            set_elt.addElement("after", content=self.after)
        if self.before is not None:
            before = set_elt.addElement("before")
            if self.before:
                before.addContent(self.before)
        if self.index is not None:
            set_elt.addElement("index", content=str(self.index))
        return set_elt

    @classmethod
    def from_element(cls, set_elt: domish.Element) -> RSMRequest:
        """Parse a request ``<set/>``; raise RSMError when it is malformed."""
        children = _children(set_elt)
        max_ = _parse_int(str(children["max"]), "max") if "max" in children else None
        index = _parse_int(str(children["index"]), "index") if "index" in children else None
        after = str(children["after"]) if "after" in children else None
        before = str(children["before"]) if "before" in children else None
        return cls(max_=max_, after=after, before=before, index=index)


class RSMResponse(_RSMSet):
    """What a responder says about the page it returned.

    :param first: opaque cursor of the first item of the page
    :param last: opaque cursor of the last item of the page
    :param index: position of the first item in the whole set (``first@index``)
    :param count: number of items in the whole set (may be approximate)
    """

    def __init__(
        self,
        first: str | None = None,
        last: str | None = None,
        index: int | None = None,
        count: int | None = None,
    ) -> None:
        self.first = _check_cursor("first", first)
        self.last = _check_cursor("last", last)
        self.index = _check_count("index", index)
        self.count = _check_count("count", count)
        if index is not None and first is None:
            raise RSMError("RSM index (first@index) needs a first cursor")

    def to_dict(self) -> dict[str, Any]:
        """``{"first", "last", "index", "count"}``, None for what is unknown."""
        return {"first": self.first, "last": self.last, "index": self.index, "count": self.count}

    def to_element(self) -> domish.Element:
        """Serialise as ``<set xmlns=NS_RSM/>``."""
        set_elt = domish.Element((NS_RSM, "set"))
        if self.first is not None:
            first = set_elt.addElement("first", content=self.first)
            if self.index is not None:
                first["index"] = str(self.index)
        if self.last is not None:
            set_elt.addElement("last", content=self.last)
        if self.count is not None:
            set_elt.addElement("count", content=str(self.count))
        return set_elt

    @classmethod
    def from_element(cls, set_elt: domish.Element) -> RSMResponse:
        """Parse a response ``<set/>``; bad numbers and empty cursors read as None."""
        children = _children(set_elt)
        first = (str(children["first"]) or None) if "first" in children else None
        last = (str(children["last"]) or None) if "last" in children else None
        count = None
        if "count" in children:
            count = cls._lenient_int(str(children["count"]), "count")
        index = None
        if first is not None and children["first"].getAttribute("index") is not None:
            index = cls._lenient_int(children["first"]["index"], "first@index")
        return cls(first=first, last=last, index=index, count=count)

    @staticmethod
    def _lenient_int(text: str, name: str) -> int | None:
        """Parse ``text`` as a count; log and return None when it is not one."""
        try:
            return _parse_int(text, name)
        except RSMError as e:
            log.warning("ignoring malformed RSM response value: %s", e)
            return None


def next_request(
    request: RSMRequest, response: RSMResponse | None, received: int | None = None
) -> RSMRequest | None:
    """The request for the following page, or None when paging is over.

    Pages go on in the direction of ``request``: forward (``after`` the last
    cursor) unless ``request`` has ``before``, then backward (``before`` the
    first cursor). ``received`` is the number of items of the page just
    answered (used with ``index``/``count`` to detect the end; ``request.max``
    is assumed when it is None).

    Paging stops when: there is no response (the server has no RSM, or the set
    is empty), ``max`` was 0 (count-only request), the page was empty, the
    needed cursor is missing, or ``index``/``count`` show the end was reached.
    """
    if response is None or request.max == 0 or received == 0:
        return None
    if request.backward:
        if response.first is None or response.index == 0:
            return None
        return RSMRequest(max_=request.max, before=response.first)
    if response.last is None:
        return None
    if response.index is not None and response.count is not None:
        size = received if received is not None else request.max
        if size is not None and response.index + size >= response.count:
            return None
    return RSMRequest(max_=request.max, after=response.last)


class XEP_0059:
    """Plugin object: RSM helpers for other plugins (``host.plugins["XEP-0059"]``)."""

    def __init__(self, host: Any) -> None:
        self.host = host

    @staticmethod
    def parse_extra(extra: dict[str, Any] | None) -> RSMRequest | None:
        """RSMRequest from Libervia-style ``rsm_max``/``rsm_after``/``rsm_before``/``rsm_index``.

        Return None when ``extra`` has none of these keys; raise RSMError when a
        value is invalid (numbers may be given as decimal strings).
        """
        if not extra:
            return None
        names = ("max", "after", "before", "index")
        if not any(f"rsm_{name}" in extra for name in names):
            return None
        values: dict[str, Any] = {name: extra.get(f"rsm_{name}") for name in names}
        for name in ("max", "index"):
            if isinstance(values[name], str):
                values[name] = _parse_int(values[name], name)
        return RSMRequest(values["max"], values["after"], values["before"], values["index"])

    @staticmethod
    def get_next_request(
        rsm_request: RSMRequest, rsm_response: RSMResponse | None, received: int | None = None
    ) -> RSMRequest | None:
        """See :func:`next_request`."""
        return next_request(rsm_request, rsm_response, received)

    @staticmethod
    def parse_response(parent: domish.Element) -> RSMResponse | None:
        """RSMResponse from the ``<set/>`` child of ``parent``, or None if it has none."""
        set_elt = find_set(parent)
        return None if set_elt is None else RSMResponse.from_element(set_elt)
