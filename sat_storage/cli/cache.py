"""``sat-storage cache``: inspect, search, purge, reset and synchronise the pubsub cache.

Reads, purges and resets go through the storage API (no XMPP connection needed);
``cache sync`` starts the host and connects the profile.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import click
from twisted.internet import defer, task
from twisted.words.protocols.jabber import jid

from sat_storage.cli.runtime import (
    DATE,
    BadInput,
    Options,
    Runtime,
    RuntimeFailure,
    pass_options,
    run_async,
    yes_option,
)
from sat_storage.models import PubsubItem, SyncState
from sat_storage.plugins.pubsub_cache.lease import SyncOwnedElsewhere
from sat_storage.xml_tools import to_xml

SUMMARY_WIDTH = 60


class JidParam(click.ParamType):
    """A Jabber ID (checked with Twisted's parser)."""

    name = "jid"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, jid.JID):
            return value
        try:
            return jid.JID(str(value))
        except jid.InvalidFormat as e:
            self.fail(f"{value!r} is not a valid JID: {e}", param, ctx)


JID = JidParam()


def client_for(storage: Any, profile: str | None) -> SimpleNamespace:
    """A client stand-in for the storage API: ``profile``, or the only profile there is."""
    if profile is None:
        profiles = storage.get_profiles_list()
        if len(profiles) != 1:
            known = ", ".join(sorted(profiles)) or "none exists"
            raise BadInput(f"choose a profile with --profile ({known})")
        profile = profiles[0]
    storage.get_profile_id(profile)  # ProfileUnknownError: exit 1
    return SimpleNamespace(profile=profile)


def node_filters(
    profiles: tuple[str, ...],
    services: tuple[jid.JID, ...],
    nodes: tuple[str, ...],
    types: tuple[str, ...],
    subtypes: tuple[str, ...],
) -> dict[str, Any]:
    """Keyword filters of the storage's purge (an empty string = no type/subtype)."""
    return {
        "profiles": list(profiles) or None,
        "services": list(services) or None,
        "names": list(nodes) or None,
        "types": [t or None for t in types] or None,
        "subtypes": [t or None for t in subtypes] or None,
    }


def stats_to_json(stats: dict[str, Any]) -> dict[str, Any]:
    """The storage's cache figures with sync states as text ("none": never synced)."""
    by_state = {
        (state.value if state is not None else "none"): count
        for state, count in stats["by_state"].items()
    }
    return {**stats, "by_state": by_state}


def human_size(size: int) -> str:
    """``size`` bytes for people (B, KiB, MiB, GiB)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def item_summary(item: PubsubItem) -> str:
    """One short line about an item: its parsed title or the start of its XML."""
    parsed = item.parsed or {}
    text = parsed.get("title") or parsed.get("content") if isinstance(parsed, dict) else None
    if not text:
        text = to_xml(item.data) if item.data is not None else ""
    text = " ".join(str(text).split())
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 1] + "…"


def item_date(item: dict[str, Any]) -> str:
    """Day of an item for people: its parsed ``published`` timestamp, else its update."""
    published = (item.get("parsed") or {}).get("published")
    if isinstance(published, int | float) and not isinstance(published, bool):
        return datetime.fromtimestamp(published, UTC).date().isoformat()
    return item["updated"].date().isoformat()


def item_to_dict(item: PubsubItem, profile: str | None = None) -> dict[str, Any]:
    """JSON form of a cached item (its XML as text); with its node when ``profile``."""
    data: dict[str, Any] = {
        "name": item.name,
        "created": item.created,
        "updated": item.updated,
        "parsed": item.parsed,
        "xml": to_xml(item.data) if item.data is not None else None,
    }
    if profile is not None:
        node = item.node
        data.update(
            profile=profile,
            service=node.service,
            node=node.name,
            type=node.type_,
            subtype=node.subtype,
        )
    return data


profile_option = click.option(
    "-p", "--profile", help="Profile (default: the only one, when there is only one)."
)


@click.group()
def cache() -> None:
    """The pubsub cache: stats, get, search, purge, reset, sync."""


@cache.command()
@click.option("-p", "--profile", "profiles", multiple=True, help="Only this profile (repeatable).")
@pass_options
def stats(options: Options, profiles: tuple[str, ...]) -> None:
    """Cached nodes per sync state and per type, items and their size."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        storage = await runtime.storage()
        return stats_to_json(await storage.get_pubsub_stats(list(profiles) or None))

    result = run_async(options, work)

    def render() -> None:
        out = options.output
        out.fields(
            [
                ("nodes", result["nodes"]),
                ("items", result["items"]),
                ("size", human_size(result["size"])),
            ]
        )
        if result["by_state"]:
            out.table(["sync state", "nodes"], sorted(result["by_state"].items()), "Nodes by state")
        if result["by_type"]:
            rows = [
                (
                    r["type"] or "-",
                    r["subtype"] or "-",
                    r["nodes"],
                    r["items"],
                    human_size(r["size"]),
                )
                for r in result["by_type"]
            ]
            out.table(["type", "subtype", "nodes", "items", "size"], rows, "By type")

    options.output.emit(result, render)


