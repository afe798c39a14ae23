"""Plugin discovery and loading through the ``sat.plugins`` entry points.

Each entry point names a module (``XEP-0060 = sat_storage.plugins.plugin_xep_0060``)
exposing ``PLUGIN_INFO`` (Libervia's keys as plain strings) whose ``main`` names the
plugin class, instantiated as ``main(host)``. :class:`PluginLoader`:

1. imports every module of the group and validates its ``PLUGIN_INFO`` and main class
   (:mod:`sat_storage.interfaces`, ``verifyClass``);
2. orders the plugins so that dependencies, and recommendations when available, load
   first; refuses duplicate import names, missing dependencies and dependency cycles;
3. instantiates them in that order, filling ``host.plugins`` as it goes.

A plugin that fails at any step is logged with its reason and skipped with every
plugin depending on it; the others load. The reasons stay in ``loader.errors``.

A plugin needing tables of its own is not loaded when their schema
(:mod:`sat_storage.schemas`) is not ready: the schemas it names in
``PLUGIN_INFO["schemas"]``, and every schema declared by its own distribution.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyClass

from sat_storage.entry_points import group_entry_points
from sat_storage.interfaces import PLUGIN_HOOKS, IPlugin, IPluginWithHandler

log = logging.getLogger(__name__)

GROUP = "sat.plugins"

#: PLUGIN_INFO keys every plugin must give.
REQUIRED_KEYS = ("name", "import_name", "type", "main")
#: Optional PLUGIN_INFO keys and their defaults.
DEFAULTS: dict[str, Any] = {
    "modes": ["client"],
    "dependencies": [],
    "recommendations": [],
    "handler": "no",
    "description": "",
    "schemas": [],
}
LIST_KEYS = ("modes", "dependencies", "recommendations", "schemas")


class PluginError(Exception):
    """A plugin cannot be loaded; names the entry point group, the entry and the reason."""

    def __init__(self, group: str, entry: str, reason: str) -> None:
        self.group = group
        self.entry = entry
        self.reason = reason
        super().__init__(f"plugin {entry} (entry point group {group!r}): {reason}")


@dataclass
class PluginSpec:
    """A plugin found and validated, not yet instantiated."""

    entry_point: importlib.metadata.EntryPoint
    module: ModuleType
    info: dict[str, Any]  # PLUGIN_INFO with defaults filled in
    main: type

    @property
    def import_name(self) -> str:
        return self.info["import_name"]

    @property
    def entry(self) -> str:
        """``name = value`` of the entry point (how errors name the plugin)."""
        return f"{self.entry_point.name} = {self.entry_point.value}"

    @property
    def dependencies(self) -> list[str]:
        return self.info["dependencies"]

    @property
    def recommendations(self) -> list[str]:
        return self.info["recommendations"]

    @property
    def has_handler(self) -> bool:
        return self.info["handler"] == "yes"


class PluginLoader:
    """Find, check, order and instantiate the plugins of an entry point group.

    ``path``: directories to search for distributions (default: ``sys.path``).
    """

    def __init__(self, group: str = GROUP, path: list[str] | None = None) -> None:
        self.group = group
        self.path = path
        self.errors: dict[str, PluginError] = {}  # by import name (else entry point name)
        self.loaded: dict[str, PluginSpec] = {}  # specs of the instantiated plugins
        #: The storage's plugin schema states (``Storage.plugin_schemas``), set by the host.
        self.schema_states: dict[str, Any] = {}

    # Discovery and validation

    def entry_points(self) -> list[importlib.metadata.EntryPoint]:
        """The group's entry points, each once, sorted by name."""
        return group_entry_points(self.group, self.path)

    def discover(self) -> dict[str, PluginSpec]:
        """Import and validate every plugin; the valid ones by import name."""
        specs: dict[str, list[PluginSpec]] = {}
        for ep in self.entry_points():
            try:
                spec = self.inspect(ep)
            except PluginError as e:
                self._fail(ep.name, e)
                continue
            specs.setdefault(spec.import_name, []).append(spec)
        valid = {}
        for import_name, candidates in specs.items():
            if len(candidates) == 1:
                valid[import_name] = candidates[0]
                continue
            entries = ", ".join(spec.entry for spec in candidates)
            reason = f"duplicate import name {import_name!r}: {entries}"
            self._fail(import_name, self._error(candidates[0].entry, reason))
        return valid

    def inspect(self, ep: importlib.metadata.EntryPoint) -> PluginSpec:
        """Import one entry point's module and check it (``PluginError`` if unusable)."""
        entry = f"{ep.name} = {ep.value}"
        try:
            module = importlib.import_module(ep.value)
        except Exception as e:
            log.debug("import of plugin %s failed", entry, exc_info=True)
            raise self._error(entry, f"import failed: {type(e).__name__}: {e}") from e
        raw = getattr(module, "PLUGIN_INFO", None)
        if not isinstance(raw, dict):
            raise self._error(entry, f"module {module.__name__} has no PLUGIN_INFO dict")
        info = self.validate_info(entry, raw)
        main = getattr(module, info["main"], None)
        if not isinstance(main, type):
            raise self._error(entry, f"main {info['main']!r} is not a class of {module.__name__}")
        self.validate_main(entry, main, info)
        return PluginSpec(ep, module, info, main)

    def validate_info(self, entry: str, raw: dict[str, Any]) -> dict[str, Any]:
        """PLUGIN_INFO with defaults, or ``PluginError`` naming the bad key."""
        missing = [key for key in REQUIRED_KEYS if key not in raw]
        if missing:
            raise self._error(entry, f"PLUGIN_INFO lacks {', '.join(map(repr, missing))}")
        info = {**DEFAULTS, **raw}
        for key in (*REQUIRED_KEYS, "handler", "description"):
            if not isinstance(info[key], str):
                raise self._error(entry, f"PLUGIN_INFO[{key!r}] must be str: {info[key]!r}")
        for key in LIST_KEYS:
            value = info[key]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise self._error(entry, f"PLUGIN_INFO[{key!r}] must be a list of str: {value!r}")
            info[key] = list(value)
        if not info["import_name"].strip():
            raise self._error(entry, "PLUGIN_INFO['import_name'] is empty")
        if info["handler"] not in ("yes", "no"):
            reason = f"PLUGIN_INFO['handler'] must be yes or no: {info['handler']!r}"
            raise self._error(entry, reason)
        return info

    def validate_main(self, entry: str, main: type, info: dict[str, Any]) -> None:
        """Check the main class against the interfaces and the hooks' signatures."""
        interface = IPluginWithHandler if info["handler"] == "yes" else IPlugin
        try:
            verifyClass(interface, main, tentative=True)
        except Invalid as e:
            raise self._error(entry, f"main class {main.__name__}: {e}") from None
        checks = [("constructor", main, 1)]  # main(host)
        for hook, arity in PLUGIN_HOOKS.items():
            if hasattr(main, hook):
                checks.append((f"{hook} hook", getattr(main, hook), arity + 1))  # + self
        for what, function, arity in checks:
            if not callable(function) or not _accepts(function, arity):
                expected = "(host)" if what == "constructor" else f"with {arity - 1} argument(s)"
                raise self._error(
                    entry, f"main class {main.__name__}: {what} cannot be called {expected}"
                )

    # Ordering

    def order(self, specs: dict[str, PluginSpec]) -> list[PluginSpec]:
        """The plugins dependencies first; those with missing/cyclic dependencies dropped."""
        ordered: list[PluginSpec] = []
        state: dict[str, str] = {}  # import name -> "visiting" | "done" | "failed"
        stack: list[str] = []

        def visit(name: str) -> bool:
            if state.get(name) in ("done", "failed"):
                return state[name] == "done"
            spec = specs[name]
            state[name] = "visiting"
            stack.append(name)
            try:
                for dep in spec.dependencies:
                    if state.get(dep) == "visiting":
                        self._cycle(specs, stack[stack.index(dep) :] + [dep], state)
                    elif dep not in specs:
                        self._fail(name, self._error(spec.entry, self._unavailable(dep)))
                    elif not visit(dep):
                        self._fail(name, self._error(spec.entry, f"dependency {dep!r} failed"))
                    if name in self.errors:
                        state[name] = "failed"
                        return False
                for rec in spec.recommendations:
                    if rec in specs and state.get(rec) != "visiting":
                        visit(rec)  # loaded first when it can be; its failure is not ours
            finally:
                stack.pop()
            state[name] = "done"
            ordered.append(spec)
            return True

        for name in sorted(specs):
            visit(name)
        return ordered

    def _cycle(self, specs: dict[str, PluginSpec], cycle: list[str], state: dict[str, str]) -> None:
        path = " -> ".join(cycle)
        for member in cycle[:-1]:
            self._fail(member, self._error(specs[member].entry, f"dependency cycle: {path}"))
            state[member] = "failed"

    def _unavailable(self, dep: str) -> str:
        if dep in self.errors:
            return f"dependency {dep!r} failed ({self.errors[dep].reason})"
        return f"missing dependency {dep!r} (no plugin has this import name)"

    # Loading

    def load(self, host: Any) -> dict[str, Any]:
        """Discover, order and instantiate the plugins into ``host.plugins``; return it."""
        for spec in self.order(self.discover()):
            failed = [dep for dep in spec.dependencies if dep not in host.plugins]
            if failed:
                reason = self._unavailable(failed[0])
                self._fail(spec.import_name, self._error(spec.entry, reason))
                continue
            schema_problem = self._schema_problem(spec)
            if schema_problem:
                self._fail(spec.import_name, self._error(spec.entry, schema_problem))
                continue
            try:
                instance = spec.main(host)
            except Exception as e:
                log.debug("plugin %s failed to start", spec.entry, exc_info=True)
                reason = f"{spec.main.__name__}(host) raised {type(e).__name__}: {e}"
                self._fail(spec.import_name, self._error(spec.entry, reason))
                continue
            host.plugins[spec.import_name] = instance
            self.loaded[spec.import_name] = spec
            log.info("plugin %s loaded (%s)", spec.import_name, spec.info["name"])
        return host.plugins

    def _schema_problem(self, spec: PluginSpec) -> str | None:
        """Why the tables ``spec`` needs are not ready (None: they are)."""
        dist = getattr(spec.entry_point, "dist", None)
        own = [
            name
            for name, state in self.schema_states.items()
            if dist is not None and state.distribution == dist.name
        ]
        for name in [*spec.info["schemas"], *own]:
            state = self.schema_states.get(name)
            if state is None or state.action == "not installed":
                return f"schema {name!r} (PLUGIN_INFO['schemas']) is not installed"
            if not state.ready:
                return f"its schema {name!r} is not ready: {state.error}"
        return None

    def _error(self, entry: str, reason: str) -> PluginError:
        return PluginError(self.group, entry, reason)

    def _fail(self, key: str, error: PluginError) -> None:
        if key in self.errors:  # the first reason is the real one
            return
        self.errors[key] = error
        log.error("%s; skipped", error)


def _accepts(function: Any, count: int) -> bool:
    """True when ``function`` can be called with ``count`` positional arguments."""
    try:
        inspect.signature(function).bind(*range(count))
    except (TypeError, ValueError):
        return False
    return True
