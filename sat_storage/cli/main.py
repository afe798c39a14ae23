"""Entry point of ``sat-storage``: global options, command groups, exit codes.

Exit codes: 0 success, 1 bad input (usage, unknown profile, bad date, unknown
operator, unreachable database, …: one line on stderr), 2 failure while running.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence

import click

from sat_storage import exceptions
from sat_storage.cli import cache, db, profile, serve
from sat_storage.cli.runtime import Options, first_line

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


def setup_logging(verbose: int) -> None:
    """Log to stderr: warnings by default, info with ``-v``, debug with ``-vv``."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if verbose < 2:
        logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)


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
    _verbosity["level"] = verbose
    setup_logging(verbose)


cli.add_command(db.db)
cli.add_command(profile.profile)
cli.add_command(cache.cache)
cli.add_command(serve.run)


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


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line and exit with its code (never a traceback for bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name=PROG, standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
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
    except Exception as e:
        if _verbosity["level"]:
            traceback.print_exc()
        code = _fail(f"{type(e).__name__}: {first_line(e)}", 2)
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