@cache.command()
@click.argument("service", type=JID)
@click.argument("node")
@profile_option
@click.option("-m", "--max", "max_items", type=click.IntRange(min=0), help="Page size.")
@click.option("--after", metavar="ID", help="Page after this item.")
@click.option("--before", metavar="ID", help="Page before this item ('' = last page).")
@click.option("--index", type=click.IntRange(min=0), help="Page from this position.")
@click.option("--id", "item_ids", multiple=True, metavar="ID", help="Only this item (repeatable).")
@click.option(
    "--order",
    type=click.Choice(["creation", "modification"]),
    default="modification",
    show_default=True,
    help="Order of the items.",
)
@click.option("--oldest", is_flag=True, help="With --max alone: the oldest items, not the newest.")
@pass_options
def get(
    options: Options,
    service: jid.JID,
    node: str,
    profile: str | None,
    max_items: int | None,
    after: str | None,
    before: str | None,
    index: int | None,
    item_ids: tuple[str, ...],
    order: str,
    oldest: bool,
) -> None:
    """Cached items of NODE on SERVICE, paged as XEP-0059 (RSM) does."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        storage = await runtime.storage()
        client = client_for(storage, profile)
        cached = await storage.get_pubsub_node(client, service, node)
        if cached is None:
            raise BadInput(
                f"node {node!r} of {service.full()} is not cached for profile {client.profile!r}"
            )
        items, metadata = await storage.get_items(
            cached,
            max_items=max_items,
            item_ids=list(item_ids) or None,
            before=before,
            after=after,
            from_index=index,
            order_by=[order],
            desc=not oldest,
        )
        return {
            "profile": client.profile,
            "service": service.full(),
            "node": node,
            "sync_state": cached.sync_state,
            "items": [item_to_dict(item) for item in items],
            "metadata": metadata,
            "summaries": [item_summary(item) for item in items],
        }

    result = run_async(options, work)
    summaries = result.pop("summaries")

    def render() -> None:
        out = options.output
        rows = [
            (item["name"], item["updated"].isoformat(timespec="seconds"), summary)
            for item, summary in zip(result["items"], summaries, strict=True)
        ]
        out.table(["item", "updated", "summary"], rows)
        rsm = result["metadata"]["rsm"]
        out.message(
            f"{len(rows)} of {rsm['count']} items, index {rsm['index']}, first {rsm['first']}, "
            f"last {rsm['last']}, complete: {result['metadata']['complete']}"
        )

    options.output.emit(result, render)


ORDERS = ("creation", "modification", "item_id", "rank")
DIRECTIONS = ("asc", "desc")


def parse_path(text: str) -> list[str | int]:
    """A parsed-data path: ``a.b.0`` (digits are array indexes) or a JSON list."""
    if text.startswith("["):
        try:
            path = json.loads(text)
        except ValueError:
            raise BadInput(f"path {text!r} is not a JSON list") from None
        if not isinstance(path, list):
            raise BadInput(f"path {text!r} is not a JSON list")
        return path
    if not text or any(not part for part in text.split(".")):
        raise BadInput(f"malformed path {text!r}: use key.key.0 or a JSON list")
    return [int(p) if p.lstrip("-").isdigit() else p for p in text.split(".")]


def parse_value(text: str) -> Any:
    """A filter value: JSON when it parses (3, true, null, ["a","b"], "3"), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_order(text: str) -> dict[str, Any]:
    """``--order-by`` value: ``ORDER[:DIRECTION]``, ORDER a named order or a path."""
    name, direction = text, None
    if ":" in text:
        name, _, direction = text.rpartition(":")
        if direction not in DIRECTIONS:
            raise BadInput(f"unknown direction {direction!r} in --order-by {text!r}: asc or desc")
    spec: dict[str, Any] = {"order": name} if name in ORDERS else {"path": parse_path(name)}
    if direction is not None:
        spec["direction"] = direction
    return spec


