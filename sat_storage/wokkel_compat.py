"""Make wokkel 18.0.0 importable on current Twisted.

Import this module before any ``wokkel`` import (``import sat_storage.wokkel_compat``).
wokkel 18.0.0 was written for Twisted < 21 and:

- imports ``twisted.python.compat._PY3`` (removed from Twisted): restored as ``True``;
- imports ``twisted.python.constants`` (moved out to the ``constantly`` package):
  that module name is aliased to ``constantly``;
- uses Python 2 aliases of ``twisted.python.compat`` (``unicode``, ``iteritems``…),
  which warn with ``DeprecationWarning``: those warnings, and only when raised by a
  wokkel module, are ignored (so the suite can run with ``-W error``).
"""

from __future__ import annotations

import importlib
import sys
import warnings

import constantly
import twisted.python
import twisted.python.compat

#: Deprecated Python 2 aliases of ``twisted.python.compat`` that wokkel 18.0.0 uses.
WOKKEL_COMPAT_NAMES = ("unicode", "StringType", "iteritems", "itervalues")

#: Message of the deprecation warnings those imports raise.
DEPRECATION_MESSAGE = (
    r"twisted\.python\.compat\.(" + "|".join(WOKKEL_COMPAT_NAMES) + r") was deprecated"
)
#: A wokkel module, as a module name (``wokkel.pubsub``) or as the file path trial
#: gives when it re-raises a warning collected during a test (``…/wokkel/pubsub``).
WOKKEL_MODULE = r"^(?:wokkel\.|.*[/\\]wokkel[/\\])\w+$"


def install() -> None:
    """Apply the fixes (idempotent; done on import)."""
    if not hasattr(twisted.python.compat, "_PY3"):
        twisted.python.compat._PY3 = True
    if "twisted.python.constants" not in sys.modules:
        try:
            importlib.import_module("twisted.python.constants")  # older Twisted has it
        except ImportError:
            sys.modules["twisted.python.constants"] = constantly
            twisted.python.constants = constantly
    warnings.filterwarnings(
        "ignore", message=DEPRECATION_MESSAGE, category=DeprecationWarning, module=WOKKEL_MODULE
    )


install()
