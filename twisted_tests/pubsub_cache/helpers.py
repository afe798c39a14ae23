"""Helpers shared by the pubsub cache tests."""

from __future__ import annotations

import sat_storage.wokkel_compat  # noqa: F401  (before wokkel)

# isort: split
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from wokkel.generic import parseXml

from sat_storage.deferreds import as_deferred

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_ATOM = "http://www.w3.org/2005/Atom"


def parse(text: str) -> domish.Element:
    """One element from its XML text."""
    element = parseXml(text)
    if element is None:
        raise ValueError(f"not one XML element: {text!r}")
    return element


def atom_item(item_id: str | None, title: str = "title", body: str = "body") -> domish.Element:
    """A pubsub ``<item/>`` holding a small Atom entry (no id attribute if None)."""
    item = domish.Element((NS_PUBSUB, "item"))
    if item_id is not None:
        item["id"] = item_id
    entry = item.addElement((NS_ATOM, "entry"))
    entry.addElement("title", content=title)
    entry.addElement("content", content=body)
    entry.addElement("published", content="2024-01-02T03:04:05Z")
    return item


def record_calls(testcase: TestCase, obj: Any, name: str) -> list[defer.Deferred[Any]]:
    """The calls of ``obj.name`` from now on, each as the Deferred of its result.

    The method still runs (it is wrapped); the list fills as it is called.
    """
    calls: list[defer.Deferred[Any]] = []
    original = getattr(obj, name)

    def recording(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        calls.append(as_deferred(original, *args, **kwargs))
        return calls[-1]

    testcase.patch(obj, name, recording)
    return calls


def next_call(
    testcase: TestCase, obj: Any, name: str
) -> tuple[defer.Deferred[None], defer.Deferred[Any]]:
    """Watch the next call of ``obj.name`` (wrapped; it still runs).

    Returns (fires once it was called and has returned, fires with its result once
    that has come). Await them with a timeout.
    """
    called: defer.Deferred[None] = defer.Deferred()
    done: defer.Deferred[Any] = defer.Deferred()
    original = getattr(obj, name)

    def relay(result: Any) -> Any:
        if isinstance(result, Failure):
            done.errback(result)
        else:
            done.callback(result)
        return result

    def watched(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        result = as_deferred(original, *args, **kwargs)
        if not called.called:
            result.addBoth(relay)
            called.callback(None)
        return result

    testcase.patch(obj, name, watched)
    return called, done
