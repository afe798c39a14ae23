"""Alembic environment: in-process (the storage passes a connection) or from the CLI.

From the command line (``alembic -c migrations/alembic.ini …``), the database URL is
resolved as the storage does: ``$SAT_STORAGE_DB_URL``, the config file, then the
SQLite default.
"""

from alembic import context

from sat_storage import engines
from sat_storage.config import resolve_db_url
from sat_storage.migration import configure_context, migrating
from sat_storage.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    configure_context(context, connection, Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
elif context.is_offline_mode():
    context.configure(
        url=resolve_db_url(config.get_main_option("sqlalchemy.url") or None),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = engines.create_engine(resolve_db_url(config.get_main_option("sqlalchemy.url") or None))
    try:
        # The runner's frame: one transaction, SQLite foreign keys off and checked.
        with engine.connect() as conn, migrating(conn):
            configure_context(context, conn, Base.metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
