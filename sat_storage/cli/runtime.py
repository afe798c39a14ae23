"""What every command shares: options, errors, the reactor run, output.

A command parses its arguments synchronously (click), then hands an ``async``
function to :func:`run_async`, which runs it under ``twisted.internet.task.react``
with a :class:`Runtime` that opens the storage or the host and closes them on exit,
on error and on SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError
from twisted.internet import defer, task, threads
from twisted.words.protocols.jabber import jid

from sat_storage import engines
from sat_storage.config import Config, ConfigError, resolve_db_url
from sat_storage.gateway import Gateway

T = TypeVar("T")


class BadInput(click.ClickException):
    """Bad input or configuration: one line on stderr, exit code 1."""

    exit_code = 1


class RuntimeFailure(click.ClickException):
    """The command was valid but failed while running: exit code 2."""

    exit_code = 2


class NoAnswer(click.ClickException):
    """A confirmation got no answer (standard input ended: no terminal): exit code 1."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__(
            "aborted: no answer (standard input is not a terminal); "
            "pass --yes to confirm without asking"
        )


def _no_answer(error: click.Abort) -> bool:
    """Whether click aborted a prompt because its input ended (EOF), not on a refusal."""
    return isinstance(error.__context__, EOFError)


class Interrupted(click.ClickException):
    """SIGINT/SIGTERM stopped a command before it finished: exit code 1."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("interrupted")


def first_line(error: BaseException) -> str:
    """The first line of an error message (database drivers write several)."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@dataclass
class Options:
    """The global options, shared by every command through click's context."""

    db_url_option: str | None = None
    config_path: str | None = None
    json: bool = False
    yes: bool = False
    verbose: int = 0
    output: Output = field(init=False)

    def __post_init__(self) -> None:
        self.output = Output(self.json)

    @cached_property
    def config(self) -> Config:
        """The configuration file (``--config``, else the default locations)."""
        try:
            return Config.from_path(self.config_path)
        except ConfigError as e:
            raise BadInput(" ".join(str(e).split())) from None

    @cached_property
    def db_url(self) -> str:
        """The database URL: ``--db-url`` > ``$SAT_STORAGE_DB_URL`` > config > SQLite."""
        try:
            return engines.url_text(
                engines.parse_url(resolve_db_url(self.db_url_option, self.config))
            )
        except engines.UnsupportedDatabase as e:
            raise BadInput(str(e)) from None

    @property
    def safe_db_url(self) -> str:
        """The database URL with its password hidden."""
        return engines.safe_url(self.db_url)


pass_options = click.make_pass_decorator(Options)


def _set_yes(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Options).yes = True


yes_option = click.option(
    "-y",
    "--yes",
    is_flag=True,
    expose_value=False,
    callback=_set_yes,
    help="Do not ask for confirmation (same as the global --yes).",
)


def check_reachable(url: str) -> None:
    """Open one connection to ``url`` (in a thread); ``BadInput`` when that fails."""
    try:
        engine = engines.create_engine(url)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except (OSError, DBAPIError) as e:
        raise BadInput(
            f"cannot open the database {engines.safe_url(url)}: {first_line(e)}"
        ) from None


