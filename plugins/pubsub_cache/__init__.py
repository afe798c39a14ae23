"""Building blocks of the ``PUBSUB_CACHE`` plugin (``plugin_pubsub_cache``).

- :mod:`.analysers`: analyser registration, validation and node matching;
- :mod:`.flight`: one operation per key at a time (single flight, per-key locks);
- :mod:`.sync`: synchronisation tasks (deadline, retries, progress) and RSM paging;
- :mod:`.lease`: owner tokens of cache instances, and whether an owner still runs
  (synchronisations owned across processes through leases in the storage);
- :mod:`.reads`: XEP-0059 requests mapped onto the storage's ``get_items``.

Everything here is independent of the network and of the database, so it is tested
on its own; the plugin module wires it to the host.
"""