filter_options = [
    click.option("-p", "--profile", "profiles", multiple=True, help="Profile (repeatable)."),
    click.option("-s", "--service", "services", type=JID, multiple=True, help="Service JID."),
    click.option("-n", "--node", "nodes", multiple=True, help="Node name (repeatable)."),
    click.option("-t", "--type", "types", multiple=True, help="Node type ('' = none)."),
    click.option("--subtype", "subtypes", multiple=True, help="Node subtype ('' = none)."),
]


def with_filters(fn: Any) -> Any:
    """Add the node filter options (profiles, services, nodes, types, subtypes)."""
    for option in reversed(filter_options):
        fn = option(fn)
    return fn


@cache.command()
@with_filters
@click.option("--created-before", type=DATE, help="Items first cached before (date or age).")
@click.option("--updated-before", type=DATE, help="Items last updated before (date or age).")
@click.option("--dry-run", is_flag=True, help="Only count the items that would be purged.")
@yes_option
@pass_options
def purge(
    options: Options,
    profiles: tuple[str, ...],
    services: tuple[jid.JID, ...],
    nodes: tuple[str, ...],
    types: tuple[str, ...],
    subtypes: tuple[str, ...],
    created_before: datetime | None,
    updated_before: datetime | None,
    dry_run: bool,
) -> None:
    """Delete cached items matching every filter; asks first.

    Nodes stay, but a node that loses items is no longer answered from the cache
    until synchronised again (the PUBSUB_CACHE plugin's purge).

    Dates are ISO 8601 (naive means UTC) or ages: 30d, 12h, 45m, 2w.
    """

    async def work(runtime: Runtime) -> dict[str, Any]:
        storage = await runtime.storage()
        filters = node_filters(profiles, services, nodes, types, subtypes)
        matched = await storage.count_pubsub_items(
            **filters, created_before=created_before, updated_before=updated_before
        )
        result = {"matched": matched, "purged": 0, "dry_run": dry_run}
        if dry_run or matched == 0:
            return result
        filtered = any(filters.values()) or created_before or updated_before
        scope = "matching items" if filtered else "items (no filter: ALL items)"
        await runtime.confirm(f"Purge {matched} cached {scope}?")
        await storage.close()  # the host opens its own
        _host, plugin = await runtime.cache_plugin()
        purge_filters = {
            "profiles": filters["profiles"],
            "services": filters["services"],
            "nodes": filters["names"],
            "types": filters["types"],
            "subtypes": filters["subtypes"],
            "created_before": created_before,
            "updated_before": updated_before,
        }
        result["purged"] = await plugin.purge(purge_filters)
        return result

    result = run_async(options, work)
    if result["dry_run"]:
        message = f"{result['matched']} items would be purged"
    else:
        message = f"{result['purged']} items purged"
    options.output.emit(result, lambda: options.output.message(message))


