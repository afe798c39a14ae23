"""IStorage and IPubsubCache: provided (verifyObject), and Libervia's signatures pinned.

The signatures below are DESIGN §5's, copied as it writes them: the interfaces must
declare exactly them, and the implementations must take those parameters, in that
order, with those defaults (Buildbot's ``assertArgSpecMatches`` idea); an
implementation may only add optional parameters after them.
"""

from __future__ import annotations

import ast
import inspect
import re
from typing import Any

from sat_storage.plugins.plugin_pubsub_cache import PubsubCache
from twisted.trial.unittest import TestCase
from zope.interface import Interface
from zope.interface.verify import verifyClass, verifyObject

from sat_storage import Storage
from sat_storage.interfaces import IPubsubCache, IStorage
from twisted_tests.db import make_storage
from twisted_tests.pubsub_cache.harness import make_host

#: DESIGN §5 "Signatures" (and the two of its "Data shapes"), as written there (two
#: lines of it split here, to fit in 100 columns)
DESIGN_SIGNATURES = """
create_profile(name, component_ep=None); delete_profile(name)
set_gen_param(category, name, value); set_ind_param(category, name, value, profile)
load_gen_params(params); load_ind_params(params, profile)
get_ind_param(category, name, profile); get_ind_param_values(category, name)
get_privates(namespace, keys=None, binary=False, profile=None)
set_private_value(namespace, key, value, binary=False, profile=None)
del_private_value(namespace, key, binary=False, profile=None)
del_private_namespace(namespace, binary=False, profile=None)
set_pubsub_node(client, service, name, analyser=None, type_=None, subtype=None, subscribed=False)
get_pubsub_node(client, service, name, with_items=False, with_subscriptions=False, create=False,
                create_kwargs=None)
update_pubsub_node_sync_state(node, state)
delete_pubsub_node(profiles, services, names)
cache_pubsub_items(client, node, items, parsed_items=None)
delete_pubsub_items(node, items_names=None)
purge_pubsub_items(services=None, names=None, types=None, subtypes=None, profiles=None,
                   created_before=None, updated_before=None)
search_pubsub_items(query)
get_items(node, max_items=None, item_ids=None, before=None, after=None, from_index=None,
  order_by=None, desc=True, force_rsm=False)
history_get(from_jid, to_jid, limit=None, between=True, filters=None, profile=None)
"""
#: DESIGN §5 pubsub cache names (Libervia's); their signatures are Libervia's plugin's
CACHE_NAMES = (
    "register_analyser analyse_node cache_items cache_node get_items_from_cache "
    "on_items_event on_delete_event on_purge_event synchronise purge reset search "
    "serialisable_search"
).split()
#: DESIGN §5 storage names
STORAGE_NAMES = (
    "initialise create_profile delete_profile get_profiles_list has_profile "
    "profile_is_component get_entry_point load_gen_params load_ind_params get_ind_param "
    "get_ind_param_values set_gen_param set_ind_param add_to_history history_get "
    "get_privates set_private_value del_private_value del_private_namespace get_files "
    "set_file file_get_used_space file_delete file_update get_pubsub_node set_pubsub_node "
    "update_pubsub_node_sync_state delete_pubsub_node cache_pubsub_items "
    "delete_pubsub_items purge_pubsub_items get_items search_pubsub_items get add delete"
).split()

Params = list[tuple[str, Any]]  # (name, default or NO_DEFAULT)
NO_DEFAULT = "<required>"


def design_signatures() -> dict[str, Params]:
    """name -> parameters of every signature of :data:`DESIGN_SIGNATURES`."""
    signatures = {}
    for match in re.finditer(r"(\w+)\(([^)]*)\)", DESIGN_SIGNATURES):
        source = f"def {match.group(1)}({' '.join(match.group(2).split())}): pass"
        function = ast.parse(source).body[0]
        assert isinstance(function, ast.FunctionDef)
        args = function.args
        defaults = [NO_DEFAULT] * (len(args.args) - len(args.defaults))
        defaults += [ast.literal_eval(d) for d in args.defaults]
        signatures[function.name] = list(zip([a.arg for a in args.args], defaults, strict=True))
    return signatures


def interface_params(interface: type[Interface], name: str) -> Params:
    """Parameters of ``interface``'s method ``name``."""
    info = interface[name].getSignatureInfo()
    optional = info["optional"]
    return [(p, optional.get(p, NO_DEFAULT)) for p in info["positional"]]


def implementation_params(cls: type, name: str) -> tuple[Params, list[inspect.Parameter]]:
    """(positional parameters without self, the other parameters) of ``cls.name``."""
    parameters = list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
    positional = [
        (p.name, NO_DEFAULT if p.default is p.empty else p.default)
        for p in parameters
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    others = [p for p in parameters if p.kind is not p.POSITIONAL_OR_KEYWORD]
    return positional, others


class SignatureTests(TestCase):
    def assert_matches(self, cls: type, interface: type[Interface], name: str) -> None:
        """``cls.name`` takes the interface's parameters first, then only optional ones."""
        expected = interface_params(interface, name)
        positional, others = implementation_params(cls, name)
        self.assertEqual(positional[: len(expected)], expected, f"{cls.__name__}.{name}")
        for extra_name, default in positional[len(expected) :]:
            self.assertNotEqual(default, NO_DEFAULT, f"{cls.__name__}.{name}({extra_name})")
        for parameter in others:
            self.assertIn(parameter.kind, (parameter.KEYWORD_ONLY,), f"{cls.__name__}.{name}")
            self.assertIsNot(parameter.default, parameter.empty, f"{cls.__name__}.{name}")

    def test_storage_interface_is_design(self) -> None:
        """IStorage declares every DESIGN §5 storage name, with §5's signatures."""
        self.assertEqual(sorted(set(STORAGE_NAMES) - set(IStorage.names())), [])
        for name, params in design_signatures().items():
            self.assertEqual(interface_params(IStorage, name), params, name)

    def test_cache_interface_is_design(self) -> None:
        """IPubsubCache declares exactly the DESIGN §5 pubsub cache names."""
        self.assertEqual(sorted(IPubsubCache.names()), sorted(CACHE_NAMES))

    def test_storage_signatures(self) -> None:
        """Storage's methods take IStorage's parameters (names, order, defaults)."""
        for name in IStorage.names():
            self.assert_matches(Storage, IStorage, name)

    def test_cache_signatures(self) -> None:
        """PubsubCache's methods take IPubsubCache's parameters (Libervia's)."""
        for name in IPubsubCache.names():
            self.assert_matches(PubsubCache, IPubsubCache, name)

    def test_classes_declare(self) -> None:
        """Storage and PubsubCache are declared implementers (verifyClass)."""
        self.assertTrue(verifyClass(IStorage, Storage))
        self.assertTrue(verifyClass(IPubsubCache, PubsubCache))


class ProvidedTests(TestCase):
    async def test_storage_provides(self) -> None:
        """An initialised storage provides IStorage (verifyObject)."""
        storage = await make_storage(self)
        self.assertTrue(verifyObject(IStorage, storage))

    async def test_cache_provides(self) -> None:
        """The loaded PUBSUB_CACHE plugin provides IPubsubCache (verifyObject)."""
        host = await make_host(self)
        self.assertTrue(verifyObject(IPubsubCache, host.plugins["PUBSUB_CACHE"]))
