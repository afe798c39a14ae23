"""The catch-up's plan (pure logic): applied as the storage applies it, it gives the
service's node, and it writes again only what the service changed or moved."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sat_storage.plugins.pubsub_cache import service_order
from sat_storage.plugins.pubsub_cache.catchup import (
    KnownItem,
    Plan,
    ServiceItem,
    item_id,
    item_xml,
    plan,
)
from twisted.trial.unittest import TestCase

from sat_storage.xml_tools import parse_xml, to_xml

MOVE, KEEP = service_order.MOVE, service_order.KEEP


def item(name: str, version: int) -> Any:
    return parse_xml(
        f"<item xmlns='http://jabber.org/protocol/pubsub' id='{name}'>"
        f"<entry xmlns='http://www.w3.org/2005/Atom'><title>v{version}</title></entry></item>"
    )


def text(name: str, version: int) -> str:
    return to_xml(item(name, version))


def applied(cached: list[tuple[str, str]], changes: Plan) -> list[tuple[str, str]]:
    """``cached`` after the plan, as ``Storage.catch_up_pubsub_items`` writes it:
    changed in place, removed deleted, appended after every other item."""
    changed = {e["id"]: to_xml(e) for e in changes.changed}
    removed = set(changes.removed)
    rest = [(name, changed.get(name, xml)) for name, xml in cached if name not in removed]
    return rest + [(e["id"], to_xml(e)) for e in changes.appended]


def expected(service: list[ServiceItem]) -> list[tuple[str, str]]:
    return [(item_id(i), item_xml(i)) for i in service]


@st.composite
def scenarios(draw: Any) -> tuple[str, list[tuple[str, str]], list[ServiceItem], set[str]]:
    """A cached node and the service's node after changes made the service's way:
    (policy, cached, service, ids the service changed, moved or added)."""
    policy = draw(st.sampled_from([MOVE, KEEP]))
    size = draw(st.integers(0, 25))
    names = [f"i{n}" for n in range(size)]
    cached = [(name, text(name, 0)) for name in names]
    order = list(names)
    versions = dict.fromkeys(names, 0)
    touched: set[str] = set()
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["retract", "edit", "republish", "new"]))
        if kind == "new" or not order:
            name = f"n{len(versions)}"
            versions[name] = 0
            order.append(name)
            touched.add(name)
            continue
        name = draw(st.sampled_from(order))
        if kind == "retract":
            order.remove(name)
            touched.discard(name)
            continue
        if kind == "edit":
            versions[name] += 1
        if policy == MOVE:  # edited or published again unchanged: moved to the end
            order.remove(name)
            order.append(name)
        touched.add(name)
    as_known = draw(st.booleans())  # untouched items as the tail reading gives them
    service: list[ServiceItem] = [
        KnownItem(name, text(name, 0))
        if as_known and name not in touched
        else item(name, versions[name])
        for name in order
    ]
    return policy, cached, service, touched


class PlanTests(TestCase):
    @settings(max_examples=300, database=None, deadline=None)
    @given(scenarios(), st.booleans())
    def test_applied_plan_is_the_service(self, scenario: Any, policy_known: bool) -> None:
        """Whatever was retracted, edited, republished or added, the plan applied to
        the cache gives the service's items, texts and order (policy known or not)."""
        policy, cached, service, _ = scenario
        changes = plan(cached, service, policy if policy_known else None)
        self.assertEqual(applied(cached, changes), expected(service))

    @settings(max_examples=300, database=None, deadline=None)
    @given(scenarios())
    def test_writes_only_what_changed(self, scenario: Any) -> None:
        """Only items the service edited, moved or added are written again."""
        policy, cached, service, touched = scenario
        changes = plan(cached, service, policy)
        written = {e["id"] for e in changes.changed + changes.appended}
        self.assertLessEqual(written, touched)

    def test_moved_oldest_items(self) -> None:
        """The 10 oldest of 1,000 items republished on a move service: 10 removed and
        written at the end, nothing else touched (before: all 1,000 written again)."""
        cached = [(f"i{n}", text(f"i{n}", 0)) for n in range(1000)]
        service: list[ServiceItem] = [KnownItem(n, x) for n, x in cached[10:]]
        service += [item(f"i{n}", 1) for n in range(10)]
        changes = plan(cached, service, MOVE)
        self.assertEqual(changes.removed, [f"i{n}" for n in range(10)])
        self.assertEqual([e["id"] for e in changes.appended], [f"i{n}" for n in range(10)])
        self.assertEqual(changes.changed, [])

    def test_keep_edit_in_place(self) -> None:
        """On a keep service an edited item is rewritten in place, nothing moved."""
        cached = [(f"i{n}", text(f"i{n}", 0)) for n in range(5)]
        service: list[ServiceItem] = [item(f"i{n}", 1 if n == 2 else 0) for n in range(5)]
        changes = plan(cached, service, KEEP)
        self.assertEqual(([e["id"] for e in changes.changed], changes.removed), (["i2"], []))
        self.assertEqual(changes.appended, [])

    def test_known_item_is_checked(self) -> None:
        """A cached text holding another id than its row's is refused when it must be
        written again."""
        cached = [("a", text("a", 0)), ("b", text("b", 0))]
        service: list[ServiceItem] = [item("b", 0), KnownItem("a", text("x", 0))]
        with self.assertRaisesRegex(ValueError, "another id"):
            plan(cached, service, MOVE)
