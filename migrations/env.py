"""Alembic environment: in-process (the runner passes a connection) or from the CLI.

From the command line (``alembic -c migrations/alembic.ini …``), the database URL is
resolved as the storage does: ``$SAT_STORAGE_DB_URL``, the config file, then the
SQLite default; logging follows the ini file's sections (Alembic's INFO lines show
each step). The branch is the core, unless the configuration names a plugin schema
(``sat_storage_schema = NAME`` in its ``[alembic]`` section, see "Giving your plugin
its own tables" in doc/storage.rst): then only that schema's models are compared
and its own version table is used.
"""

import logging
import logging.config

from alembic import context
from sqlalchemy import Connection

from sat_storage import branches, engines, migration, schemas
from sat_storage.config import resolve_db_url
from sat_storage.models import Base

config = context.config
connection = config.attributes.get("connection")
schema = config.attributes.get("schema")
if connection is None:
    if config.config_file_name and config.cmd_opts is not None:  # the alembic command
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    log = logging.getLogger("sat_storage.env")
    name = config.get_main_option("sat_storage_schema")
    found = schemas.discover()
    if name:
        schema = schemas.installed(name)
    else:
        migration.ignore_tables_of(found.schemas.values())
    log.info("branch %s: %s", name or schemas.CORE, migration.models_description(schema))


def run(conn: Connection) -> None:
    if schema is None:
        migration.configure_context(context, conn, Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    else:
        branches.environment(context, conn, schema)


if connection is not None:
    run(connection)
elif context.is_offline_mode():
    context.configure(
        url=resolve_db_url(config.get_main_option("sqlalchemy.url") or None),
        target_metadata=Base.metadata if schema is None else schema.metadata,
        literal_binds=True,
        render_as_batch=True,
        version_table=branches.version_table(schema.name if schema else schemas.CORE),
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = engines.create_engine(resolve_db_url(config.get_main_option("sqlalchemy.url") or None))
    try:
        # The runner's frame: one transaction, SQLite foreign keys off and checked.
        with engine.connect() as conn, migration.migrating(conn):
            run(conn)
    finally:
        engine.dispose()
