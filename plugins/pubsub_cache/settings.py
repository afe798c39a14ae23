"""The ``[pubsub_cache]`` configuration section, parsed and checked once.

Options: ``strategy`` (``no_cache`` disables the cache; Libervia's
``pubsub_cache_strategy`` in ``[DEFAULT]`` works too), ``cache_limit`` (items kept per
node, default 5000), ``page_size`` (RSM page size, default 100), ``sync_deadline``
(seconds, default 3600), ``sync_attempts`` (default 3), ``error_retry_delay`` (seconds
before a failed node is tried again, default 600), ``sync_lease`` (seconds a
synchronisation is owned without renewal, default 300), ``sync_lease_renewal``
(seconds between renewals, default 60; shorter than the lease), ``max_staleness``
(seconds a node may be answered after a (re)connection before it is revalidated;
default none: revalidated at each connection), ``missing_node_delay`` (seconds a node
found missing is not analysed again, default 60).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CONFIG_SECTION = "pubsub_cache"
NO_CACHE = "no_cache"
STRATEGIES = ("cache", NO_CACHE)
#: option name -> (default, type, minimum)
SETTINGS: dict[str, tuple[float, type, float]] = {
    "cache_limit": (5000, int, 1),
    "page_size": (100, int, 1),
    "sync_deadline": (3600.0, float, 0.001),
    "sync_attempts": (3, int, 1),
    "error_retry_delay": (600.0, float, 0),
    "sync_lease": (300.0, float, 0.001),
    "sync_lease_renewal": (60.0, float, 0.001),
    "missing_node_delay": (60.0, float, 0),
}

#: ``config_get(section, name, default)`` of the host's memory
ConfigGet = Callable[[str | None, str, Any], Any]


@dataclass(frozen=True)
class CacheSettings:
    """The cache's configuration; ``ValueError`` naming the option for a bad value."""

    use_cache: bool = True
    cache_limit: int = 5000
    page_size: int = 100
    sync_deadline: float = 3600.0
    sync_attempts: int = 3
    error_retry_delay: float = 600.0
    sync_lease: float = 300.0
    sync_lease_renewal: float = 60.0
    missing_node_delay: float = 60.0
    max_staleness: float | None = None

    def __post_init__(self) -> None:
        if self.sync_lease_renewal >= self.sync_lease:
            raise ValueError(
                f"[{CONFIG_SECTION}] sync_lease_renewal ({self.sync_lease_renewal:g}) must be "
                f"shorter than sync_lease ({self.sync_lease:g})"
            )

    @classmethod
    def from_config(cls, config_get: ConfigGet) -> CacheSettings:
        """The settings of the host's configuration (``host.memory.config_get``)."""
        use_cache = _strategy(config_get)  # checked first, as before the split
        values: dict[str, Any] = {name: _setting(config_get, name) for name in SETTINGS}
        values["cache_limit"] = int(values["cache_limit"])
        values["page_size"] = int(values["page_size"])
        values["sync_attempts"] = int(values["sync_attempts"])
        for name in ("sync_deadline", "error_retry_delay", "sync_lease", "sync_lease_renewal"):
            values[name] = float(values[name])
        values["missing_node_delay"] = float(values["missing_node_delay"])
        values["max_staleness"] = _max_staleness(config_get)
        return cls(use_cache=use_cache, **values)


def _strategy(config_get: ConfigGet) -> bool:
    """False when the configuration disables the cache (``no_cache``)."""
    strategy = config_get(CONFIG_SECTION, "strategy", None)
    option = f"[{CONFIG_SECTION}] strategy"
    if strategy is None:
        strategy = config_get(None, "pubsub_cache_strategy", None)
        option = "pubsub_cache_strategy"
    if strategy is None:
        return True
    strategy = str(strategy).strip().lower()
    if strategy not in STRATEGIES:
        raise ValueError(f"{option} must be one of {STRATEGIES}, got {strategy!r}")
    return strategy != NO_CACHE


def _max_staleness(config_get: ConfigGet) -> float | None:
    """``max_staleness`` in seconds (None, the default: revalidate at each connection)."""
    raw = config_get(CONFIG_SECTION, "max_staleness", None)
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:
        raise ValueError(
            f"[{CONFIG_SECTION}] max_staleness must be a number of seconds >= 0, got {raw!r}"
        )
    return value


def _setting(config_get: ConfigGet, name: str) -> float:
    default, type_, minimum = SETTINGS[name]
    raw = config_get(CONFIG_SECTION, name, default)
    try:
        value = type_(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"[{CONFIG_SECTION}] {name} must be a {type_.__name__}, got {raw!r}"
        ) from None
    if value < minimum:
        raise ValueError(f"[{CONFIG_SECTION}] {name} must be at least {minimum}, got {raw!r}")
    return value


__all__ = ["CONFIG_SECTION", "NO_CACHE", "STRATEGIES", "CacheSettings"]