class Runtime:
    """Resources of one command run: opened on demand, closed exactly once."""

    def __init__(self, options: Options, reactor: Any) -> None:
        self.options = options
        self.reactor = reactor
        self._closers: list[Callable[[], Any]] = []
        self._closing: defer.Deferred[None] | None = None
        self.shutdown_requested: defer.Deferred[None] = defer.Deferred()

    def on_close(self, closer: Callable[[], Any]) -> None:
        """Call ``closer`` (may return a Deferred or coroutine) when the run ends."""
        self._closers.append(closer)

    async def _close_all(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            try:
                await defer.maybeDeferred(closer)
            except Exception as e:  # keep closing the others
                click.echo(f"warning: while closing: {first_line(e)}", err=True)

    def close(self) -> defer.Deferred[None]:
        """Close everything opened, in reverse order, once; fires when that is done."""
        if self._closing is None:
            self._closing = defer.ensureDeferred(self._close_all())
        done: defer.Deferred[None] = defer.Deferred()
        self._closing.addBoth(lambda result: done.callback(None) or result)
        return done

    async def check_reachable(self) -> None:
        """Fail with ``BadInput`` when the database cannot be opened."""
        await threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), check_reachable, self.options.db_url
        )

    def database_missing(self) -> bool:
        """True when the database is a SQLite file that does not exist yet."""
        url = engines.parse_url(self.options.db_url)
        if not engines.is_sqlite(url):
            return False
        path = engines.sqlite_path(url)
        return path is not None and not path.exists()

    async def gateway(self) -> Gateway:
        """A gateway on the database, for commands working below the storage API."""
        await self.check_reachable()
        gateway = Gateway(engines.create_engine(self.options.db_url), self.reactor)
        self.on_close(gateway.close)
        return gateway

    async def storage(self) -> Any:
        """The initialised storage (schema created or upgraded as the backend does)."""
        from sat_storage import Storage

        await self.check_reachable()
        storage = Storage(self.options.db_url, self.options.config, reactor=self.reactor)
        await storage.initialise()
        self.on_close(storage.close)
        report_adoption(storage)
        return storage

    async def host(self) -> Any:
        """The started reference host: storage ready, plugins discovered and loaded."""
        from sat_storage.host import Host

        await self.check_reachable()
        host = Host(config_path=self.options.config_path, db_url=self.options.db_url)
        await host.start()
        self.on_close(host.stop)
        report_adoption(host.memory.storage)
        return host

    async def cache_plugin(self) -> tuple[Any, Any]:
        """The started host and its ``PUBSUB_CACHE`` plugin (ready to use)."""
        host = await self.host()
        plugin = host.plugins.get("PUBSUB_CACHE")
        if plugin is None:
            reason = host.plugin_errors.get("PUBSUB_CACHE") or "not installed"
            raise RuntimeFailure(f"the PUBSUB_CACHE plugin is not loaded: {reason}")
        await plugin.initialised
        return host, plugin

    async def confirm(self, question: str) -> None:
        """Ask ``question`` unless ``--yes``; a refusal (or no terminal) aborts."""
        if self.options.yes:
            return
        # A daemon thread: a signal must not wait for someone to answer.
        answer: defer.Deferred[None] = defer.Deferred()

        def ask() -> None:
            try:
                confirmed = click.confirm(question, err=True)
            except click.Abort as e:  # the input ended (or Ctrl-C) before an answer
                error = NoAnswer() if _no_answer(e) else e
                self.reactor.callFromThread(answer.errback, error)
            except BaseException as e:
                self.reactor.callFromThread(answer.errback, e)
            else:
                if confirmed:
                    self.reactor.callFromThread(answer.callback, None)
                else:
                    self.reactor.callFromThread(answer.errback, click.Abort())

        threading.Thread(target=ask, name="sat-storage-confirm", daemon=True).start()
        await answer


