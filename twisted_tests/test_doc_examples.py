"""The documentation's runnable examples run as printed.

An example is runnable when the line before its ``.. code-block:: python`` is the
comment ``.. runnable example: ...``. Each one is run in a new Python process, in an
empty directory (files it creates stay there), and must exit 0.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

from twisted.internet import utils
from twisted.trial.unittest import SynchronousTestCase, TestCase

DOC = Path(__file__).resolve().parent.parent / "doc"
MARK = ".. runnable example:"
BLOCK = ".. code-block:: python"


def examples(path: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of the runnable examples of an .rst file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        if not line.startswith(MARK):
            continue
        start = next(i for i in range(index + 1, len(lines)) if lines[i].strip())
        if lines[start].strip() != BLOCK:
            raise AssertionError(f"{path.name}:{index + 1}: {MARK} not before {BLOCK}")
        body = []
        for text in lines[start + 1 :]:
            if text.strip() and not text.startswith(" "):
                break
            body.append(text)
        found.append((start + 1, textwrap.dedent("\n".join(body)).strip() + "\n"))
    return found


def all_examples() -> list[tuple[str, int, str]]:
    """Every runnable example of doc/, as ``(file, line, code)``."""
    return [
        (path.name, line, code)
        for path in sorted(DOC.glob("*.rst"))
        for line, code in examples(path)
    ]


class ExtractionTests(SynchronousTestCase):
    """Which examples are found."""

    def test_storage_example_is_runnable(self) -> None:
        """The storage page's first example is marked, and uses task.react."""
        found = [code for name, _line, code in all_examples() if name == "storage.rst"]
        self.assertEqual(len(found), 1)
        self.assertIn("task.react(main)", found[0])

    def test_no_top_level_await(self) -> None:
        """No runnable example awaits outside a function (it compiles as a module)."""
        for name, line, code in all_examples():
            compile(code, f"{name}:{line}", "exec")  # SyntaxError: 'await' outside function
            self.assertIsNone(re.search(r"^await ", code, re.M), f"{name}:{line}")


class RunTests(TestCase):
    """Each example, run as printed."""

    async def test_examples_run(self) -> None:
        """Every runnable example exits 0 in a fresh interpreter."""
        found = all_examples()
        self.assertGreaterEqual(len(found), 2)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAT_STORAGE_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        for name, line, code in found:
            directory = os.path.abspath(self.mktemp())
            os.makedirs(directory)
            env["HOME"] = env["XDG_DATA_HOME"] = env["XDG_CONFIG_HOME"] = directory
            out, err, status = await utils.getProcessOutputAndValue(
                sys.executable, ["-c", code], env=env, path=directory
            )
            report = f"{name}:{line} exited {status}\n{out.decode()}{err.decode()}"
            self.assertEqual(status, 0, report)
            if name == "storage.rst":
                self.assertEqual(out.decode().strip(), "alice@example.org", report)
