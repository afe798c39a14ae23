"""``sat-storage cache``: inspect, search, purge, reset and synchronise the pubsub cache.

Reads, purges and resets go through the storage API (no XMPP connection needed);
``cache sync`` starts the host and connects the profile.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import click
from twisted.internet import defer, task
from twisted.words.protocols.jabber import jid

from sat_storage.cli.render import (
    SyncProgress,
    human_size,
    item_date,
    item_summary,
    item_to_dict,
    stats_to_json,
)
from sat_storage.cli.runtime import (
    DATE,
    JID,
    BadInput,
    Options,
    Runtime,
    RuntimeFailure,
    connect,
    pass_options,
    run_async,
    yes_option,
)
from sat_storage.cli.search_flags import search_query
from sat_storage.exceptions import NotFound, SyncOwnedElsewhere
from sat_storage.models import SyncState


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


def item_filters(
    profiles: tuple[str, ...],
    services: tuple[jid.JID, ...],
    nodes: tuple[str, ...],
    types: tuple[str, ...],
    subtypes: tuple[str, ...],
    created_before: datetime | None,
    updated_before: datetime | None,
) -> dict[str, Any]:
    """The cache plugin's purge filters (an empty type/subtype = none; None = no filter)."""
    return {
        "profiles": list(profiles) or None,
        "services": list(services) or None,
        "nodes": list(nodes) or None,
        "types": [t or None for t in types] or None,
        "subtypes": [t or None for t in subtypes] or None,
        "created_before": created_before,
        "updated_before": updated_before,
    }


def count_matching(storage: Any, filters: dict[str, Any]) -> Any:
    """How many items the plugin's purge with ``filters`` would remove (a Deferred).

    The storage names the node filter ``names`` where the plugin says ``nodes``.
    """
    args = {("names" if key == "nodes" else key): value for key, value in filters.items()}
    return storage.count_pubsub_items(**args)


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


def sync_state_name(state: SyncState | None) -> str:
    """A node's sync state for people ("never synchronised" for none)."""
    return state.value if state is not None else "none (never synchronised)"


def incomplete_warning(state: SyncState | None, service: jid.JID, node: str) -> str | None:
    """What to tell about a node whose cached items may be incomplete (not COMPLETED)."""
    if state is SyncState.COMPLETED:
        return None
    return (
        f"{node!r} at {service.full()} is not fully synchronised (sync state "
        f"{sync_state_name(state)}): the cache may miss items of the node; "
        f"run 'sat-storage cache sync {service.full()} {node}' to complete it"
    )


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
    """Cached items of NODE on SERVICE, paged as XEP-0059 (RSM) does.

    Shows the node's sync state, and warns (on stderr) when it is not completed: a
    node left half-synchronised may miss items.
    """

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
        state = result["sync_state"]
        out.message(f"{node} at {service.full()}: sync state {sync_state_name(state)}")
        out.table(["item", "updated", "summary"], rows)
        rsm = result["metadata"]["rsm"]
        out.message(
            f"{len(rows)} of {rsm['count']} items, index {rsm['index']}, first {rsm['first']}, "
            f"last {rsm['last']}, complete: {result['metadata']['complete']}"
        )

    options.output.emit(result, render)
    warning = incomplete_warning(result["sync_state"], service, node)
    if warning:
        click.echo(f"warning: {warning}", err=True)


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

    filters = item_filters(
        profiles, services, nodes, types, subtypes, created_before, updated_before
    )

    async def work(runtime: Runtime) -> dict[str, Any]:
        host, plugin = await runtime.cache_plugin()
        matched = await count_matching(host.memory.storage, filters)
        result = {"matched": matched, "purged": 0, "dry_run": dry_run}
        if dry_run or matched == 0:
            return result
        scope = "matching items" if any(filters.values()) else "items (no filter: ALL items)"
        await runtime.confirm(f"Purge {matched} cached {scope}?")
        result["purged"] = await plugin.purge(filters)
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
def search(options: Options, limit: int, no_limit: bool, **flags: Any) -> None:
    """Search cached items (all profiles unless --profile).

    The query language is described in the documentation, page "The pubsub cache",
    section "Searching" (doc/pubsub_cache.rst).

    PATH is key.key.0 (digits index arrays) or a JSON list; VALUE is JSON when it
    parses (3, true, null, ["a","b"], '"3"' for the text 3), else text. Operators:
    == != > >= < <= (or eq ne gt ge lt le), between, in, not_in, overlap, ioverlap,
    disjoint, idisjoint, like, ilike, not_like, not_ilike.
    """
    query = search_query(limit=None if no_limit else limit, **flags)

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


async def check_node_exists(host: Any, client: Any, service: jid.JID, node: str) -> None:
    """BadInput when SERVICE says NODE does not exist (asked directly, not the cache).

    Checked before synchronising, so that nothing is recorded for a node that is not
    there (a typo, a node not created yet).
    """
    from twisted.words.protocols.jabber import error as jabber_error

    from sat_storage.plugins.pubsub_cache.analysis import KEY_USE_CACHE

    try:
        await host.plugins["XEP-0060"].get_items(
            client, service, node, 1, extra={KEY_USE_CACHE: False}
        )
    except (NotFound, jabber_error.StanzaError) as e:
        if isinstance(e, NotFound) or e.condition == "item-not-found":
            raise BadInput(f"node {node!r} not found at {service.full()}") from None
        raise


def busy_message(description: str) -> str:
    """The error of ``cache sync`` on a node another process is synchronising."""
    return f"{description}: not synchronised here, try again later"


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
        await check_node_exists(host, client, service, node)
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
