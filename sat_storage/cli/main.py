"""Entry point of ``sat-storage``: global options, command groups, exit codes.

Exit codes: 0 success, 1 bad input (usage, unknown profile, bad date, unknown
operator, unreachable database, …: one line on stderr), 2 failure while running.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from sat_storage import exceptions
from sat_storage.cli import cache, db, port, profile, serve
from sat_storage.cli.runtime import Options, Output, first_line

PROG = "sat-storage"
_verbosity = {"level": 0}  # set by the group's callback; shows tracebacks of failures

# Errors that the user can fix by changing the command or its input.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    exceptions.ProfileUnknownError,
    exceptions.ConflictError,
    exceptions.NotFound,
    exceptions.DatabaseNewerError,
    exceptions.UnknownDatabaseError,
    ValueError,
)


def _log_level(verbose: int) -> int:
    return logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG


def setup_logging(verbose: int) -> None:
    """Log to stderr: warnings by default, info with ``-v``, debug with ``-vv``."""
    logging.basicConfig(
        level=_log_level(verbose),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    set_verbosity(verbose)
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)


def set_verbosity(verbose: int) -> None:
    """The log levels of ``verbose`` (also when ``-v`` comes after the command)."""
    _verbosity["level"] = verbose
    logging.getLogger().setLevel(_log_level(verbose))
    quiet = logging.WARNING if verbose < 2 else logging.NOTSET
    logging.getLogger("sqlalchemy").setLevel(quiet)
    logging.getLogger("alembic").setLevel(quiet)


def _late_option(name: str) -> Any:
    """Callback of a global option given after the command: update the Options."""

    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if not value:
            return
        options = ctx.find_object(Options)
        if name == "json":
            options.json = True
            options.output = Output(True)
        elif name == "verbose":
            options.verbose += value
            set_verbosity(options.verbose)
        elif name == "yes":
            options.yes = True
        else:
            setattr(options, name, value)

    return callback


def late_global_options() -> list[click.Option]:
    """The global options, for every command: accepted after it too."""
    late = " (global option, also accepted before the command)"
    return [
        click.Option(
            ["--db-url"], metavar="URL", expose_value=False,
            callback=_late_option("db_url_option"), help="Database URL" + late + ".",
        ),
        click.Option(
            ["--config"], metavar="PATH", expose_value=False,
            callback=_late_option("config_path"), help="Configuration file" + late + ".",
        ),
        click.Option(
            ["--json"], is_flag=True, expose_value=False, callback=_late_option("json"),
            help="Machine-readable JSON output" + late + ".",
        ),
        click.Option(
            ["-y", "--yes"], is_flag=True, expose_value=False, callback=_late_option("yes"),
            help="Do not ask for confirmation" + late + ".",
        ),
        click.Option(
            ["-v", "--verbose"], count=True, expose_value=False,
            callback=_late_option("verbose"), help="Log more" + late + ".",
        ),
    ]  # fmt: skip


def add_late_options(group: click.Group) -> None:
    """Give every command of ``group`` (recursively) the global options it lacks."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            add_late_options(command)
            continue
        taken = {opt for param in command.params for opt in getattr(param, "opts", ())}
        for option in late_global_options():
            if not taken.intersection(option.opts):
                command.params.append(option)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db-url",
    metavar="URL",
    help="Database URL (default: $SAT_STORAGE_DB_URL, the config file, then SQLite "
    "in the XDG data directory).",
)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Configuration file (default: /etc/sat_storage.conf, "
    "~/.config/sat_storage/sat_storage.conf or $SAT_STORAGE_CONFIG).",
)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.version_option(package_name="sat_storage", prog_name=PROG)
@click.pass_context
def cli(
    ctx: click.Context,
    db_url: str | None,
    config_path: str | None,
    json_mode: bool,
    yes: bool,
    verbose: int,
) -> None:
    """Administer a sat_storage database and its pubsub cache."""
    ctx.obj = Options(
        db_url_option=db_url, config_path=config_path, json=json_mode, yes=yes, verbose=verbose
    )
    setup_logging(verbose)


db.db.add_command(port.port)
cli.add_command(db.db)
cli.add_command(profile.profile)
cli.add_command(cache.cache)
cli.add_command(serve.run)
add_late_options(cli)


def _fail(message: str, code: int) -> int:
    click.echo(f"{PROG}: error: {message}", err=True)
    return code


def _usage_message(error: click.UsageError) -> str:
    if isinstance(error, click.exceptions.NoArgsIsHelpError) and error.ctx is not None:
        group = error.ctx.command
        names = ", ".join(sorted(getattr(group, "commands", {})))
        path = error.ctx.command_path
        return f"missing command, one of: {names} (see '{path} --help')"
    message = error.format_message().rstrip(".")
    message = message[:1].lower() + message[1:]
    path = error.ctx.command_path if error.ctx is not None else PROG
    return f"{message} (see '{path} --help')"


def _quiet_stdout() -> None:
    """Send what is left of stdout nowhere (the reader closed the pipe: ``| head``)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line and exit with its code (never a traceback for bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name=PROG, standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.exceptions.NoArgsIsHelpError as e:
        if e.ctx is not None and e.ctx.parent is None:  # plain `sat-storage`: its help
            e.show()
            code = e.exit_code
        else:
            code = _fail(_usage_message(e), 1)
    except click.UsageError as e:
        code = _fail(_usage_message(e), 1)
    except click.Abort:
        code = _fail("aborted", 1)
    except click.ClickException as e:
        code = _fail(e.format_message(), e.exit_code)
    except BAD_INPUT_ERRORS as e:
        code = _fail(first_line(e), 1)
    except KeyboardInterrupt:
        code = _fail("interrupted", 1)
    except BrokenPipeError:  # the reader went away (`| head`): not an error
        _quiet_stdout()
        code = 0
    except Exception as e:
        if _verbosity["level"]:
            traceback.print_exc()
        code = _fail(f"{type(e).__name__}: {first_line(e)}", 2)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    sys.exit(code)


if __name__ == "__main__":
    main()
