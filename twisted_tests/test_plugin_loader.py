"""Plugin discovery through entry points, with fake distributions on sys.path."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from sat_storage.plugin_loader import GROUP, PluginError, PluginLoader
from twisted_tests.fake_plugins import fake_distribution, plugin_source

LOGGER = "sat_storage.plugin_loader"


class FakeHost:
    """The part of a host the loader uses, plus the order plugins were created in."""

    def __init__(self) -> None:
        self.plugins: dict[str, Any] = {}
        self.load_order: list[str] = []


class LoaderTests(TestCase):
    def load(self, plugins: dict[str, str], **kwargs: Any) -> tuple[PluginLoader, FakeHost]:
        """Install ``plugins`` as a fake distribution and load only it."""
        path = fake_distribution(self, plugins, **kwargs)
        loader = PluginLoader(group=kwargs.get("group", GROUP), path=[path])
        host = FakeHost()
        loader.load(host)
        return loader, host

    def test_default_group(self) -> None:
        """Plugins are looked up in the sat.plugins group by default."""
        self.assertEqual(PluginLoader().group, "sat.plugins")

    def test_discovers_and_instantiates(self) -> None:
        """Each entry point's main class is instantiated with the host, by import name."""
        loader, host = self.load({"ONE": plugin_source("ONE")})
        self.assertEqual(list(host.plugins), ["ONE"])
        self.assertIs(host.plugins["ONE"].host, host)
        self.assertEqual(loader.errors, {})

    def test_dependencies_first(self) -> None:
        """Dependencies are instantiated before their dependants, whatever the names."""
        _, host = self.load(
            {
                "A": plugin_source("A", ["M"]),
                "M": plugin_source("M", ["Z"]),
                "Z": plugin_source("Z"),
            }
        )
        self.assertEqual(host.load_order, ["Z", "M", "A"])

    def test_recommendations_first(self) -> None:
        """An available recommendation is instantiated before the plugin recommending it."""
        _, host = self.load({"A": plugin_source("A", [], ["B"]), "B": plugin_source("B")})
        self.assertEqual(host.load_order, ["B", "A"])

    def test_missing_recommendation_ignored(self) -> None:
        """A recommendation nobody provides does not stop the plugin."""
        loader, host = self.load({"A": plugin_source("A", [], ["NOPE"])})
        self.assertEqual(host.load_order, ["A"])
        self.assertEqual(loader.errors, {})

    def test_recommendation_cycle_tolerated(self) -> None:
        """Plugins recommending each other both load."""
        _, host = self.load(
            {"A": plugin_source("A", [], ["B"]), "B": plugin_source("B", [], ["A"])}
        )
        self.assertEqual(sorted(host.load_order), ["A", "B"])

    def test_missing_dependency(self) -> None:
        """A plugin whose dependency is absent is skipped, naming it; the others load."""
        with self.assertLogs(LOGGER, "ERROR"):
            loader, host = self.load(
                {"A": plugin_source("A", ["NOPE"]), "B": plugin_source("B")}
            )
        self.assertEqual(host.load_order, ["B"])
        self.assertIn("missing dependency 'NOPE'", str(loader.errors["A"]))

    def test_cycle(self) -> None:
        """Plugins in a dependency cycle and their dependants are skipped; others load."""
        with self.assertLogs(LOGGER, "ERROR"):
            loader, host = self.load(
                {
                    "A": plugin_source("A", ["B"]),
                    "B": plugin_source("B", ["A"]),
                    "C": plugin_source("C", ["A"]),
                    "D": plugin_source("D"),
                }
            )
        self.assertEqual(host.load_order, ["D"])
        self.assertIn("dependency cycle: A -> B -> A", str(loader.errors["A"]))
        self.assertIn("dependency cycle: A -> B -> A", str(loader.errors["B"]))
        self.assertIn("dependency 'A' failed", str(loader.errors["C"]))

    def test_self_dependency(self) -> None:
        """A plugin depending on itself is a cycle."""
        with self.assertLogs(LOGGER, "ERROR"):
            loader, host = self.load({"A": plugin_source("A", ["A"])})
        self.assertIn("dependency cycle: A -> A", str(loader.errors["A"]))

    def test_broken_import_isolated(self) -> None:
        """A module failing to import is skipped with its dependants; others load."""
        with self.assertLogs(LOGGER, "ERROR"):
            loader, host = self.load(
                {
                    "BROKEN": "import module_that_does_not_exist_anywhere\n",
                    "USER": plugin_source("USER", ["BROKEN"]),
                    "OK": plugin_source("OK"),
                }
            )
        self.assertEqual(host.load_order, ["OK"])
        self.assertIn("import failed: ModuleNotFoundError", str(loader.errors["BROKEN"]))
        self.assertIn("dependency 'BROKEN' failed (import failed", str(loader.errors["USER"]))

    def test_duplicate_import_name(self) -> None:
        """Two entries claiming one import name are both refused, naming both entries."""
        with self.assertLogs(LOGGER, "ERROR"):
            loader, host = self.load(
                {"FIRST": plugin_source("SAME"), "SECOND": plugin_source("SAME")}
            )
        self.assertEqual(host.plugins, {})
        message = str(loader.errors["SAME"])
        self.assertIn("duplicate import name 'SAME'", message)
        self.assertIn("FIRST = ", message)
        self.assertIn("SECOND = ", message)

    def test_init_raises(self) -> None:
        """A plugin raising in __init__ is skipped with its dependants; others load."""
        failing = plugin_source("BAD").replace(
            "host.load_order.append('BAD')", "raise RuntimeError('no way')"
        )
        with self.assertLogs(LOGGER, "ERROR"):
            loader, host = self.load(
                {"BAD": failing, "USER": plugin_source("USER", ["BAD"]), "OK": plugin_source("OK")}
            )
        self.assertEqual(host.load_order, ["OK"])
        self.assertIn("Main(host) raised RuntimeError: no way", str(loader.errors["BAD"]))
        self.assertIn("dependency 'BAD' failed", str(loader.errors["USER"]))

    def test_same_distribution_twice_on_path(self) -> None:
        """A distribution found twice on the path is loaded once, without a duplicate error."""
        path = fake_distribution(self, {"ONE": plugin_source("ONE")})
        loader = PluginLoader(path=[path, path])
        host = FakeHost()
        loader.load(host)
        self.assertEqual(host.load_order, ["ONE"])
        self.assertEqual(loader.errors, {})

    def test_other_group_ignored(self) -> None:
        """Entry points of another group are not plugins of this one."""
        path = fake_distribution(self, {"ONE": plugin_source("ONE")}, group="other.group")
        self.assertEqual(PluginLoader(path=[path]).entry_points(), [])


