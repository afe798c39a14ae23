"""The ``sat-storage`` command line: database, profiles, pubsub cache and the host.

Nothing in the package imports this subpackage; it sits on top of the host and the
storage API (``sat_storage.cli.main:main`` is the console script).
"""
