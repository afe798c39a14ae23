"""``sat-storage profile``: list, create and delete profiles."""

from __future__ import annotations

from typing import Any

import click

from sat_storage.cli.runtime import (
    BadInput,
    Options,
    Runtime,
    pass_options,
    run_async,
    yes_option,
)


def connection_params() -> dict[str, tuple[str, str]]:
    """Option name -> the individual parameter the host connects with."""
    from sat_storage import host  # imports wokkel: only when needed

    return {
        "jid": host.PARAM_JID,
        "password": host.PARAM_PASSWORD,
        "server": host.PARAM_FORCE_SERVER,
        "port": host.PARAM_FORCE_PORT,
    }


PROMPT = "\0prompt"  # --password without a value: ask for it

connection_options = [
    click.option("--jid", help="Jabber ID the profile connects as."),
    click.option(
        "--password",
        is_flag=False,
        flag_value=PROMPT,
        help="Its password; alone (no value), asked at a prompt that does not echo, "
        "so it stays out of the shell history.",
    ),
    click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of standard input.",
    ),
    click.option("--server", help="Server host to connect to (default: the JID's domain)."),
    click.option("--port", type=click.IntRange(1, 65535), help="Server port (default: 5222)."),
]


def with_connection_options(fn: Any) -> Any:
    """Add --jid/--password/--server/--port."""
    for option in reversed(connection_options):
        fn = option(fn)
    return fn


def read_password(connection: dict[str, Any]) -> None:
    """Replace ``--password``/``--password-stdin`` by the password itself (or None)."""
    from_stdin = connection.pop("password_stdin")
    password = connection["password"]
    if from_stdin:
        if password is not None:
            raise BadInput("give either --password or --password-stdin, not both")
        line = click.get_text_stream("stdin").readline()
        password = line.rstrip("\r\n")
        if not password:
            raise BadInput("--password-stdin: standard input holds no password")
    elif password == PROMPT:
        try:
            password = click.prompt(
                "Password", hide_input=True, confirmation_prompt=True, err=True
            )
        except click.Abort:
            raise BadInput(
                "--password without a value asks for it, but there is no answer "
                "(no terminal): use --password-stdin"
            ) from None
    connection["password"] = password


def check_jid(value: str | None) -> None:
    """BadInput unless ``value`` is None or a JID with a user part."""
    if value is None:
        return
    from twisted.words.protocols.jabber.jid import JID, InvalidFormat

    try:
        parsed = JID(value)
    except InvalidFormat as e:
        raise BadInput(f"--jid {value!r} is not a valid JID: {e}") from None
    if not parsed.user:
        raise BadInput(f"--jid {value!r} has no user part (user@domain)")


async def set_connection(storage: Any, profile: str, values: dict[str, Any]) -> None:
    """Store the connection parameters given (None: leave as is)."""
    for option, value in values.items():
        if value is not None:
            category, name = connection_params()[option]
            await storage.set_ind_param(category, name, str(value), profile)


@click.group()
def profile() -> None:
    """Profiles: list, create, set, delete."""


@profile.command("list")
@pass_options
def list_(options: Options) -> None:
    """The profiles, with their component entry point when they are components."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        storage = await runtime.storage()
        params = connection_params()
        jids = await storage.get_ind_param_values(*params["jid"])
        servers = await storage.get_ind_param_values(*params["server"])
        ports = await storage.get_ind_param_values(*params["port"])
        return [
            {
                "name": name,
                "jid": jids.get(name),
                "server": servers.get(name),
                "port": int(ports[name]) if ports.get(name) else None,
                "component": storage.get_entry_point(name)
                if storage.profile_is_component(name)
                else None,
            }
            for name in sorted(storage.get_profiles_list())
        ]

    profiles = run_async(options, work)

    def render() -> None:
        if not profiles:
            options.output.message("no profile")
            return
        rows = [(p["name"], p["jid"], p["server"], p["port"], p["component"]) for p in profiles]
        options.output.table(["profile", "jid", "server", "port", "component"], rows)

    options.output.emit(profiles, render)


@profile.command()
@click.argument("name")
@click.option("--component", metavar="ENTRY_POINT", help="Make it a component profile.")
@with_connection_options
@pass_options
def create(options: Options, name: str, component: str | None, **connection: Any) -> None:
    """Create the profile NAME, with its XMPP connection settings.

    \b
    The password: --password VALUE, --password alone (asked, not echoed) or
    --password-stdin (first line of standard input, e.g. from a password manager).
    It is stored as given in the database (table param_ind, category Connection,
    name Password): protect the database file and its backups.
    """
    read_password(connection)
    check_jid(connection["jid"])

    async def work(runtime: Runtime) -> None:
        storage = await runtime.storage()
        await storage.create_profile(name, component)
        await set_connection(storage, name, connection)

    run_async(options, work)
    options.output.emit(
        {"name": name, "component": component, "jid": connection["jid"]},
        lambda: options.output.message(f"profile {name!r} created"),
    )


@profile.command("set")
@click.argument("name")
@with_connection_options
@pass_options
def set_(options: Options, name: str, **connection: Any) -> None:
    """Change the XMPP connection settings of the profile NAME.

    The password is given as for 'profile create' (--password [VALUE], --password-stdin).
    """
    read_password(connection)
    check_jid(connection["jid"])
    if all(value is None for value in connection.values()):
        raise BadInput(
            "nothing to set: give --jid, --password, --password-stdin, --server or --port"
        )

    async def work(runtime: Runtime) -> None:
        storage = await runtime.storage()
        storage.get_profile_id(name)
        await set_connection(storage, name, connection)

    run_async(options, work)
    changed = sorted(k for k, v in connection.items() if v is not None)
    options.output.emit(
        {"name": name, "changed": changed},
        lambda: options.output.message(f"profile {name!r}: {', '.join(changed)} set"),
    )


@profile.command()
@click.argument("name")
@yes_option
@pass_options
def delete(options: Options, name: str) -> None:
    """Delete the profile NAME and everything it owns (asks first)."""

    async def work(runtime: Runtime) -> None:
        storage = await runtime.storage()
        storage.get_profile_id(name)  # unknown profile: fail before asking
        await runtime.confirm(
            f"Delete profile {name!r} and all its data (history, parameters, cache)?"
        )
        await storage.delete_profile(name)

    run_async(options, work)
    options.output.emit(
        {"name": name, "deleted": True},
        lambda: options.output.message(f"profile {name!r} deleted"),
    )
