"""Plugin schema distributions for tests, installed as pip would (dist-info on sys.path).

:func:`install_example` installs the documented example plugin (``doc/example_plugin``,
the ``notes`` schema and the ``NOTES`` plugin), at revision 1 or 2;
:func:`install_table_schema` a generated one-table schema (optionally with a plugin,
and a migration that raises). Everything is undone at the test's cleanup.
"""

from __future__ import annotations

import configparser
import importlib
import sys
from pathlib import Path

from twisted.trial.unittest import TestCase

from sat_storage import schemas

EXAMPLE = Path(__file__).resolve().parents[2] / "doc" / "example_plugin"
PLUGIN_GROUP = "sat.plugins"


class Installed:
    """A distribution on ``sys.path``; :meth:`uninstall` removes it (also at cleanup)."""

    def __init__(self, testcase: TestCase, root: Path, packages: list[str]) -> None:
        self.root = root
        self.packages = packages
        self.installed = True
        _forget(packages)
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        testcase.addCleanup(self.uninstall)

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        sys.path.remove(str(self.root))
        _forget(self.packages)
        importlib.invalidate_caches()


def _forget(packages: list[str]) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in packages]:
        del sys.modules[name]


def install(
    testcase: TestCase,
    name: str,
    files: dict[str, str],
    entry_points: dict[str, dict[str, str]],
    version: str = "1.0",
) -> Installed:
    """Write ``files`` (path -> text) and a dist-info for distribution ``name``."""
    root = Path(testcase.mktemp()).resolve()
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    dist_info = root / f"{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{entry} = {value}" for entry, value in entries.items())
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    packages = sorted({path.split("/")[0] for path in files if "/" in path})
    return Installed(testcase, root, packages)


def install_example(testcase: TestCase, revision: int = 2) -> Installed:
    """The example plugin distribution ``sat_notes`` as of its revision 1 or 2."""
    files = {
        str(path.relative_to(EXAMPLE)): path.read_text()
        for path in EXAMPLE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    if revision == 1:
        del files["sat_notes/versions/notes_0002_pinned.py"]
        models = files["sat_notes/models.py"].splitlines(keepends=True)
        files["sat_notes/models.py"] = "".join(
            line for line in models if "pinned" not in line and "notes_0002" not in line
        )
    setup = configparser.ConfigParser()
    setup.read_string(files["setup.cfg"])
    entry_points = {
        group: dict(
            line.split(" = ", 1)
            for line in setup["options.entry_points"][group].splitlines()
            if "=" in line
        )
        for group in (PLUGIN_GROUP, schemas.GROUP)
    }
    return install(testcase, "sat_notes", files, entry_points, f"{revision}.0")


SCHEMA_MODULE = '''
from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table(
    {table!r}, metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("label", sa.Text),
)
version_location = Path(__file__).resolve().parent / "versions"
'''

REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = None
branch_labels = ({name!r},)
depends_on = "0001"


def upgrade():
    op.create_table(
        {table!r}, sa.Column("id", sa.Integer, primary_key=True), sa.Column("label", sa.Text)
    )
    {extra}


def downgrade():
    op.drop_table({table!r})
'''

PLUGIN = '''
PLUGIN_INFO = {{"name": "{name}", "import_name": {import_name!r}, "type": "MISC",
                "main": "Main"}}


class Main:
    def __init__(self, host):
        self.host = host
'''


def install_table_schema(
    testcase: TestCase,
    name: str,
    *,
    table: str | None = None,
    extra: str = "pass",
    revision: str | None = None,
    plugin: str | None = None,
) -> Installed:
    """A distribution with schema ``name`` (one table, one revision ``<name>_0001``).

    ``extra``: a statement run after the table's creation in the revision (e.g.
    ``raise RuntimeError(...)``); ``plugin``: import name of a plugin of the same
    distribution (it declares no ``schemas``: it needs its distribution's).
    """
    package = f"{name}_dist"
    table = table or f"{name}_items"
    files = {
        f"{package}/__init__.py": "",
        f"{package}/schema.py": SCHEMA_MODULE.format(table=table),
        f"{package}/versions/{name}_0001.py": REVISION.format(
            revision=revision or f"{name}_0001", name=name, table=table, extra=extra
        ),
    }
    entry_points = {schemas.GROUP: {name: f"{package}.schema"}}
    if plugin is not None:
        files[f"{package}/plugin.py"] = PLUGIN.format(name=name, import_name=plugin)
        entry_points[PLUGIN_GROUP] = {plugin: f"{package}.plugin"}
    return install(testcase, package, files, entry_points)

