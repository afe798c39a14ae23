"""``bench/run``'s aggregator: the --json contract, ratios, failures."""

from __future__ import annotations

import importlib.util
import io
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from twisted.trial.unittest import TestCase

ROOT = Path(__file__).resolve().parent.parent


def load_report():
    """Import bench/report.py (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


report = load_report()


class ParseTests(TestCase):
    """Reading one benchmark's JSON document."""

    def test_ratio_to_named_baseline(self) -> None:
        """A result naming its baseline gets value / baseline value."""
        figures = report.parse(
            "cache_items",
            {
                "results": [
                    {"name": "raw", "value": 200.0, "unit": "items/s"},
                    {"name": "cache", "value": 150.0, "unit": "items/s", "baseline": "raw"},
                ]
            },
        )
        self.assertEqual([(f.name, f.ratio) for f in figures], [("raw", None), ("cache", 0.75)])

    def test_given_ratio_kept(self) -> None:
        """A ratio given by the benchmark is shown as is."""
        (figure,) = report.parse("x", [{"label": "hit", "median_ms": 2.0, "ratio": 40}])
        self.assertEqual((figure.name, figure.unit, figure.ratio), ("hit", "ms", 40.0))

    def test_flat_object(self) -> None:
        """A flat ``{name: number}`` object gives one figure per number."""
        figures = report.parse("search", {"median_ms": 12.5, "note": "text"})
        self.assertEqual([(f.name, f.value) for f in figures], [("median_ms", 12.5)])

    def test_no_figure(self) -> None:
        """A document without any number is an error naming the benchmark."""
        with self.assertRaisesRegex(ValueError, "paging"):
            report.parse("paging", {"results": [{"name": "x"}]})


class RunTests(TestCase):
    """Running scripts of a bench directory."""

    def bench_dir(self, scripts: dict[str, str]) -> Path:
        """A directory holding ``scripts`` ({file name: code})."""
        directory = Path(self.mktemp())
        directory.mkdir()
        for name, code in scripts.items():
            (directory / name).write_text(textwrap.dedent(code), encoding="utf-8")
        return directory

    def run_report(self, directory: Path, *args: str) -> tuple[int, str]:
        """Exit code and stdout of the aggregator on ``directory``."""
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            code = report.main(["--dir", str(directory), "--python", sys.executable, *args])
        return code, out.getvalue()

    GOOD = """
        import json, sys
        assert "--json" in sys.argv
        if __name__ == "__main__":
            print(json.dumps({"results": [{"name": "base", "value": 10},
                                          {"name": "fast", "value": 30, "baseline": "base"}]}))
        """

    def test_table(self) -> None:
        """Every benchmark's figures appear in one table with their ratio."""
        code, out = self.run_report(self.bench_dir({"good.py": self.GOOD, "_util.py": "x = 1"}))
        self.assertEqual(code, 0, out)
        self.assertIn("3.00x", out)
        self.assertIn("good", out)

    def test_failed_benchmark(self) -> None:
        """A benchmark that fails is shown as failed; the others still run; exit 1."""
        broken = 'import sys\nif __name__ == "__main__":\n    sys.exit(3)\n'
        directory = self.bench_dir({"good.py": self.GOOD, "broken.py": broken})
        code, out = self.run_report(directory)
        self.assertEqual(code, 1)
        self.assertIn("FAILED: exit code 3", out)
        self.assertIn("3.00x", out)

    def test_json_output(self) -> None:
        """--json prints the figures as a JSON list."""
        import json

        code, out = self.run_report(self.bench_dir({"good.py": self.GOOD}), "--json")
        self.assertEqual([f["name"] for f in json.loads(out)], ["base", "fast"])

    def test_arguments_for_benchmarks(self) -> None:
        """Arguments after -- reach every benchmark; names before it select them."""
        echo = """
            import json, sys
            if __name__ == "__main__":
                print(json.dumps({"results": [{"name": " ".join(sys.argv[1:]), "value": 1}]}))
            """
        directory = self.bench_dir({"echo.py": echo, "good.py": self.GOOD})
        code, out = self.run_report(directory, "echo", "--json", "--", "--runs", "1")
        self.assertEqual(code, 0, out)
        import json

        self.assertEqual([f["name"] for f in json.loads(out)], ["--json --runs 1"])
