"""The Sphinx documentation builds without a warning (``sphinx-build -W``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet import utils
from twisted.trial.unittest import TestCase

DOC = Path(__file__).resolve().parent.parent / "doc"


class DocsTests(TestCase):
    """Building doc/ as CI does."""

    async def test_build_html(self) -> None:
        """sphinx-build -W -b html succeeds: every page, autodoc entry and the CLI reference."""
        try:
            import sphinx  # noqa: F401
        except ImportError:
            self.skipTest("sphinx is not installed (pip install .[test])")
        out_dir = os.path.abspath(self.mktemp())
        args = ["-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOC), out_dir]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        out, err, code = await utils.getProcessOutputAndValue(sys.executable, args, env=env)
        self.assertEqual(code, 0, (out + err).decode(errors="replace"))
        html = (Path(out_dir) / "pubsub_cache.html").read_text(encoding="utf-8")
        self.assertIn("register_analyser", html)
        storage = (Path(out_dir) / "storage.html").read_text(encoding="utf-8")
        self.assertIn("Giving your plugin its own tables", storage)
        self.assertIn("add_note_txn", storage)  # the example plugin's code is shown
        libervia = (Path(out_dir) / "libervia.html").read_text(encoding="utf-8")
        self.assertIn("Coming from Libervia 0.9", libervia)
        self.assertIn("libervia-0.9.bak", libervia)
        cli = (Path(out_dir) / "cli.html").read_text(encoding="utf-8")
        self.assertIn("sat-storage cache search", cli)
