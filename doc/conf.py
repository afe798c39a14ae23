"""Sphinx configuration of the sat_storage documentation (built with -W in the tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "sat_storage"
author = "sat_storage developers"
copyright = "sat_storage developers, AGPL-3.0-or-later"
extensions = ["sphinx.ext.autodoc", "clidoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_typehints = "description"
autodoc_member_order = "bysource"
nitpicky = False

try:
    from importlib import metadata

    release = metadata.version("sat_storage")
except Exception:  # building from a checkout without the package installed
    release = "dev"
version = release
