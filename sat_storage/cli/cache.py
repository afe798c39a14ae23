"""``sat-storage cache``: inspect, search, purge, reset and synchronise the pubsub cache."""

from __future__ import annotations

import click


@click.group()
def cache() -> None:
    """The pubsub cache: stats, get, search, purge, reset, sync."""
