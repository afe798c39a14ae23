"""Entry points of a group, as the plugin loader and the schema discovery read them."""

from __future__ import annotations

import importlib.metadata


def group_entry_points(
    group: str, path: list[str] | None = None
) -> list[importlib.metadata.EntryPoint]:
    """The entry points of ``group`` in ``path`` (default ``sys.path``), each once, by name."""
    found: dict[tuple[str, str], importlib.metadata.EntryPoint] = {}
    kwargs = {} if path is None else {"path": path}
    for dist in importlib.metadata.distributions(**kwargs):
        for ep in dist.entry_points.select(group=group):
            found.setdefault((ep.name, ep.value), ep)  # same dist twice on the path
    return sorted(found.values(), key=lambda ep: (ep.name, ep.value))