@cache.command()
@yes_option
@pass_options
def reset(options: Options) -> None:
    """Remove every cached node and item (of every profile); asks first."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        host, plugin = await runtime.cache_plugin()
        before = await host.memory.storage.get_pubsub_stats()
        if before["nodes"]:
            await runtime.confirm(
                f"Remove all {before['nodes']} cached nodes and {before['items']} items?"
            )
        await plugin.reset()
        return {"nodes": before["nodes"], "items": before["items"]}

    result = run_async(options, work)
    options.output.emit(
        result,
        lambda: options.output.message(
            f"cache reset: {result['nodes']} nodes and {result['items']} items removed"
        ),
    )


@cache.command()
@click.option("--fts", metavar="QUERY", help='Full-text query: words, "phrase", pre*, OR, -not.')
@with_filters
@click.option("--name", "names", multiple=True, metavar="ID", help="Item id (repeatable).")
@click.option(
    "--parsed",
    "parsed",
    nargs=3,
    multiple=True,
    metavar="PATH OP VALUE",
    help="Filter on parsed data (repeatable), e.g. --parsed tags overlap '[\"xmpp\"]'.",
)
@click.option(
    "--order-by",
    "orders",
    multiple=True,
    metavar="ORDER[:asc|desc]",
    help="creation, modification, item_id, rank or a parsed path (repeatable).",
)
@click.option("--index", type=click.IntRange(min=0), help="Skip this many results.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="Results at most."
)
@click.option("--no-limit", is_flag=True, help="Every result.")
@pass_options
def search(
    options: Options,
    fts: str | None,
    profiles: tuple[str, ...],
    services: tuple[jid.JID, ...],
    nodes: tuple[str, ...],
    types: tuple[str, ...],
    subtypes: tuple[str, ...],
    names: tuple[str, ...],
    parsed: tuple[tuple[str, str, str], ...],
    orders: tuple[str, ...],
    index: int | None,
    limit: int,
    no_limit: bool,
) -> None:
    """Search cached items (all profiles unless --profile): DESIGN's query language.

    PATH is key.key.0 (digits index arrays) or a JSON list; VALUE is JSON when it
    parses (3, true, null, ["a","b"], '"3"' for the text 3), else text. Operators:
    == != > >= < <= (or eq ne gt ge lt le), between, in, not_in, overlap, ioverlap,
    disjoint, idisjoint, like, ilike, not_like, not_ilike.
    """
    query: dict[str, Any] = {
        "fts": fts,
        "profiles": list(profiles) or None,
        "services": [s.full() for s in services] or None,
        "nodes": list(nodes) or None,
        "types": [t or None for t in types] or None,
        "subtypes": [t or None for t in subtypes] or None,
        "names": list(names) or None,
        "parsed": [
            {"path": parse_path(path), "op": op, "value": parse_value(value)}
            for path, op, value in parsed
        ]
        or None,
        "order-by": [parse_order(order) for order in orders] or None,
        "index": index,
        "limit": None if no_limit else limit,
    }
    query = {key: value for key, value in query.items() if value is not None}

    async def work(runtime: Runtime) -> list[tuple[dict[str, Any], str]]:
        storage = await runtime.storage()
        items = await storage.search_pubsub_items(query, all_profiles=True)
        names_by_id = {id_: name for name, id_ in storage.profiles.items()}
        return [
            (item_to_dict(item, names_by_id.get(item.node.profile_id, "?")), item_summary(item))
            for item in items
        ]

    results = run_async(options, work)

    def render() -> None:
        out = options.output
        places = {(r["profile"], r["service"], r["node"]) for r, _ in results}
        if len(places) == 1:  # one node: say it once, keep the width for the items
            profile, service, node = places.pop()
            out.message(f"{node} at {service} [{profile}]")
            rows = [(r["name"], item_date(r), summary) for r, summary in results]
            out.table(["item", "date", "summary"], rows)
        else:
            rows = [
                (r["profile"], f"{r['service']} {r['node']}", r["name"], item_date(r), summary)
                for r, summary in results
            ]
            out.table(["profile", "node", "item", "date", "summary"], rows)
        out.message(f"{len(results)} result(s)")

    options.output.emit([r for r, _ in results], render)


async def connect(host: Any, profile: str) -> Any:
    """Connect ``profile``; a connection failure is a runtime failure (exit 2)."""
    from sat_storage.xmpp import XMPPConnectionError

    try:
        return await host.connect(profile)
    except XMPPConnectionError as e:
        raise RuntimeFailure(str(e)) from None


def busy_message(description: str) -> str:
    """The error of ``cache sync`` on a node another process is synchronising."""
    return f"{description}: not synchronised here, try again later"


class SyncProgress:
    """A progress bar on stderr (items cached / total), fed by the plugin's progress."""

    def __init__(self, options: Options, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            auto_refresh=False,
            disable=options.json,
        )
        self.task_id = self.progress.add_task(label, total=None)

    def __enter__(self) -> SyncProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, cached: int, total: int | None) -> None:
        """Show ``cached`` of ``total`` (None: not known yet)."""
        self.progress.update(self.task_id, completed=cached, total=total)
        self.progress.refresh()


