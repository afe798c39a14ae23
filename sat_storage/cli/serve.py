"""``sat-storage run``: the host in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Run the host: connect the profiles and keep their caches in sync."""
    raise click.UsageError("not available yet")
