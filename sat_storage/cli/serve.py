"""``sat-storage run``: the host in the foreground until SIGINT/SIGTERM.

The profiles connect, their cached nodes that are not synchronised (never, after a
purge, or after an error) are synchronised again, and pubsub events keep every
cached node up to date. SIGINT/SIGTERM stop it cleanly: running synchronisations
are cancelled (their partial items removed, never left COMPLETED), clients are
disconnected and the database is closed before the process exits.
"""

from __future__ import annotations

import re
from typing import Any

import click
from twisted.internet import defer
from twisted.words.protocols.jabber import jid

from sat_storage.cli.runtime import (
    JID,
    BadInput,
    Options,
    Runtime,
    RuntimeFailure,
    connect,
    first_line,
    pass_options,
    run_async,
)
from sat_storage.models import SyncState

RUN_SECTION = "run"
#: sync states of cached nodes that ``run`` synchronises again at start
RESYNC_STATES = [None, SyncState.ERROR]


def configured_profiles(options: Options) -> list[str]:
    """``[run] profiles`` of the configuration (comma or space separated)."""
    value = options.config.get(RUN_SECTION, "profiles")
    return [name for name in re.split(r"[\s,]+", str(value or "")) if name]


async def default_profiles(storage: Any) -> list[str]:
    """Client profiles that have a JabberID to connect with."""
    from sat_storage.host import PARAM_JID

    jids = await storage.get_ind_param_values(*PARAM_JID)
    return sorted(
        name
        for name in storage.get_profiles_list()
        if jids.get(name) and not storage.profile_is_component(name)
    )


@click.command()
@click.option(
    "-p",
    "--profile",
    "profiles",
    multiple=True,
    help="Profile to connect (repeatable; default: [run] profiles of the config, "
    "else every profile with a JID).",
)
@click.option(
    "--sync",
    "syncs",
    type=(JID, str),
    multiple=True,
    metavar="SERVICE NODE",
    help="Also synchronise this node for every profile (repeatable).",
)
@pass_options
def run(
    options: Options, profiles: tuple[str, ...], syncs: tuple[tuple[jid.JID, str], ...]
) -> None:
    """Run the host: connect the profiles and keep their caches in sync until stopped."""
    out = options.output

    async def work(runtime: Runtime) -> None:
        host, plugin = await runtime.cache_plugin()
        storage = host.memory.storage
        names = list(profiles) or configured_profiles(options) or await default_profiles(storage)
        if not names:
            raise BadInput(
                "no profile to connect: create one with "
                "'sat-storage profile create NAME --jid JID --password PASSWORD'"
            )
        for name in names:
            storage.get_profile_id(name)
        clients = []
        for name in names:
            try:
                client = await connect(host, name)
            except RuntimeFailure as e:
                out.event("error", f"{name}: {e.message}", profile=name, message=e.message)
                continue
            clients.append(client)
            out.event("connected", f"{name}: connected as {client.jid.full()}", profile=name)
        if not clients:
            raise RuntimeFailure("no profile could connect")
        for client in clients:
            targets = {(service.full(), node) for service, node in syncs}
            stale = await storage.get_pubsub_nodes(
                profiles=[client.profile], sync_states=RESYNC_STATES
            )
            targets.update((node.service, node.name) for node in stale)
            for service, node in sorted(targets):
                start_sync(out, plugin, client, jid.JID(service), node)
        out.event(
            "ready",
            f"running with {len(clients)} profile(s); stop with Ctrl-C (SIGINT) or SIGTERM",
            profiles=[c.profile for c in clients],
        )
        await runtime.shutdown_requested
        out.event("stopping", "stopping: cancelling synchronisations, disconnecting")

    run_async(options, work)
    out.event("stopped", "stopped")


def start_sync(out: Any, plugin: Any, client: Any, service: jid.JID, node: str) -> None:
    """Synchronise a node in the background; its outcome is reported as an event."""
    where = {"profile": client.profile, "service": service.full(), "node": node}
    label = f"{client.profile}: {node} at {service.full()}"
    out.event("sync", f"{label}: synchronisation starts", **where)
    d = defer.ensureDeferred(plugin.synchronise(client, service, node, resync=False))

    def done(state: SyncState | None) -> None:
        name = state.value if state is not None else "dropped"
        out.event("synced", f"{label}: {name}", state=name, **where)

    def failed(failure: Any) -> None:
        message = first_line(failure.value)
        out.event("sync_error", f"{label}: failed: {message}", message=message, **where)

    d.addCallbacks(done, failed)
