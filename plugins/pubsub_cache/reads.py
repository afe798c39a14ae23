"""Items requests (XEP-0060 with optional XEP-0059 RSM) mapped onto the cache.

The storage's ``get_items(node, max_items, item_ids, before, after, from_index,
order_by, desc, force_rsm)`` implements the XEP-0059 semantics; this module only
translates a request, as the XEP-0060 plugin receives it, into those arguments.
"""

from __future__ import annotations

from typing import Any

#: Keys of ``extra`` that the cache cannot answer: such requests go to the network.
NETWORK_ONLY_EXTRA = ("mam",)
#: ``extra`` key giving the order (Libervia's ``C.KEY_ORDER_BY``).
KEY_ORDER_BY = "order_by"
ORDERS = ("creation", "modification")


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
