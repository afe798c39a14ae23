"""Throwaway PostgreSQL server and per-test databases for the trial suite.

The server is Debian's (package ``postgresql``), run from a fresh temporary
directory on 127.0.0.1 with settings that are only safe for data nobody keeps.
When ``SAT_STORAGE_TEST_PG_URL`` is set (``.ci/run`` starts a server and sets
it), the tests use that server; otherwise the first test that asks starts one
for this process, and it is stopped when the process exits.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

ENV_URL = "SAT_STORAGE_TEST_PG_URL"

# Speed over durability: a crash of the server may lose or corrupt the cluster.
# Keep in step with the list in .ci/postgresql.sh.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",  # required by wal_level = minimal
    "autovacuum": "off",  # no worker ever holds a template database open
    "jit": "off",
    "timezone": "'UTC'",
}


def _bindir() -> str:
    """$SAT_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (Debian)."""
    if os.environ.get("SAT_PG_BINDIR"):
        return os.environ["SAT_PG_BINDIR"]
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        raise RuntimeError(
            "no PostgreSQL server: apt-get install --no-install-recommends postgresql"
        )
    newest = max(found, key=lambda p: [int(n) for n in p.split("/")[4].split(".")])
    return os.path.dirname(newest)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgreSQLServer:
    directory: str  # holds data/, server.log and the Unix socket
    port: int
    bindir: str

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database, as the superuser."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, program: str, *args: str) -> None:
        """Run one of the server's programs in its directory, as its owner."""
        owner = {}
        if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root
            owner = {"user": "postgres", "group": "postgres", "extra_groups": []}
        subprocess.run(
            [os.path.join(self.bindir, program), *args],
            cwd=self.directory,  # the owner may not be allowed into our cwd
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            check=True,
            **owner,
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        try:
            if os.path.exists(os.path.join(self.directory, "data", "postmaster.pid")):
                self.run("pg_ctl", "-D", "data", "-m", "fast", "-w", "-s", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_postgresql(port: int | None = None) -> PostgreSQLServer:
    """Create a cluster in a new temporary directory and start it on 127.0.0.1.

    The directory is made under $SAT_PG_TMPDIR, else the usual temporary one;
    the port is a free one unless given.
    """
    directory = tempfile.mkdtemp(prefix="sat-pg.", dir=os.environ.get("SAT_PG_TMPDIR"))
    server = PostgreSQLServer(directory, port or _free_port(), _bindir())
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    settings = dict(
        FAST_SETTINGS,
        listen_addresses="'127.0.0.1'",
        port=str(server.port),
        unix_socket_directories=f"'{directory}'",
    )
    try:
        server.run(
            "initdb",
            *("-D", "data", "-U", "postgres", "-A", "trust", "-E", "UTF8"),
            *("--locale=C.UTF-8", "-N", "--no-instructions"),
        )
        with open(os.path.join(directory, "data", "postgresql.conf"), "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        server.run("pg_ctl", "-D", "data", "-l", "server.log", "-w", "-t", "30", "-s", "start")
    except subprocess.CalledProcessError as e:
        log = ""
        if os.path.exists(os.path.join(directory, "server.log")):
            with open(os.path.join(directory, "server.log")) as f:
                log = f.read()[-2000:]
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start ({e}):\n{log}") from None
    return server


_server: PostgreSQLServer | None = None
_templates: dict[Callable[[str], None], str] = {}


def server_url() -> str:
    """URL of the test server: $SAT_STORAGE_TEST_PG_URL, else one started now."""
    global _server
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    if _server is None:
        _server = start_postgresql()
        atexit.register(_server.stop)
    return _server.url


def _database_url(name: str) -> str:
    return make_url(server_url()).set(database=name).render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    # CREATE/DROP DATABASE refuse to run inside a transaction block.
    engine = create_engine(server_url(), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def fresh_database(testcase, migrate: Callable[[str], None]) -> str:
    """URL of a new database for one test: a copy of a migrated template.

    ``migrate(url)`` builds the schema once per process and must close every
    connection it opened (``engine.dispose()``): PostgreSQL refuses to copy a
    database that has other sessions. The copy is dropped at the test's cleanup.
    """
    if migrate not in _templates:
        template = f"sat_template_{uuid.uuid4().hex[:12]}"
        _admin(f"CREATE DATABASE {template}")
        atexit.register(_admin, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
        migrate(_database_url(template))
        _templates[migrate] = template
    name = f"sat_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {_templates[migrate]} STRATEGY FILE_COPY")
    testcase.addCleanup(_admin, f"DROP DATABASE {name} WITH (FORCE)")
    return _database_url(name)
