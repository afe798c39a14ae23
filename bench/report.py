"""Run every benchmark of the project and print one table (``bench/run``).

Each benchmark is a script in ``bench/`` with a ``__main__`` block that accepts
``--json`` and then prints one JSON document on stdout (progress goes to stderr):

.. code-block:: json

    {"benchmark": "cache_items",
     "results": [
        {"name": "raw sqlite3 executemany", "value": 210000.0, "unit": "items/s"},
        {"name": "cache_pubsub_items, one batch", "value": 150000.0, "unit": "items/s",
         "baseline": "raw sqlite3 executemany"}
     ]}

``baseline`` names another result of the same run; the table shows
``value / baseline value``. A benchmark that reads ``--db-url`` (its text names
``db_url``) runs once per engine of ``--engines`` (default: SQLite, then PostgreSQL
on a throwaway server on 127.0.0.1 started for the run, a new database per
benchmark); the others run once. A result may give its own ``ratio`` instead. The keys
``label``/``metric`` are accepted for ``name``, ``median_ms``/``ms`` for ``value``
(unit ms); a bare list of results, or a flat ``{name: number}`` object, is accepted
too.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"report.py"}
NAME_KEYS = ("name", "label", "metric", "figure")
VALUE_KEYS = (("value", None), ("median_ms", "ms"), ("ms", "ms"), ("seconds", "s"))


@dataclass
class Figure:
    """One line of the report."""

    benchmark: str
    name: str
    value: float | None
    unit: str
    baseline: str | None = None
    ratio: float | None = None
    error: str | None = None
    engine: str | None = None


def discover(directory: Path = BENCH_DIR) -> list[Path]:
    """Benchmark scripts: ``bench/*.py`` with a ``__main__`` block, by name."""
    found = []
    for path in sorted(directory.glob("*.py")):
        if path.name in NOT_BENCHMARKS or path.name.startswith("_"):
            continue
        if "__main__" in path.read_text(encoding="utf-8"):
            found.append(path)
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _result_figure(benchmark: str, entry: dict[str, Any]) -> Figure | None:
    name = next((str(entry[k]) for k in NAME_KEYS if k in entry), None)
    for key, unit in VALUE_KEYS:
        if key in entry and _number(entry[key]) is not None:
            value = _number(entry[key])
            unit = str(entry.get("unit", entry.get("units", unit or "")))
            break
    else:
        return None
    baseline = entry.get("baseline")
    return Figure(
        benchmark,
        name or "?",
        value,
        unit,
        baseline=str(baseline) if isinstance(baseline, str) else None,
        ratio=_number(entry.get("ratio")),
    )


def parse(benchmark: str, document: Any) -> list[Figure]:
    """Figures of one benchmark's JSON document (see the module docstring)."""
    if isinstance(document, dict):
        benchmark = str(document.get("benchmark", benchmark))
        entries = document.get("results")
        if entries is None:
            return [
                Figure(benchmark, str(k), _number(v), "")
                for k, v in document.items()
                if _number(v) is not None
            ]
    else:
        entries = document
    if not isinstance(entries, list):
        raise ValueError(f"{benchmark}: 'results' must be a list")
    figures = [
        f for f in (_result_figure(benchmark, e) for e in entries if isinstance(e, dict)) if f
    ]
    if not figures:
        raise ValueError(f"{benchmark}: no figure found in its JSON output")
    by_name = {f.name: f for f in figures}
    for figure in figures:
        if figure.ratio is None and figure.baseline is not None:
            base = by_name.get(figure.baseline)
            if base is not None and base.value and figure.value is not None:
                figure.ratio = figure.value / base.value
    return figures


def run_benchmark(
    path: Path, extra: list[str], python: str, engine: str | None = None
) -> list[Figure]:
    """Run one benchmark with ``--json``; failures become one figure with an error."""
    started = time.monotonic()
    proc = subprocess.run(
        [python, str(path), "--json", *extra], stdout=subprocess.PIPE, text=True, check=False
    )
    elapsed = time.monotonic() - started
    on = f" ({engine})" if engine else ""
    print(
        f"bench/run: {path.name}{on}: exit {proc.returncode} in {elapsed:.1f}s", file=sys.stderr
    )
    if proc.returncode != 0:
        figures = [Figure(path.stem, "-", None, "", error=f"exit code {proc.returncode}")]
    else:
        try:
            figures = parse(path.stem, json.loads(proc.stdout))
        except ValueError as e:  # JSONDecodeError included
            figures = [Figure(path.stem, "-", None, "", error=f"bad --json output: {e}")]
    for figure in figures:
        figure.engine = engine
    return figures


def uses_database(path: Path) -> bool:
    """Whether a benchmark measures a database (reads ``--db-url``)."""
    return "db_url" in path.read_text(encoding="utf-8")


class Databases:
    """Database URLs per engine: SQLite is each benchmark's own file (no URL); PostgreSQL
    a new database per benchmark on one throwaway server, started when first asked."""

    def __init__(self) -> None:
        self.server: Any = None

    def url(self, engine: str, name: str) -> str | None:
        if engine == "sqlite":
            return None
        if self.server is None:
            sys.path.insert(0, str(BENCH_DIR.parent))
            from twisted_tests.pg_server import start_postgresql

            self.server = start_postgresql()
        import psycopg

        database = f"bench_{name}_{time.time_ns()}"
        with psycopg.connect(self.server.url.replace("+psycopg", ""), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{database}"')  # our own constant name
        return self.server.url.rsplit("/", 1)[0] + "/" + database

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def _format_value(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render(figures: list[Figure]) -> str:
    """The table: benchmark, figure, value, unit, baseline, ratio."""
    header = ("benchmark", "engine", "figure", "value", "unit", "baseline", "ratio")
    rows = [
        (
            f.benchmark,
            f.engine or "",
            f.name if f.error is None else f"FAILED: {f.error}",
            _format_value(f.value),
            f.unit,
            f.baseline or "",
            "" if f.ratio is None else f"{f.ratio:.2f}x",
        )
        for f in figures
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (all, or those named) and print the table.

    Arguments after ``--`` go to every benchmark (``-- --runs 1 --items 2000``).
    """
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these benchmarks (file stems)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the benchmarks")
    parser.add_argument(
        "--engines",
        default="sqlite,postgresql",
        help="engines for the database benchmarks, comma-separated (default: both)",
    )
    parser.add_argument("--dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    benchmarks = discover(args.dir)
    if args.names:
        unknown = set(args.names) - {p.stem for p in benchmarks}
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        benchmarks = [p for p in benchmarks if p.stem in args.names]
    if args.list:
        print("\n".join(p.stem for p in benchmarks))
        return 0
    if not benchmarks:
        print("bench/run: no benchmark found in bench/", file=sys.stderr)
        return 1
    engines = [e for e in args.engines.split(",") if e]
    unknown_engines = set(engines) - {"sqlite", "postgresql"}
    if unknown_engines or not engines:
        parser.error(f"--engines: use sqlite and/or postgresql, got {args.engines!r}")
    databases = Databases()
    figures: list[Figure] = []
    try:
        for path in benchmarks:
            if not uses_database(path) or "--db-url" in extra:
                figures += run_benchmark(path, extra, args.python)
                continue
            for engine in engines:
                url = databases.url(engine, path.stem)
                given = [] if url is None else ["--db-url", url]
                figures += run_benchmark(path, [*given, *extra], args.python, engine)
    finally:
        databases.close()
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
    else:
        print(render(figures))
    return 1 if any(f.error for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
