"""The storage object: every table family behind one Deferred-returning API."""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from sat_storage import branches, engines, libervia, migration, schemas
from sat_storage.config import STORAGE_SECTION, Config, resolve_db_url
from sat_storage.gateway import Gateway, GatewayClosed
from sat_storage.interfaces import IStorage
from sat_storage.migration import SchemaState
from sat_storage.storage.files import FilesStore
from sat_storage.storage.generic import GenericStore
from sat_storage.storage.history import HistoryStore
from sat_storage.storage.items_query import ItemsQuery
from sat_storage.storage.page_cache import PageCache
from sat_storage.storage.page_cache import read_cache_items as _read_cache_items
from sat_storage.storage.params import ParamsStore
from sat_storage.storage.plugin_tables import PluginTablesStore
from sat_storage.storage.private import PrivateStore
from sat_storage.storage.profiles import ProfilesStore
from sat_storage.storage.pubsub_items import PubsubItemsStore
from sat_storage.storage.pubsub_leases import PubsubLeasesStore
from sat_storage.storage.pubsub_nodes import PubsubNodesStore
from sat_storage.storage.pubsub_paging import PubsubPagingStore
from sat_storage.storage.pubsub_stats import PubsubStatsStore
from sat_storage.storage.read_cache import SyncedReadsStore
from sat_storage.storage.search import SearchStore
from sat_storage.storage.sort_keys import SortKeyStore

log = logging.getLogger(__name__)

__all__ = ["GatewayClosed", "ItemsQuery", "Storage"]


@implementer(IStorage)
class Storage(
    ProfilesStore,
    ParamsStore,
    PrivateStore,
    HistoryStore,
    FilesStore,
    SyncedReadsStore,
    PubsubPagingStore,
    PubsubNodesStore,
    PubsubLeasesStore,
    PubsubItemsStore,
    PubsubStatsStore,
    SearchStore,
    SortKeyStore,
    GenericStore,
    PluginTablesStore,
):
    """All persistent data of the backend, in a SQLAlchemy database.

    ``Storage(db_url)``: the URL is the argument, else ``$SAT_STORAGE_DB_URL``, else
    the config file's ``[storage] db_url``, else SQLite in the XDG data directory.
    ``sqlite_synchronous`` (else ``config``'s ``[storage] sqlite_synchronous``, else
    ``NORMAL``): SQLite's durability, see :func:`sat_storage.engines.sqlite_synchronous`.
    ``read_cache_items`` (else ``config``'s ``[storage] read_cache_items``, else 2000):
    items of the read cache's pages kept in memory, 0 = none (:mod:`.read_cache`).
    Call :meth:`initialise` before use and :meth:`close` at the end. ``schema_path``:
    directories searched for plugin schema distributions (default ``sys.path``).
    """

    def __init__(
        self,
        db_url: str | None = None,
        config: Config | None = None,
        reactor: Any = None,
        *,
        schema_path: list[str] | None = None,
        sqlite_synchronous: str | None = None,
        read_cache_items: int | None = None,
    ) -> None:
        self.schema_path = schema_path
        self.plugin_schemas = {}
        self.db_url = engines.url_text(engines.parse_url(resolve_db_url(db_url, config)))
        if sqlite_synchronous is None and config is not None:
            sqlite_synchronous = config.get(STORAGE_SECTION, "sqlite_synchronous")
        self.sqlite_synchronous = engines.sqlite_synchronous(sqlite_synchronous)
        if read_cache_items is None and config is not None:
            read_cache_items = config.get(STORAGE_SECTION, "read_cache_items")  # type: ignore[assignment]
        self.read_cache = PageCache(_read_cache_items(read_cache_items))
        self.reactor = reactor
        self.profiles = {}
        self.components = {}
        self.schema_state: SchemaState | None = None
        #: what the adoption of a Libervia 0.9 file did at initialise() (None: not one)
        self.adoption: libervia.Adoption | None = None
        self.initialised: defer.Deferred[None] = defer.Deferred()

    def __repr__(self) -> str:
        return f"<Storage {engines.safe_url(self.db_url)}>"

    @defer.inlineCallbacks
    def initialise(self) -> defer.Deferred[None]:
        """Open the database, create/upgrade its schema (or refuse it), load profiles.

        A Libervia 0.9 SQLite file is backed up and adopted first (:mod:`sat_storage.libervia`).
        Then the core (refused: the storage does not start), then every installed
        plugin schema, each on its own: one that fails is rolled back and reported in
        :attr:`plugin_schemas` (its plugins are not loaded by the host), the others go on.
        """
        if getattr(self, "db", None) is not None and not self.db.closed:
            raise RuntimeError(f"{self!r} is already initialised")
        discovery = schemas.discover(self.schema_path)
        self.adoption = yield defer.ensureDeferred(libervia.adopt(self.db_url, self.reactor))
        engine = engines.create_engine(self.db_url, synchronous=self.sqlite_synchronous)
        self.db = Gateway(engine, self.reactor)
        try:
            self.schema_state = yield self.db.run_with_connection(migration.initialise_schema)
            self.plugin_schemas = yield self.db.run_with_connection(
                branches.initialise_plugin_schemas, discovery
            )
            self.profiles, self.components = yield self.db.run(self.load_profiles_txn)
            yield self.load_sort_keys()
            yield self.db.watch_changes()  # SQLite: hits told current without a query
        except BaseException:
            yield self.db.close()
            raise
        log.info("storage ready: %s (%s)", engines.safe_url(self.db_url), self.schema_state)
        if not self.initialised.called:
            self.initialised.callback(None)

    def close(self) -> defer.Deferred[None]:
        """Wait for pending work, stop the database threads and dispose the engine."""
        db = getattr(self, "db", None)
        if db is None:
            return defer.succeed(None)
        return db.close()

    def keep_open_at_shutdown(self) -> None:
        """The reactor's shutdown will not close the (initialised) storage by itself:
        its owner closes it, after the shutdown work that still uses it."""
        self.db.keep_open_at_shutdown()

    @property
    def closed(self) -> bool:
        """True once closed (or never initialised)."""
        db = getattr(self, "db", None)
        return db is None or db.closed
