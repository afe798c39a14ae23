"""Changes of a node sent by ``XEP_0060`` (publish, retract, purge, delete), told to
the triggers before and after, so that a cache can keep reading its own writes.

``XEP-0060_writing`` (a sync point) runs just before the request is sent,
``XEP-0060_written`` (an async point) once the service has answered it, or failed;
both get ``(client, service, node, write)``, ``write`` a :class:`PubsubWrite`. A
failure of a trigger is logged and does not change the request's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.words.protocols.jabber import jid

from sat_storage.trigger import NO_CANCEL

log = logging.getLogger(__name__)

WRITING = "XEP-0060_writing"
WRITTEN = "XEP-0060_written"
KINDS = ("publish", "retract", "purge", "delete")

T = TypeVar("T")


@dataclass
class PubsubWrite:
    """One change of a node, as the triggers see it."""

    kind: str  # one of KINDS
    #: items published (None: sent without id) or retracted
    ids: list[str | None] = field(default_factory=list)
    #: retract: whether the service was asked to notify the subscribers
    notify: bool = True
    #: publish: the ids as the service gave them, once answered
    result: list[str] | None = None
    #: the request failed (some items may be published all the same)
    failed: bool = False
    #: for the triggers' own use (e.g. a token between the two points)
    marks: dict[str, Any] = field(default_factory=dict)


async def run_write(
    trigger: Any,
    client: Any,
    service: jid.JID | None,
    node: str,
    write: PubsubWrite,
    send: Callable[[], Awaitable[T]],
) -> T:
    """``send()`` the request, with the two trigger points around it."""
    try:
        trigger.point(WRITING, client, service, node, write, **{NO_CANCEL: True})
    except Exception:
        log.exception("trigger %s failed on node %r", WRITING, node)
    try:
        result = await send()
    except BaseException:
        write.failed = True
        await _written(trigger, client, service, node, write)
        raise
    if write.kind == "publish":
        write.result = list(result)  # type: ignore[call-overload]
    await _written(trigger, client, service, node, write)
    return result


async def _written(
    trigger: Any, client: Any, service: jid.JID | None, node: str, write: PubsubWrite
) -> None:
    try:
        await trigger.async_point(WRITTEN, client, service, node, write, **{NO_CANCEL: True})
    except Exception:
        log.exception("trigger %s failed on node %r", WRITTEN, node)


__all__ = ["KINDS", "WRITING", "WRITTEN", "PubsubWrite", "run_write"]
