"""Fake plugin distributions for loader and host tests.

:func:`fake_distribution` writes a package of plugin modules and a ``*.dist-info``
(METADATA + entry_points.txt) into a temporary directory put on ``sys.path``, as
pip would install them; everything is undone at the test's cleanup.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import uuid
from pathlib import Path

from twisted.trial.unittest import TestCase

GROUP = "sat.plugins"


def plugin_source(
    import_name: str,
    dependencies: list[str] | tuple[str, ...] = (),
    recommendations: list[str] | tuple[str, ...] = (),
    *,
    handler: str = "no",
    body: str = "",
    info: str = "",
) -> str:
    """A plugin module: class ``Main`` records its import name in ``host.load_order``.

    ``body`` is added to the class (indented by 4), ``info`` to PLUGIN_INFO.
    """
    body = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f'''
PLUGIN_INFO = {{
    "name": "Fake {import_name}",
    "import_name": {import_name!r},
    "type": "MISC",
    "modes": ["client"],
    "dependencies": {list(dependencies)!r},
    "recommendations": {list(recommendations)!r},
    "main": "Main",
    "handler": {handler!r},
    "description": "fake plugin for tests",
    {info}
}}


class Main:
    def __init__(self, host):
        self.host = host
        host.load_order.append({import_name!r})

{body}
'''


def fake_distribution(
    testcase: TestCase, plugins: dict[str, str], group: str = GROUP
) -> str:
    """Install ``{entry point name: module source}`` as a distribution; its directory."""
    root = Path(testcase.mktemp()).resolve()
    package = f"fakeplugins_{uuid.uuid4().hex[:10]}"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    lines = [f"[{group}]"]
    for entry, source in plugins.items():
        module = "plugin_" + re.sub(r"\W", "_", entry).lower()
        (root / package / f"{module}.py").write_text(source)
        lines.append(f"{entry} = {package}.{module}")
    dist_info = root / f"{package}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()

    def uninstall() -> None:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()

    testcase.addCleanup(uninstall)
    return os.fspath(root)
