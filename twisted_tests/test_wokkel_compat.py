"""wokkel 18.0.0 imports on current Twisted once sat_storage.wokkel_compat is imported."""

from __future__ import annotations

import subprocess
import sys
import warnings

from twisted.trial.unittest import TestCase

import sat_storage.wokkel_compat as compat

MODULES = ("wokkel.pubsub", "wokkel.disco", "wokkel.data_form", "wokkel.client", "wokkel.muc")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with warnings as errors."""
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class WokkelCompatTests(TestCase):
    def test_fresh_import_with_warnings_as_errors(self) -> None:
        """A fresh interpreter under ``-W error`` imports the wokkel modules we use."""
        imports = "; ".join(f"import {name}" for name in MODULES)
        result = run_python(f"import sat_storage.wokkel_compat; {imports}")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_without_compat_import_fails(self) -> None:
        """Without the compat module wokkel does not import (so the module is needed)."""
        result = run_python("import wokkel.data_form")
        self.assertNotEqual(result.returncode, 0)

    def test_constants_alias(self) -> None:
        """``twisted.python.constants`` gives constantly's classes (used by wokkel.muc)."""
        import constantly
        import wokkel.muc

        self.assertIs(wokkel.muc.Values, constantly.Values)

    def test_py3_flag(self) -> None:
        """``twisted.python.compat._PY3`` is true."""
        import twisted.python.compat

        self.assertIs(twisted.python.compat._PY3, True)

    def test_other_deprecations_still_warn(self) -> None:
        """The filter is precise: the same deprecation outside wokkel still warns."""
        import twisted.python.compat

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            compat.install()  # our filter goes on top of "default"
            twisted.python.compat.iteritems({})
        self.assertEqual([w.category for w in caught], [DeprecationWarning])

    def test_wokkel_path_form_matches(self) -> None:
        """The module pattern matches the path form trial uses when re-raising warnings."""
        import re

        pattern = re.compile(compat.WOKKEL_MODULE)
        self.assertTrue(pattern.match("wokkel.pubsub"))
        self.assertTrue(pattern.match("/venv/lib/python3.11/site-packages/wokkel/pubsub"))
        self.assertFalse(pattern.match("mywokkel.pubsub"))
        self.assertFalse(pattern.match("sat_storage.xmpp"))
