"""``sat-storage db port``: copy a SQLite database into PostgreSQL (see doc/moving.rst).

Unlike the other commands it runs without the reactor: :func:`sat_storage.port.port`
only talks to the two databases, synchronously, so Ctrl-C stops it between two
statements (the batch in flight is rolled back) and the same command resumes it.
"""

from __future__ import annotations

from typing import Any

import click
import psycopg

from sat_storage import engines
from sat_storage import port as porting
from sat_storage.cli.runtime import BadInput, Options, RuntimeFailure, first_line, pass_options

RESUME_HINT = "run the same command again to resume"


class PortProgress:
    """Rows copied, rows/s and time left on stderr (people's output only)."""

    def __init__(self, options: Options) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.options = options
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9.0f} rows/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            auto_refresh=False,
            disable=options.json,
        )
        self.task_id: Any = None

    def __enter__(self) -> PortProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        out = self.options.output
        if kind == "progress":
            self.progress.update(
                self.task_id,
                completed=event["done"],
                rate=event["rate"],
                description=event["table"],
            )
            self.progress.refresh()
            if out.json:
                out.event(kind, "", **{k: v for k, v in event.items() if k != "event"})
            return
        if kind == "start":
            self.task_id = self.progress.add_task(
                "copy", total=event["total"], completed=event["done"], rate=0.0
            )
        out.event(kind, describe(event), **{k: v for k, v in event.items() if k != "event"})


def describe(event: dict[str, Any]) -> str:
    """One line for people about a step of the port."""
    kind = event["event"]
    if kind == "snapshot":
        busy = " (the source is in use: writes made after it are not ported)"
        return f"snapshot of the source: {event['path']}{busy if event['source_in_use'] else ''}"
    if kind == "schema":
        return f"target schema {event['action']} at revision {event['revision']}"
    if kind == "start":
        resumed = f", resuming after {event['done']} rows" if event["resumed"] else ""
        return f"copying {event['total']} rows{resumed}"
    if kind == "finish":
        return f"{event['sequences']} sequences set, full-text index rebuilt"
    if kind == "verified":
        return (
            f"verified: {event['rows']} rows in {event['tables']} tables equal (counts, checksums)"
        )
    return kind


def render_plan(options: Options, plan: dict[str, Any]) -> None:
    """The dry run for people."""
    out = options.output
    out.fields(
        [
            ("source", f"{plan['source']} (revision {plan['source_revision'] or 'none'})"),
            ("target", f"{plan['target']} (revision {plan['target_revision'] or 'none'})"),
            ("target state", plan["target_state"]),
            ("rows to copy", plan["total"]),
        ]
    )
    rows = [(t["table"], t["rows"], t["copied"]) for t in plan["tables"]]
    out.table(["table", "rows", "already copied"], rows)
    for value in plan["bad_values"]:
        out.message(f"refused by PostgreSQL: {value}")
    if plan["source_in_use"]:
        out.message("the source is in use: the port will copy a consistent snapshot of it")


@click.command("port")
@click.option("--from", "source_url", required=True, metavar="SQLITE_URL", help="The source.")
@click.option(
    "--to", "target_url", required=True, metavar="POSTGRESQL_URL", help="An empty database."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=porting.DEFAULT_BATCH,
    show_default=True,
    help="Rows per COPY and commit.",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be copied.")
@pass_options
def port(
    options: Options, source_url: str, target_url: str, batch_size: int, dry_run: bool
) -> None:
    """Copy every table of a SQLite database into an empty PostgreSQL one.

    Ids are kept; the copy works on a snapshot of the source, is resumable (run the
    same command again after an interruption) and is verified at the end (row
    counts and a checksum per table).
    """
    try:
        if dry_run:
            plan = porting.plan(source_url, target_url)
            options.output.emit(plan, lambda: render_plan(options, plan))
            return
        with PortProgress(options) as progress:
            result = porting.port(source_url, target_url, batch_size, progress)
    except porting.PortRefused as e:
        raise BadInput(str(e)) from None
    except porting.PortUnverified as e:
        raise RuntimeFailure(f"{e} (the port is kept: {RESUME_HINT} or inspect it)") from None
    except psycopg.OperationalError as e:
        where = engines.safe_url(target_url)
        raise RuntimeFailure(f"{where}: {first_line(e)}; {RESUME_HINT}") from None
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted: {RESUME_HINT}") from None
    out = options.output
    if out.json:  # event lines throughout: the result is the last one
        out.event("done", "", **result)
        return
    out.table(
        ["table", "rows", "verified"],
        [(t["table"], t["rows"], "yes" if t["equal"] else "NO") for t in result["tables"]],
    )
    out.message(
        f"ported {result['rows']} rows in {result['seconds']:.1f} s "
        f"({result['copied_now']} copied by this run)"
    )