def run_async(options: Options, fn: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``fn(runtime)`` in the reactor (``task.react``) and give back its result.

    Errors raised by ``fn`` are raised again here, outside the reactor. Resources
    opened through the runtime are closed before the reactor stops, also when a
    signal stops it (the shutdown waits for them).
    """
    outcome: dict[str, Any] = {}

    async def main(reactor: Any) -> None:
        runtime = Runtime(options, reactor)

        def on_shutdown() -> defer.Deferred[None]:
            if not runtime.shutdown_requested.called:
                runtime.shutdown_requested.callback(None)
            return runtime.close()

        reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
        try:
            outcome["value"] = await fn(runtime)
        except BaseException as e:  # handed back to the caller, outside the reactor
            outcome["error"] = e
        finally:
            await runtime.close()

    try:
        task.react(main)
    except SystemExit:
        pass
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise Interrupted()
    return outcome["value"]


# --- output -------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Convert dates, enums and other values for ``json.dumps``."""
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and hasattr(type(value), "__members__"):
        return value.value
    return str(value)


class Output:
    """Tables and messages for people, or one JSON document with ``--json``."""

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode
        self.console = Console(soft_wrap=False, highlight=False)

    def emit(self, data: Any, render: Callable[[], None]) -> None:
        """Print ``data`` as JSON with ``--json``, else call ``render``."""
        if self.json:
            sys.stdout.write(json.dumps(data, indent=2, default=to_jsonable) + "\n")
            sys.stdout.flush()
        else:
            render()

    def table(
        self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
    ) -> None:
        """Print a table (people's output only)."""
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
        self.console.print(table)

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """Print ``name: value`` lines (people's output only)."""
        for name, value in pairs:
            text = escape("" if value is None else str(value))
            self.console.print(f"[bold]{name}:[/bold] {text}")

    def event(self, kind: str, text: str, **data: Any) -> None:
        """A timestamped line of a long-running command; a JSON line with ``--json``."""
        if self.json:
            line = json.dumps({"event": kind, **data}, default=to_jsonable)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        else:
            self.console.print(f"{datetime.now():%H:%M:%S} {text}", markup=False)

    def message(self, text: str) -> None:
        """A line for people (nothing with ``--json``, which prints data instead)."""
        if not self.json:
            self.console.print(text, markup=False)


# --- parameter types ------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DateParam(click.ParamType):
    """A point in time: ISO 8601 (naive = UTC) or an age such as ``30d``, ``12h``."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        match = _RELATIVE.match(text)
        if match:
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return datetime.now(UTC) - delta
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is not a date: use ISO 8601 (2024-05-01, 2024-05-01T12:00:00+02:00) "
                "or an age (30d, 12h, 45m, 2w)",
                param,
                ctx,
            )
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


DATE = DateParam()


class JidParam(click.ParamType):
    """A Jabber ID (checked with Twisted's parser)."""

    name = "jid"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, jid.JID):
            return value
        try:
            return jid.JID(str(value))
        except jid.InvalidFormat as e:
            self.fail(f"{value!r} is not a valid JID: {e}", param, ctx)


JID = JidParam()


def report_adoption(storage: Any) -> None:
    """On stderr: the Libervia 0.9 database adopted at this start, and its backup."""
    adoption = getattr(storage, "adoption", None)
    if adoption is not None:
        click.echo(
            f"sat-storage: adopted the Libervia 0.9 database {adoption.path} "
            f"(revision {adoption.revision}, {adoption.row_count} rows); "
            f"backup: {adoption.backup}",
            err=True,
        )


async def connect(host: Any, profile: str) -> Any:
    """Connect ``profile``; a connection failure is a runtime failure (exit 2).

    A profile adopted from Libervia with a profile password: it is asked for on a
    terminal, else read as one line of standard input.
    """
    from sat_storage.libervia import ProfilePasswordError, credentials
    from sat_storage.xmpp import XMPPConnectionError

    profile_password = None
    if await credentials.needs_profile_password(host.memory.storage, profile):
        profile_password = await ask_line(f"profile password of {profile!r}", hidden=True)
    try:
        return await host.connect(profile, profile_password=profile_password)
    except (XMPPConnectionError, ProfilePasswordError) as e:
        raise RuntimeFailure(str(e)) from None


async def ask_line(prompt: str, hidden: bool = False) -> str:
    """A prompt on a terminal, else one line of standard input (in a daemon thread)."""
    from twisted.internet import reactor

    answer: defer.Deferred[str] = defer.Deferred()

    def ask() -> None:
        try:
            if sys.stdin.isatty():
                line = click.prompt(prompt, hide_input=hidden, err=True, default="",
                                    show_default=False)  # fmt: skip
            else:
                line = sys.stdin.readline().rstrip("\r\n")
        except BaseException as e:
            reactor.callFromThread(answer.errback, e)
        else:
            reactor.callFromThread(answer.callback, line)

    threading.Thread(target=ask, name="sat-storage-ask", daemon=True).start()
    return await answer