@cache.command()
@click.argument("service", type=JID)
@click.argument("node")
@profile_option
@click.option(
    "--keep", is_flag=True, help="Leave a node already synchronised as it is (no refetch)."
)
@pass_options
def sync(options: Options, service: jid.JID, node: str, profile: str | None, keep: bool) -> None:
    """Synchronise NODE of SERVICE now: connects the profile, shows the progress.

    A node that another process (the backend, another host) is synchronising is left
    to it: the command fails (exit 2) naming that process and the end of its lease.
    """

    async def work(runtime: Runtime) -> dict[str, Any]:
        host, plugin = await runtime.cache_plugin()
        storage = host.memory.storage
        offline = client_for(storage, profile)
        holder = await plugin.sync_holder(offline, service, node)
        if holder is not None:
            raise RuntimeFailure(busy_message(holder["description"]))
        client = await connect(host, offline.profile)
        label = f"{node} at {service.full()}"
        with SyncProgress(options, label) as bar:

            def poll() -> None:
                progress = plugin.sync_progress(client, service, node)
                if progress is not None:
                    bar.update(progress["cached"], progress["total"])

            loop = task.LoopingCall(poll)
            loop.clock = runtime.reactor
            loop.start(0.1)
            try:
                state = await defer.ensureDeferred(
                    plugin.synchronise(client, service, node, resync=not keep)
                )
            except SyncOwnedElsewhere as e:  # claimed meanwhile by another process
                raise RuntimeFailure(busy_message(str(e))) from None
            finally:
                loop.stop()
            cached = await storage.get_pubsub_node(client, service, node)
            count = 0
            if cached is not None:
                _items, metadata = await storage.get_items(cached, max_items=0)
                count = metadata["rsm"]["count"]
            bar.update(count, count)
        return {
            "profile": client.profile,
            "service": service.full(),
            "node": node,
            "state": state,
            "items": count,
        }

    result = run_async(options, work)
    state = result["state"]
    options.output.emit(
        result,
        lambda: options.output.message(
            f"{node} at {service.full()}: {state.value if state else 'dropped'}, "
            f"{result['items']} items cached"
        ),
    )
    if state is not SyncState.COMPLETED:
        raise RuntimeFailure(
            f"synchronisation of {node!r} at {service.full()} ended in state "
            f"{state.value if state else 'none (node dropped)'}"
        )
