"""The committed Libervia 0.9 fixture: copies for tests and what the reference read."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

HERE = Path(__file__).parent
FIXTURE = HERE / "libervia-0.9.sqlite"
EXPECTED = HERE / "expected.json"
#: the same kind of content, taken down to Libervia's first revision by its migrations
OLD_REVISION = "602caf848068"
OLD_FIXTURE = HERE / f"libervia-0.9-{OLD_REVISION}.sqlite"
OLD_EXPECTED = HERE / f"expected-{OLD_REVISION}.json"


def expected(path: Path = EXPECTED) -> dict[str, Any]:
    """The reference's read-back of a fixture (see generate_fixture.py)."""
    return json.loads(path.read_text())


def fixture_copy(
    testcase: TestCase, directory: Path | None = None, fixture: Path = FIXTURE
) -> Path:
    """A copy of ``fixture`` in a new temporary directory (or in ``directory``)."""
    if directory is None:
        directory = Path(testcase.mktemp()).resolve()
        directory.mkdir()
    path = directory / "libervia.db"
    shutil.copyfile(fixture, path)
    return path


def url_of(path: Path) -> str:
    """SQLite URL of ``path``."""
    return f"sqlite:///{path}"


def execute(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on ``path`` with plain sqlite3 (test set-up, committed)."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def mount_tmpfs(testcase: TestCase, size_kb: int) -> Path:
    """A small tmpfs of ``size_kb`` KiB, unmounted at cleanup; skip if not allowed."""
    directory = Path(testcase.mktemp()).resolve()
    directory.mkdir()
    if os.geteuid() != 0:
        raise SkipTest("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SkipTest(f"cannot mount a tmpfs: {done.stderr.strip()}")
    testcase.addCleanup(subprocess.run, ["umount", str(directory)], check=True)
    return directory


def remount_read_only(directory: Path) -> None:
    """Make the tmpfs at ``directory`` read-only."""
    subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
