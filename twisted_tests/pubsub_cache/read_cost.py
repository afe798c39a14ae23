"""What one cached read costs: argument checks and database transactions.

:func:`count_read_cost` wraps, for the time of one call, the functions that check
the arguments of an items request at each layer (XEP-0060's entry checks, the cache
plugin's reading of the request, ``get_items_args``, the storage's ``ItemsQuery`` and
``get_items`` when handed unchecked arguments), ``Gateway.run`` and ``Gateway.read``
(one call = one transaction, one thread hop), and counts their calls. A check made
inside another one is part of it (only the outermost is counted). Functions a
version of the code does not have are skipped, so the same probe measures the code
before and after a change.

    python -m twisted_tests.pubsub_cache.read_cost     # one cached get_items, JSON

(SQLite in a temporary directory, or ``SAT_STORAGE_DB_URL``.)
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: (layer, module, attribute path) of the functions that check items request arguments
CHECKS = (
    ("XEP-0060 get_items", "sat_storage.plugins.plugin_xep_0060", "check_items_request"),
    ("XEP-0060 get_items", "sat_storage.plugins.plugin_xep_0060", "_check_node"),
    ("cache plugin", "sat_storage.plugins.pubsub_cache.reads", "get_items_args"),  # before #11
    ("cache plugin", "sat_storage.plugins.pubsub_items", "get_items_args"),
    ("storage ItemsQuery", "sat_storage", "ItemsQuery.__init__"),
    ("storage get_items", "sat_storage", "Storage.get_items"),
)
GATEWAY_RUN = ("sat_storage.gateway", "Gateway.run")
#: the driver-alone read (one call = one read-only transaction), when the code has it
GATEWAY_READ = ("sat_storage.gateway", "Gateway.read")


@dataclass
class ReadCost:
    """Calls counted during one operation."""

    checks: dict[str, int] = field(default_factory=dict)
    transactions: int = 0
    _depth: int = 0

    @property
    def total_checks(self) -> int:
        """Argument checks, all layers together."""
        return sum(self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "argument_checks": self.total_checks,
            "checks_by_layer": dict(self.checks),
            "gateway_runs": self.transactions,
        }


def _resolve(module: str, path: str) -> tuple[Any, str] | None:
    """(owner object, attribute name) of ``module.path``, None when it does not exist."""
    try:
        owner: Any = importlib.import_module(module)
    except ImportError:
        return None
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
        if owner is None:
            return None
    return (owner, name) if name in vars(owner) else None


def _unchecked_get_items(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when ``Storage.get_items`` has to check its arguments itself (no query)."""
    query_type = getattr(importlib.import_module("sat_storage"), "ItemsQuery", None)
    given = list(args[2:3]) + [kwargs.get("query")]
    return query_type is None or not any(isinstance(a, query_type) for a in given)


@contextmanager
def counting() -> Iterator[ReadCost]:
    """Count checks and ``Gateway.run``/``Gateway.read`` calls while the block runs."""
    cost = ReadCost()
    undo: list[Callable[[], None]] = []

    def wrap(owner: Any, name: str, count: Callable[[tuple, dict], None]) -> None:
        original = vars(owner)[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count(args, kwargs)
            cost._depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                cost._depth -= 1

        setattr(owner, name, wrapper)
        undo.append(lambda: setattr(owner, name, original))

    for layer, module, path in CHECKS:
        found = _resolve(module, path)
        if found is None:
            continue

        def count_check(args: tuple, kwargs: dict, layer: str = layer, path: str = path) -> None:
            if cost._depth:
                return  # inside another check: part of it
            if path == "Storage.get_items" and not _unchecked_get_items(args, kwargs):
                return
            cost.checks[layer] = cost.checks.get(layer, 0) + 1

        wrap(*found, count_check)

    def count_run(args: tuple, kwargs: dict) -> None:
        cost.transactions += 1

    found = _resolve(*GATEWAY_RUN)
    assert found is not None, "Gateway.run not found"
    wrap(*found, count_run)
    found = _resolve(*GATEWAY_READ)
    if found is not None:
        wrap(*found, count_run)
    try:
        yield cost
    finally:
        for restore in reversed(undo):
            restore()


async def count_read_cost(read: Callable[[], Awaitable[Any]]) -> tuple[ReadCost, Any]:
    """The cost of ``read()`` (awaited), and its result."""
    with counting() as cost:
        result = await read()
    return cost, result


async def _main(workdir: str) -> dict[str, Any]:
    import os
    from pathlib import Path
    from types import SimpleNamespace

    from twisted.words.protocols.jabber.jid import JID

    from sat_storage.host import Host
    from sat_storage.models import SyncState
    from twisted_tests.pubsub_cache.helpers import atom_item

    config = Path(workdir, "sat.conf")
    config.write_text("")
    db_url = os.environ.get("SAT_STORAGE_DB_URL") or f"sqlite:///{workdir}/read_cost.sqlite"
    host = Host(config, db_url)
    await host.start()
    try:
        await host.plugins["PUBSUB_CACHE"].initialised
        await host.memory.storage.create_profile("alice")
        client = SimpleNamespace(profile="alice", jid=JID("alice@example.org/test"))
        service, name = JID("pubsub.example.org"), "urn:xmpp:microblog:0"
        storage = host.memory.storage
        node = await storage.set_pubsub_node(client, service, name, analyser="xep-0277")
        items = [atom_item(f"item-{i:02d}", f"title {i}") for i in range(30)]
        await host.plugins["PUBSUB_CACHE"].cache_items(client, node, items)
        await storage.update_pubsub_node_sync_state(node, SyncState.COMPLETED)
        xep_0060 = host.plugins["XEP-0060"]
        cost, (answer, _) = await count_read_cost(
            lambda: xep_0060.get_items(client, service, name, max_items=10)
        )
        if [item["id"] for item in answer] != [f"item-{i:02d}" for i in range(20, 30)]:
            raise RuntimeError("the cache did not answer the request")
        return dict(cost.as_dict(), request="get_items(max_items=10), node COMPLETED")
    finally:
        await host.stop()


def main() -> None:
    """Print the cost of one cached ``get_items`` as JSON."""
    from twisted.internet import defer, task

    with tempfile.TemporaryDirectory(prefix="read-cost.") as workdir:
        out: list[dict[str, Any]] = []

        async def run(reactor: Any) -> None:
            out.append(await _main(workdir))

        try:
            task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
        except SystemExit as e:
            if e.code:
                raise
    json.dump(out[0], sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