class ValidationTests(TestCase):
    def inspect(self, source: str) -> PluginError:
        """The error inspecting a one-plugin distribution gives."""
        path = fake_distribution(self, {"P": source})
        loader = PluginLoader(path=[path])
        (entry_point,) = loader.entry_points()
        with self.assertRaises(PluginError) as caught:
            loader.inspect(entry_point)
        return caught.exception

    def test_error_names_group_and_entry(self) -> None:
        """PluginError names the entry point group and the entry."""
        error = self.inspect("PLUGIN_INFO = {}\n")
        self.assertEqual(error.group, "sat.plugins")
        self.assertTrue(error.entry.startswith("P = fakeplugins_"))
        self.assertIn("(entry point group 'sat.plugins')", str(error))

    def test_no_plugin_info(self) -> None:
        """A module without PLUGIN_INFO is refused."""
        self.assertIn("has no PLUGIN_INFO dict", self.inspect("x = 1\n").reason)

    def test_missing_keys(self) -> None:
        """Missing required keys are listed."""
        error = self.inspect("PLUGIN_INFO = {'name': 'x', 'type': 'MISC'}\n")
        self.assertIn("PLUGIN_INFO lacks 'import_name', 'main'", error.reason)

    def test_wrong_type(self) -> None:
        """A dependencies value that is not a list of str is refused, naming the key."""
        source = plugin_source("P").replace('"dependencies": []', '"dependencies": "XEP-0060"')
        error = self.inspect(source)
        self.assertIn("PLUGIN_INFO['dependencies'] must be a list of str", error.reason)

    def test_bad_handler_flag(self) -> None:
        """handler must be yes or no."""
        error = self.inspect(plugin_source("P", handler="maybe"))
        self.assertIn("PLUGIN_INFO['handler'] must be yes or no", error.reason)

    def test_main_not_a_class(self) -> None:
        """main must name a class of the module."""
        error = self.inspect(plugin_source("P").replace('"main": "Main"', '"main": "Nope"'))
        self.assertIn("main 'Nope' is not a class", error.reason)

    def test_handler_without_get_handler(self) -> None:
        """handler = yes requires get_handler (checked with verifyClass)."""
        error = self.inspect(plugin_source("P", handler="yes"))
        self.assertIn("get_handler", error.reason)

    def test_handler_with_get_handler(self) -> None:
        """handler = yes with get_handler(client) passes validation."""
        source = plugin_source("P", handler="yes", body="def get_handler(self, client):\n    pass")
        path = fake_distribution(self, {"P": source})
        loader = PluginLoader(path=[path])
        (entry_point,) = loader.entry_points()
        self.assertTrue(loader.inspect(entry_point).has_handler)

    def test_bad_hook_signature(self) -> None:
        """A profile hook that cannot take the client is refused."""
        error = self.inspect(plugin_source("P", body="def profile_connected(self):\n    pass"))
        self.assertIn("profile_connected hook cannot be called with 1 argument", error.reason)

    def test_bad_constructor(self) -> None:
        """A main class that cannot be called with the host is refused."""
        source = plugin_source("P", body="def __init__(self, host, other):\n    pass")
        self.assertIn("constructor cannot be called (host)", self.inspect(source).reason)
