"""Make a source checkout import like an installed distribution.

Installed, ``plugins/`` and ``migrations/`` become ``sat_storage.plugins`` and
``sat_storage.migrations`` (``package_dir`` in setup.cfg). In a source checkout they
sit beside the package; this finder maps exactly those two names onto them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

MAPPED = ("plugins", "migrations")


class SourceLayoutFinder(importlib.abc.MetaPathFinder):
    """Find ``sat_storage.plugins``/``sat_storage.migrations`` at the checkout's top level."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != "sat_storage" or name not in MAPPED:
            return None
        init = self.root / name / "__init__.py"
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[str(init.parent)]
        )


def install(package_dir: Path) -> None:
    """Install the finder when the package runs from a source checkout."""
    root = package_dir.parent
    if (package_dir / "plugins").is_dir() or not (root / "setup.cfg").is_file():
        return
    if not any(isinstance(f, SourceLayoutFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceLayoutFinder(root))
