"""``sat-storage profile``: list, create and delete profiles."""

from __future__ import annotations

from typing import Any

import click

from sat_storage.cli.runtime import Options, Runtime, pass_options, run_async, yes_option


@click.group()
def profile() -> None:
    """Profiles: list, create, delete."""


@profile.command("list")
@pass_options
def list_(options: Options) -> None:
    """The profiles, with their component entry point when they are components."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        storage = await runtime.storage()
        return [
            {
                "name": name,
                "component": storage.get_entry_point(name)
                if storage.profile_is_component(name)
                else None,
            }
            for name in sorted(storage.get_profiles_list())
        ]

    profiles = run_async(options, work)
    options.output.emit(
        profiles,
        lambda: (
            options.output.table(
                ["profile", "component"], [(p["name"], p["component"]) for p in profiles]
            )
            if profiles
            else options.output.message("no profile")
        ),
    )


@profile.command()
@click.argument("name")
@click.option("--component", metavar="ENTRY_POINT", help="Make it a component profile.")
@pass_options
def create(options: Options, name: str, component: str | None) -> None:
    """Create the profile NAME."""

    async def work(runtime: Runtime) -> None:
        storage = await runtime.storage()
        await storage.create_profile(name, component)

    run_async(options, work)
    options.output.emit(
        {"name": name, "component": component},
        lambda: options.output.message(f"profile {name!r} created"),
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
