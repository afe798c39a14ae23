"""Run the trial suite on every engine and reactor; print one honest total.

The suite runs from a copy-free temporary directory so that the installed package
(not the checkout) is what the tests import. Runs:
  1. SQLite, default reactor: the whole suite;
  2. PostgreSQL (a throwaway server on 127.0.0.1), default reactor: the whole suite;
  3. SQLite, asyncio reactor: the storage suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^(PASSED|FAILED) \((.*)\)$")


def counts(output: str) -> tuple[int, int]:
    """(passed, failed) from trial's last summary line; failed=1 when there is none."""
    for line in reversed(output.splitlines()):
        match = SUMMARY.match(line.strip())
        if match:
            fields = dict(
                (k.strip(), int(v)) for k, v in (p.split("=") for p in match.group(2).split(","))
            )
            passed = fields.get("successes", 0) + fields.get("expectedFailures", 0)
            failed = (
                fields.get("failures", 0)
                + fields.get("errors", 0)
                + fields.get("unexpectedSuccesses", 0)
            )
            return passed, failed
    return 0, 1


def trial(label: str, env: dict[str, str], *args: str) -> tuple[int, int]:
    """Run trial with ``args`` and print its output; return its counts."""
    print(f"=== {label}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sat-trial.") as workdir:
        proc = subprocess.run(
            [sys.executable, "-W", "error", "-m", "twisted.trial", *args],
            cwd=workdir,
            env=dict(env, PYTHONPATH=str(ROOT / "test_path")),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    sys.stdout.write(proc.stdout)
    passed, failed = counts(proc.stdout)
    if proc.returncode != 0 and failed == 0:
        failed = 1
    print(f"=== {label}: {passed} passed, {failed} failed", flush=True)
    return passed, failed


def main() -> int:
    # twisted_tests is imported from the checkout, sat_storage from the installed wheel.
    test_path = ROOT / "test_path"
    test_path.mkdir(exist_ok=True)
    link = test_path / "twisted_tests"
    if not link.exists():
        link.symlink_to(ROOT / "twisted_tests")
    sys.path.insert(0, str(test_path))
    from twisted_tests.pg_server import ENV_URL, start_postgresql

    base = {k: v for k, v in os.environ.items() if not k.startswith("SAT_STORAGE_")}
    server = None
    if os.environ.get(ENV_URL):
        pg_url = os.environ[ENV_URL]
    else:
        if Path("/dev/shm").is_dir() and os.statvfs("/dev/shm").f_bavail * os.statvfs(
            "/dev/shm"
        ).f_frsize >= 1 << 30:
            os.environ.setdefault("SAT_PG_TMPDIR", "/dev/shm")
        server = start_postgresql()
        pg_url = server.url
    try:
        runs = [
            trial("SQLite, default reactor", dict(base, SAT_STORAGE_TEST_DB="sqlite"),
                  "twisted_tests"),
            trial("PostgreSQL, default reactor",
                  dict(base, SAT_STORAGE_TEST_DB="postgresql", **{ENV_URL: pg_url}),
                  "twisted_tests"),
            trial("SQLite, asyncio reactor", dict(base, SAT_STORAGE_TEST_DB="sqlite"),
                  "--reactor=asyncio", "twisted_tests.storage"),
        ]
    finally:
        if server is not None:
            server.stop()
    passed = sum(p for p, _ in runs)
    failed = sum(f for _, f in runs)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
