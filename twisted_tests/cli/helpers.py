"""Run ``sat-storage`` in a subprocess, as users do, without blocking the reactor."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
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

    def __init__(self, stdin: str, on_line: Callable[[str], None] | None = None) -> None:
        self.stdin = stdin
        self.on_line = on_line
        self.done: defer.Deferred[CliResult] = defer.Deferred()
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self._partial = b""

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's names)
        self.transport.write(self.stdin.encode())
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.out.append(data)
        if self.on_line is not None:
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                self.on_line(line.decode())

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.err.append(data)

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        code = reason.value.exitCode
        if code is None:  # killed by a signal
            code = -reason.value.signal
        out, err = b"".join(self.out).decode(), b"".join(self.err).decode()
        self.done.callback(CliResult(code, out, err))


def spawn_cli(
    args: list[str],
    env: dict[str, str],
    stdin: str = "",
    on_line: Callable[[str], None] | None = None,
) -> tuple[Any, defer.Deferred[CliResult]]:
    """Start ``sat-storage ARGS``; give back its process transport and its result.

    ``on_line`` is called with each line of stdout as it comes.
    """
    from twisted.internet import reactor

    collect = _Collect(stdin, on_line)
    process = reactor.spawnProcess(collect, COMMAND[0], [*COMMAND, *args], env=env)
    return process, collect.done


class RunningCli:
    """A long-running command (``run``) whose JSON event lines can be awaited."""

    def __init__(
        self, testcase: TestCase, args: list[str], env: dict[str, str], stdin: str = ""
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], defer.Deferred[Any]]] = []
        self.process, self.ended = spawn_cli(args, env, stdin, on_line=self._line)
        self.ended.addBoth(self._ended)
        testcase.addCleanup(self._kill)

    def _line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        self.events.append(event)
        for waiter in list(self._waiters):
            if waiter[0](event):
                self._waiters.remove(waiter)
                waiter[1].callback(event)

    def _ended(self, result: Any) -> Any:
        for _match, d in self._waiters:
            d.errback(AssertionError(f"the command ended first:\n{result}"))
        self._waiters = []
        return result

    def wait_for(self, kind: str, timeout: float = 30.0, **fields: Any) -> defer.Deferred[Any]:
        """Fires with the first event ``kind`` having ``fields`` (seen already or to come)."""
        from twisted.internet import reactor

        def match(event: dict[str, Any]) -> bool:
            return event.get("event") == kind and all(event.get(k) == v for k, v in fields.items())

        for event in self.events:
            if match(event):
                return defer.succeed(event)
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append((match, d))
        return d.addTimeout(timeout, reactor)

    def signal(self, name: str) -> None:
        """Send a signal (``TERM``, ``INT``) to the command."""
        self.process.signalProcess(name)

    async def _kill(self) -> None:
        if self.process.pid is not None:
            self.process.signalProcess("KILL")
            await self.ended


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
