"""Interfaces of the host, its plugins, the storage and the pubsub cache (zope.interface).

Plugin classes need not declare :class:`IPlugin` (Libervia's plugins do not): the
loader checks their shape with ``verifyClass(..., tentative=True)``. :class:`IStorage`
and :class:`IPubsubCache` pin the public names and signatures of DESIGN §5; ``Storage``
and ``PubsubCache`` declare them (``@implementer``), and the tests check both the
declarations (``verifyObject``) and Libervia's signatures.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

from sat_storage.models import FileType


class IPlugin(Interface):
    """Main class of a plugin (``PLUGIN_INFO["main"]``), instantiated once as ``main(host)``.

    Optional hooks, called by the host when present (each may return a Deferred or be
    a coroutine function): ``profile_connecting(client)`` (before the session is
    announced, once per connection request), ``profile_connected(client)`` (each time
    a session is ready: after connecting, and again after an automatic reconnection),
    ``profile_disconnected(client)`` (each time it ends: disconnection, failed
    connection, or connection lost; connected and disconnected alternate) and
    ``stop()`` (when the host stops).
    """


class IPluginWithHandler(IPlugin):
    """A plugin whose ``PLUGIN_INFO["handler"]`` is ``"yes"``."""

    def get_handler(client: object) -> object:  # noqa: N805  (zope interface style)
        """The wokkel ``XMPPHandler`` attached to ``client`` when it connects."""


#: The optional hooks of :class:`IPlugin` and how many arguments each takes.
PLUGIN_HOOKS = {
    "profile_connecting": 1,
    "profile_connected": 1,
    "profile_disconnected": 1,
    "stop": 0,
}


class IHost(Interface):
    """What plugins may rely on in the host (``sat_storage.host.Host`` provides it)."""

    memory = Attribute("``.storage`` (the Storage) and ``.config_get(section, name, default)``")
    trigger = Attribute("the TriggerManager")
    plugins = Attribute("loaded plugins by import name")

    def check_features(client: object, namespaces: object, service: object) -> object:  # noqa: N805
        """Deferred; fails with FeatureNotFound unless ``service`` has every namespace."""

    def get_client(profile: str) -> object:  # noqa: N805
        """The connected client of ``profile``."""


class IStorage(Interface):
    """The storage's public API (DESIGN §5: Libervia's names and signatures).

    ``sat_storage.Storage`` provides it. The methods that touch the database return
    a Deferred; look-ups answered from memory (``has_profile``,
    ``get_profiles_list``, ``profile_is_component``, ``get_entry_point``) return
    plain values.
    """

    def initialise() -> object:
        """Create, upgrade or refuse the database (DESIGN §4)."""

    def close() -> object:
        """Drain pending work, stop the threads, dispose of the engine."""

    def create_profile(name: object, component_ep: object = None) -> object:  # noqa: N805
        """Create a profile (a component's when ``component_ep``)."""

    def delete_profile(name: object) -> object:  # noqa: N805
        """Delete a profile and everything it owns."""

    def get_profiles_list() -> object:
        """Names of the profiles (a list, from memory)."""

    def has_profile(profile_name: object) -> object:  # noqa: N805
        """True when the profile exists (from memory)."""

    def profile_is_component(profile_name: object) -> object:  # noqa: N805
        """True when the profile is a component's (from memory)."""

    def get_entry_point(profile_name: object) -> object:  # noqa: N805
        """The component entry point of a profile (from memory)."""

    def load_gen_params(params: object) -> object:  # noqa: N805
        """Fill ``params`` with the general parameters, ``{(category, name): value}``."""

    def load_ind_params(params: object, profile: object) -> object:  # noqa: N805
        """Fill ``params`` with the parameters of ``profile``."""

    def get_ind_param(category: object, name: object, profile: object) -> object:  # noqa: N805
        """One parameter of ``profile`` (None when unset)."""

    def get_ind_param_values(category: object, name: object) -> object:  # noqa: N805
        """``{profile: value}`` of one parameter."""

    def set_gen_param(category: object, name: object, value: object) -> object:  # noqa: N805
        """Set a general parameter."""

    def set_ind_param(  # noqa: N805
        category: object,
        name: object,
        value: object,
        profile: object,
    ) -> object:
        """Set a parameter of ``profile``."""

    def add_to_history(data: object, profile: object) -> object:  # noqa: N805
        """Store one message (DESIGN §5 data shape)."""

    def history_get(  # noqa: N805
        from_jid: object,
        to_jid: object,
        limit: object = None,
        between: object = True,
        filters: object = None,
        profile: object = None,
    ) -> object:
        """The newest ``limit`` messages, oldest first, as tuples."""

    def get_privates(  # noqa: N805
        namespace: object,
        keys: object = None,
        binary: object = False,
        profile: object = None,
    ) -> object:
        """``{key: value}`` of a namespace (``profile`` None: general)."""

    def set_private_value(  # noqa: N805
        namespace: object,
        key: object,
        value: object,
        binary: object = False,
        profile: object = None,
    ) -> object:
        """Set one private value."""

    def del_private_value(  # noqa: N805
        namespace: object,
        key: object,
        binary: object = False,
        profile: object = None,
    ) -> object:
        """Delete one private value."""

    def del_private_namespace(  # noqa: N805
        namespace: object,
        binary: object = False,
        profile: object = None,
    ) -> object:
        """Delete the private values of a namespace."""

    def get_files(  # noqa: N805
        client: object,
        file_id: object = None,
        version: object = "",
        parent: object = None,
        type_: object = None,
        file_hash: object = None,
        hash_algo: object = None,
        name: object = None,
        namespace: object = None,
        mime_type: object = None,
        public_id: object = None,
        owner: object = None,
        access: object = None,
        projection: object = None,
        unique: object = False,
    ) -> object:
        """Files matching every filter given."""

    def set_file(  # noqa: N805
        client: object,
        name: object,
        file_id: object,
        version: object = "",
        parent: object = None,
        type_: object = FileType.file,
        file_hash: object = None,
        hash_algo: object = None,
        size: object = None,
        namespace: object = None,
        media_type: object = None,
        media_subtype: object = None,
        public_id: object = None,
        created: object = None,
        modified: object = None,
        owner: object = None,
        access: object = None,
        extra: object = None,
    ) -> object:
        """Record a file."""

    def file_get_used_space(client: object, owner: object) -> object:  # noqa: N805
        """Bytes used by ``owner``'s files."""

    def file_delete(file_id: object) -> object:  # noqa: N805
        """Delete a file's record."""

    def file_update(  # noqa: N805
        file_id: object,
        column: object,
        update_cb: object,
        version: object = "",
    ) -> object:
        """Update a JSON column of a file with ``update_cb`` (atomically)."""

    def get_pubsub_node(  # noqa: N805
        client: object,
        service: object,
        name: object,
        with_items: object = False,
        with_subscriptions: object = False,
        create: object = False,
        create_kwargs: object = None,
    ) -> object:
        """The cached node (None when unknown, unless ``create``)."""

    def set_pubsub_node(  # noqa: N805
        client: object,
        service: object,
        name: object,
        analyser: object = None,
        type_: object = None,
        subtype: object = None,
        subscribed: object = False,
    ) -> object:
        """Create or update a cached node."""

    def update_pubsub_node_sync_state(node: object, state: object) -> object:  # noqa: N805
        """Set a node's synchronisation state."""

    def delete_pubsub_node(  # noqa: N805
        profiles: object,
        services: object,
        names: object,
    ) -> object:
        """Delete the cached nodes matching (each a list, or None = no filter)."""

    def cache_pubsub_items(  # noqa: N805
        client: object,
        node: object,
        items: object,
        parsed_items: object = None,
    ) -> object:
        """Upsert ``<item/>`` elements (and their parsed data) in a node."""

    def delete_pubsub_items(node: object, items_names: object = None) -> object:  # noqa: N805
        """Delete items of a node (None: all)."""

    def purge_pubsub_items(  # noqa: N805
        services: object = None,
        names: object = None,
        types: object = None,
        subtypes: object = None,
        profiles: object = None,
        created_before: object = None,
        updated_before: object = None,
    ) -> object:
        """Delete cached items matching every filter."""

    def get_items(  # noqa: N805
        node: object,
        max_items: object = None,
        item_ids: object = None,
        before: object = None,
        after: object = None,
        from_index: object = None,
        order_by: object = None,
        desc: object = True,
        force_rsm: object = False,
    ) -> object:
        """A page of cached items and its RSM metadata: ``(items, metadata)``."""

    def search_pubsub_items(query: object) -> object:  # noqa: N805
        """Cached items matching a search query (a dict)."""

    def get(  # noqa: N805
        client: object,
        db_cls: object,
        db_id_col: object,
        id_value: object,
        joined_loads: object = None,
    ) -> object:
        """One row by id (generic)."""

    def add(db_obj: object) -> object:  # noqa: N805
        """Add a row (generic)."""

    def delete(db_obj: object, session_add: object = None) -> object:  # noqa: N805
        """Delete rows (generic)."""


class IPubsubCache(Interface):
    """The pubsub cache plugin (``host.plugins["PUBSUB_CACHE"]``, DESIGN §5 and §7).

    ``sat_storage.plugins.plugin_pubsub_cache.PubsubCache`` provides it; each method
    may return a Deferred or be a coroutine function.
    """

    def register_analyser(analyser: object) -> object:  # noqa: N805
        """Register a node analyser (a dict, DESIGN §7)."""

    def analyse_node(  # noqa: N805
        client: object,
        service: object,
        node: object,
        pubsub_node: object = None,
    ) -> object:
        """What a node holds, from the registered analysers."""

    def cache_items(client: object, pubsub_node: object, items: object) -> object:  # noqa: N805
        """Parse and store items of a cached node."""

    def cache_node(client: object, pubsub_node: object) -> object:  # noqa: N805
        """Synchronise a node in the background; Deferred of its final state."""

    def get_items_from_cache(  # noqa: N805
        client: object,
        node: object,
        max_items: object = None,
        item_ids: object = None,
        sub_id: object = None,
        rsm_request: object = None,
        extra: object = None,
    ) -> object:
        """Cached items, with the arguments of a XEP-0060 items request."""

    def on_items_event(client: object, event: object) -> object:  # noqa: N805
        """Apply an items event (new and retracted items)."""

    def on_delete_event(client: object, event: object) -> object:  # noqa: N805
        """Apply a node deletion event."""

    def on_purge_event(client: object, event: object) -> object:  # noqa: N805
        """Apply a node purge event."""

    def synchronise(  # noqa: N805
        client: object,
        service: object,
        node: object,
        resync: object = True,
    ) -> object:
        """Synchronise a node now; its final state."""

    def purge(purge_filters: object) -> object:  # noqa: N805
        """Remove cached items matching the filters; how many."""

    def reset() -> object:
        """Remove every cached node and item."""

    def search(query: object, all_profiles: object = False) -> object:  # noqa: N805
        """Cached items matching a search query."""

    def serialisable_search(query: object, all_profiles: object = False) -> object:  # noqa: N805
        """The search as JSON-serialisable dicts."""
