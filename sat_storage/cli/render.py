"""How the cache commands show nodes and items: JSON forms, summaries, sizes, progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.words.xish import domish

from sat_storage.cli.runtime import Options
from sat_storage.models import PubsubItem
from sat_storage.xml_tools import to_xml

SUMMARY_WIDTH = 60


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


def first_text(element: domish.Element) -> str | None:
    """The first non-blank character data inside ``element`` (depth first), trimmed."""
    for child in element.children:
        if isinstance(child, str):
            if child.strip():
                return child.strip()
        else:
            text = first_text(child)
            if text:
                return text
    return None


def payload_summary(data: domish.Element | None) -> str:
    """An item's payload for people: its first text, else its element name."""
    payload = next(data.elements(), None) if data is not None else None
    if payload is None:
        return "(no payload)"
    text = first_text(payload)
    if text:
        return text
    return f"<{payload.name}/> ({payload.uri})" if payload.uri else f"<{payload.name}/>"


def item_summary(item: PubsubItem) -> str:
    """One short line about an item: its parsed title, else its payload's first text
    (Atom or not), else the payload's element name; never raw XML."""
    parsed = item.parsed or {}
    text = parsed.get("title") or parsed.get("content") if isinstance(parsed, dict) else None
    if not text:
        text = payload_summary(item.data)
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
