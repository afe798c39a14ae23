"""Parts of the ``PUBSUB_CACHE`` plugin (``plugin_pubsub_cache``, which wires them).

- :mod:`.settings`: the ``[pubsub_cache]`` configuration, parsed once;
- :mod:`.keys`: ``NodeKey`` (profile, service, node) and profile look-ups;
- :mod:`.analysers`: analyser registration, validation and node matching;
  :mod:`.analysis`: what a node holds (asks the service, applies the analysers);
- :mod:`.lease`: owner tokens, and ``SyncLease``: claims, renews and releases the
  synchronisation of a node across processes sharing the database;
- :mod:`.sync`: synchronisation tasks (deadline, retries, progress) and RSM paging;
  :mod:`.runner`: one synchronisation of a node (subscribe, page, complete);
  :mod:`.recovery`: synchronisations interrupted (crash, lost connection) and resumed;
- :mod:`.writes`: items parsed and written, pubsub events applied in order;
- :mod:`.read_path`: the ``XEP-0060_getItems`` trigger and answers from the cache
  (the request comes checked, as a value: :mod:`sat_storage.plugins.pubsub_items`);
- :mod:`.admin`: purge, reset and search.

:mod:`.settings`, :mod:`.keys`, :mod:`.analysers` and :mod:`.sync` are
independent of the network and of the database, so they are tested on their own.
The other parts take their collaborators (storage, clock, locks, other parts) in
their constructor.
"""

#: Name of the plugin's logger: the parts log under it (``<LOGGER>.<part>``), so that a
#: logging configuration of ``sat_storage.plugins.plugin_pubsub_cache`` covers them all.
LOGGER = "sat_storage.plugins.plugin_pubsub_cache"
