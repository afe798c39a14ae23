"""The wheel: what it holds, and that an installed copy finds its migrations."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from twisted_tests.db import only_on

ROOT = Path(__file__).resolve().parent.parent
# What a build needs from the checkout (copied, so that no build/ or *.egg-info is left
# in the shared tree, and no stale build/lib can slip into the wheel).
SOURCES = ("setup.cfg", "setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "LICENSE")
# Source folder -> its package in the installed distribution (setup.cfg's package_dir).
PACKAGE_DIRS = {"sat_storage": "sat_storage", "plugins": "sat_storage/plugins",
                "migrations": "sat_storage/migrations"}  # fmt: skip
REQUIRED = (
    "sat_storage/migrations/versions/0001_initial_schema.py",
    "sat_storage/migrations/script.py.mako",
    "sat_storage/migrations/alembic.ini",
    "sat_storage/migrations/env.py",
    "sat_storage/plugins/__init__.py",
)

INSTALLED_CHECK = """
import sys
from twisted.internet import defer, task
import sat_storage
from sat_storage import Storage, migration

def main(reactor):
    async def run():
        storage = Storage(sys.argv[1])
        await storage.initialise()
        await storage.close()
        print(sat_storage.__file__)
        print(migration.migrations_dir())
        print(storage.schema_state.action, storage.schema_state.current)
        for name in ("plugins", "migrations"):
            try:
                __import__(name)
            except ImportError:
                print("no top-level", name)
    return defer.ensureDeferred(run())

task.react(main)
"""


async def run(testcase: TestCase, *args: str, cwd: Path, env: dict[str, str]) -> str:
    """Run ``python args`` and return its output; fail the test with it on error."""
    out, err, code = await getProcessOutputAndValue(
        sys.executable, args, env=env, path=str(cwd)
    )
    if code != 0:
        testcase.fail(f"{' '.join(args[:3])} exited with {code}:\n{(out + err).decode()}")
    return out.decode()


def expected_modules(source: Path) -> set[str]:
    """Installed paths of every module of every package folder of the source."""
    expected = set()
    for folder, package in PACKAGE_DIRS.items():
        for init in (source / folder).rglob("__init__.py"):
            for module in init.parent.glob("*.py"):
                relative = module.relative_to(source / folder).as_posix()
                expected.add(f"{package}/{relative}")
    return expected


@dataclass
class Built:
    work: Path  # a temporary directory, removed when the process exits
    source: Path
    wheel: Path
    names: set[str]


_built: Built | None = None


async def build_wheel(testcase: TestCase) -> Built:
    """Build the wheel from a copy of the checkout, once per process."""
    global _built
    if _built is not None:
        return _built
    work = Path(tempfile.mkdtemp(prefix="sat-wheel."))
    atexit.register(shutil.rmtree, work, True)
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, source / name)
    for folder in PACKAGE_DIRS:
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    await run(
        testcase,
        *("-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check"),
        *("--wheel-dir", str(work / "dist"), str(source)),
        cwd=work,
        env=clean_env(),
    )
    (wheel,) = (work / "dist").glob("sat_storage-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        _built = Built(work, source, wheel, set(archive.namelist()))
    return _built


def clean_env() -> dict[str, str]:
    """The environment without this package's settings nor PYTHONPATH."""
    skipped = ("SAT_STORAGE_", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(skipped)}


@only_on("sqlite")  # nothing in it depends on the database engine: run it once
class WheelTests(TestCase):
    async def setUp(self) -> None:
        if not (ROOT / "setup.cfg").is_file():
            raise SkipTest(f"no source checkout at {ROOT}")
        built = await build_wheel(self)
        self.source, self.wheel, self.names = built.source, built.wheel, built.names
        self.work = Path(self.mktemp()).resolve()
        self.work.mkdir()

    def test_only_its_namespace(self) -> None:
        """Nothing generic at the top of site-packages: only sat_storage and its metadata."""
        tops = {PurePosixPath(name).parts[0] for name in self.names}
        self.assertEqual({t for t in tops if not t.endswith(".dist-info")}, {"sat_storage"})

    def test_required_files(self) -> None:
        """Migrations (revisions, env, template, alembic.ini) and plugins are packaged."""
        self.assertEqual([name for name in REQUIRED if name not in self.names], [])

    def test_every_module(self) -> None:
        """Every module of every source package is in the wheel (setup.cfg lists them all)."""
        self.assertEqual(sorted(expected_modules(self.source) - self.names), [])

    async def test_installed_finds_migrations(self) -> None:
        """Installed from the wheel and run outside the checkout, a storage is created."""
        target = self.work / "site"
        await run(
            self,
            *("-m", "pip", "install", "--quiet", "--no-deps", "--no-index"),
            *("--disable-pip-version-check", "--target", str(target), str(self.wheel)),
            cwd=self.work,
            env=clean_env(),
        )
        elsewhere = self.work / "elsewhere"
        elsewhere.mkdir()
        url = f"sqlite:///{elsewhere / 'db.sqlite'}"
        env = dict(clean_env(), PYTHONPATH=str(target), XDG_CONFIG_HOME=str(elsewhere))
        out = await run(self, "-W", "error", "-c", INSTALLED_CHECK, url, cwd=elsewhere, env=env)
        package, migrations, state, *top_level = out.splitlines()
        self.assertEqual(Path(package).parent, target / "sat_storage")
        self.assertEqual(Path(migrations), target / "sat_storage" / "migrations")
        self.assertTrue(state.startswith("created "), state)
        self.assertEqual(top_level, ["no top-level plugins", "no top-level migrations"])
