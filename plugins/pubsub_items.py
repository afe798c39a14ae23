"""One XEP-0060 items request, checked once and handed on as a value.

:func:`check_items_request` (called by ``XEP_0060.get_items``) checks the arguments
of a request and builds an :class:`ItemsRequest`. The ``XEP-0060_getItems``
triggers still receive Libervia's arguments, and find the checked request on the
``extra`` they are given (:func:`request_of`): the pubsub cache reads it instead of
checking the arguments again (wokkel's ``PubSubRequest`` idea). The request reads
as a query of the storage's ``get_items`` (XEP-0059 semantics, :func:`get_items_args`)
and builds the metadata envelope of its answer (:meth:`ItemsRequest.metadata`),
whether the network or the cache answers it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sat_storage.plugins.plugin_xep_0059 import RSMRequest
from twisted.words.protocols.jabber import jid

from sat_storage import ItemsQuery

#: Keys of ``extra`` that the cache cannot answer: such requests go to the network.
NETWORK_ONLY_EXTRA = ("mam",)
#: ``extra`` key giving the order (Libervia's ``C.KEY_ORDER_BY``).
KEY_ORDER_BY = "order_by"
ORDERS = ("creation", "modification")


def get_node_uri(service: jid.JID, node: str, item: str | None = None) -> str:
    """The ``xmpp:`` URI (RFC 5122, XEP-0060 §12.22) of a node, or of one of its items."""
    uri = f"xmpp:{quote(service.full(), safe='@/')}?;node={quote(node, safe='')}"
    if item is not None:
        uri += f";item={quote(item, safe='')}"
    return uri


def check_jid(name: str, value: object, optional: bool = True) -> None:
    """Raise TypeError unless ``value`` is a JID (or None when ``optional``)."""
    if value is None and optional:
        return
    if not isinstance(value, jid.JID):
        raise TypeError(
            f"{name} must be a twisted JID{' or None' if optional else ''}, not {value!r}"
        )


def check_node(node: object) -> None:
    """Raise TypeError/ValueError unless ``node`` is a non-empty string."""
    if not isinstance(node, str):
        raise TypeError(f"node must be a str, not {node!r}")
    if not node:
        raise ValueError("node must not be empty")


def rsm_fields(rsm_request: Any) -> dict[str, Any]:
    """``max``, ``after``, ``before``, ``index`` of an RSM request (object or dict)."""
    if rsm_request is None:
        return {}
    fields = {}
    for name in ("max", "after", "before", "index"):
        if isinstance(rsm_request, dict):
            value = rsm_request.get(name, rsm_request.get(name + "_"))
        else:
            value = getattr(rsm_request, name, getattr(rsm_request, name + "_", None))
        if value is not None:
            fields[name] = value
    return fields


def order_by(extra: dict[str, Any] | None) -> list[str] | None:
    """The order asked in ``extra`` (None: creation); ``ValueError`` for an unknown one."""
    value = (extra or {}).get(KEY_ORDER_BY)
    if value is None:
        return None
    orders = [value] if isinstance(value, str) else value
    if not isinstance(orders, list | tuple):
        raise ValueError(f"extra[{KEY_ORDER_BY!r}] must be a string or a list, got {value!r}")
    for order in orders:
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r} in extra[{KEY_ORDER_BY!r}]")
    return list(orders)


def _non_negative(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return number


def get_items_args(
    max_items: int | None,
    item_ids: list[str] | None,
    rsm_request: Any,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """Keyword arguments of the storage's ``get_items`` for this request.

    - ``item_ids``: those items (``max_items`` still caps them);
    - no RSM: the newest ``max_items`` (all when None), oldest first;
    - RSM ``before=""``: the last page; ``before=ID``: the page before ``ID``;
      ``after=ID``: the page after ``ID``; ``index=N``: the page from ``N``; ``max``
      alone: the first page. RSM ``max`` defaults to ``max_items``.
    """
    args: dict[str, Any] = {"order_by": order_by(extra)}
    if max_items is not None:
        max_items = _non_negative("max_items", max_items)
    if item_ids:
        if not all(isinstance(i, str) and i for i in item_ids):
            raise ValueError(f"item_ids must be non-empty strings, got {item_ids!r}")
        args.update(item_ids=list(item_ids), max_items=max_items)
        return args
    fields = rsm_fields(rsm_request)
    if rsm_request is None:
        args["max_items"] = max_items
        return args
    rsm_max = fields.get("max")
    args["max_items"] = max_items if rsm_max is None else _non_negative("RSM max", rsm_max)
    args["force_rsm"] = True
    before, after, index = fields.get("before"), fields.get("after"), fields.get("index")
    if before is not None:
        args.update(before=before or None, desc=True)
    elif after is not None:
        args.update(after=after, desc=False)
    elif index is not None:
        args.update(from_index=_non_negative("RSM index", index), desc=False)
    else:
        args["desc"] = False
    return args


def network_only(extra: dict[str, Any] | None) -> str | None:
    """The ``extra`` key that forces the network (None if the cache can answer)."""
    for key in NETWORK_ONLY_EXTRA:
        if key in (extra or {}):
            return key
    return None


@dataclass(frozen=True)
class ItemsRequest:
    """An items request of ``XEP_0060.get_items``, its arguments checked.

    ``max_items`` is None when ``item_ids`` is given (Libervia's rule). The storage's
    :class:`~sat_storage.ItemsQuery` (:attr:`query`) is built with the request. An
    error in what only the cache reads (``extra["order_by"]``, RSM numbers) is kept
    and raised by :meth:`check`, so that a request the cache leaves to the network
    is not refused for it.
    """

    service: jid.JID | None
    node: str
    max_items: int | None = None
    item_ids: list[str] | None = None
    sub_id: str | None = None
    rsm_request: RSMRequest | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _query: ItemsQuery | None = field(default=None, init=False, repr=False, compare=False)
    _error: Exception | None = field(default=None, init=False, repr=False, compare=False)
    _query_error: Exception | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field = object.__setattr__  # computed once, in a frozen dataclass
        try:
            args = get_items_args(self.max_items, self.item_ids, self.rsm_request, self.extra)
        except ValueError as e:
            set_field(self, "_error", e)
            return
        try:
            set_field(self, "_query", ItemsQuery(**args))
        except (TypeError, ValueError) as e:  # beyond the XEP-0059 reading (too many ids)
            set_field(self, "_query_error", e)

    @property
    def network_only(self) -> str | None:
        """The ``extra`` key that sends this request to the network (None: cacheable)."""
        return network_only(self.extra)

    def check(self) -> None:
        """``ValueError`` naming a bad argument of the cache's reading of the request."""
        if self._error is not None:
            raise self._error

    @property
    def query(self) -> ItemsQuery:
        """The storage query of this request (:meth:`check` first); ``ValueError``
        or ``TypeError`` when the storage cannot take it."""
        self.check()
        if self._query_error is not None:
            raise self._query_error
        assert self._query is not None
        return self._query

    def in_order(self, orders: list[str]) -> ItemsRequest:
        """This request asking for ``orders`` (``extra["order_by"]``): its checked
        query is reused in that order, nothing is checked again."""
        request = copy.copy(self)
        set_field = object.__setattr__
        set_field(request, "extra", dict(self.extra, **{KEY_ORDER_BY: list(orders)}))
        if self._query is not None:
            set_field(request, "_query", self._query.in_order(orders))
        return request

    def metadata(
        self, service: jid.JID, rsm: dict[str, Any] | None, complete: bool | None
    ) -> dict[str, Any]:
        """The metadata of the answer: ``service``, ``node``, ``uri``, and ``rsm`` and
        ``complete`` when the answer is paged (``rsm`` not None)."""
        metadata: dict[str, Any] = {
            "service": service,
            "node": self.node,
            "uri": get_node_uri(service, self.node),
        }
        if rsm is not None:
            metadata["rsm"] = rsm
            metadata["complete"] = complete
        return metadata


class RequestExtra(dict):  # type: ignore[type-arg]
    """The ``extra`` given to the ``XEP-0060_getItems`` triggers: the caller's keys
    (a copy), and the checked :attr:`request`."""

    def __init__(self, request: ItemsRequest) -> None:
        super().__init__(request.extra)
        self.request = request


def request_of(extra: Any) -> ItemsRequest | None:
    """The checked request behind a trigger's ``extra`` (None when it has none)."""
    return getattr(extra, "request", None) if isinstance(extra, RequestExtra) else None


def check_items_request(
    service: jid.JID | None,
    node: str,
    max_items: int | None = None,
    item_ids: list[str] | None = None,
    sub_id: str | None = None,
    rsm_request: RSMRequest | None = None,
    extra: dict[str, Any] | None = None,
) -> ItemsRequest:
    """The arguments of ``XEP_0060.get_items``, checked, as one request.

    ``TypeError``/``ValueError`` naming the bad argument.
    """
    check_jid("service", service)
    check_node(node)
    if max_items is not None and (not isinstance(max_items, int) or max_items < 0):
        raise ValueError(f"max_items must be a non-negative int or None, not {max_items!r}")
    if rsm_request is not None and not isinstance(rsm_request, RSMRequest):
        raise TypeError(f"rsm_request must be an RSMRequest, not {rsm_request!r}")
    if item_ids and rsm_request is not None:
        raise ValueError("item_ids and rsm_request can't be used together")
    if item_ids:
        max_items = None
    return ItemsRequest(
        service, node, max_items, item_ids, sub_id, rsm_request, {} if extra is None else extra
    )


__all__ = [
    "ItemsRequest",
    "RequestExtra",
    "check_items_request",
    "get_items_args",
    "get_node_uri",
    "network_only",
    "request_of",
]
