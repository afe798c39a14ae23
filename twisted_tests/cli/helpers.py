"""Run ``sat-storage`` in a subprocess, as users do, without blocking the reactor."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, protocol
from twisted.trial.unittest import TestCase

COMMAND = [sys.executable, "-m", "sat_storage.cli.main"]


@dataclass
class CliResult:
    """Exit code and outputs of one command."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The JSON document printed on stdout."""
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def isolated_env(testcase: TestCase) -> dict[str, str]:
    """Environment without the caller's sat_storage settings; XDG dirs in a temp dir."""
    home = os.path.abspath(testcase.mktemp())
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAT_STORAGE_")}
    env.update(
        HOME=home,
        XDG_DATA_HOME=os.path.join(home, "data"),
        XDG_CONFIG_HOME=os.path.join(home, "config"),
        COLUMNS="200",
        # the child imports sat_storage as this process does (checkout or wheel)
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    return env


class _Collect(protocol.ProcessProtocol):
    """Writes the input, closes stdin, gathers both outputs and the exit code."""

    def __init__(self, stdin: str, done: defer.Deferred[CliResult]) -> None:
        self.stdin = stdin
        self.done = done
        self.out: list[bytes] = []
        self.err: list[bytes] = []

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's names)
        self.transport.write(self.stdin.encode())
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.err.append(data)

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        code = reason.value.exitCode
        if code is None:  # killed by a signal
            code = -reason.value.signal
        out, err = b"".join(self.out).decode(), b"".join(self.err).decode()
        self.done.callback(CliResult(code, out, err))


def spawn_cli(
    args: list[str], env: dict[str, str], stdin: str = ""
) -> tuple[Any, defer.Deferred[CliResult]]:
    """Start ``sat-storage ARGS``; give back its process transport and its result."""
    from twisted.internet import reactor

    done: defer.Deferred[CliResult] = defer.Deferred()
    process = reactor.spawnProcess(_Collect(stdin, done), COMMAND[0], [*COMMAND, *args], env=env)
    return process, done


async def run_cli(
    testcase: TestCase,
    *args: str,
    db_url: str | None = None,
    stdin: str = "",
    env: dict[str, str] | None = None,
) -> CliResult:
    """Run ``sat-storage [--db-url URL] ARGS`` to its end (stdin: ``stdin``, then EOF)."""
    argv = (["--db-url", db_url] if db_url is not None else []) + list(args)
    _process, done = spawn_cli(argv, env if env is not None else isolated_env(testcase), stdin)
    return await done


def assert_bad_input(testcase: TestCase, result: CliResult, *fragments: str) -> None:
    """Exit code 1, nothing on stdout, one line on stderr containing ``fragments``."""
    testcase.assertEqual(result.code, 1, str(result))
    lines = result.err.strip().splitlines()
    testcase.assertEqual(len(lines), 1, str(result))
    testcase.assertTrue(lines[0].startswith("sat-storage: error: "), str(result))
    for fragment in fragments:
        testcase.assertIn(fragment, lines[0])
    testcase.assertEqual(result.out, "")
