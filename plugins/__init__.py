"""Plugins of sat_storage, discovered through the ``sat.plugins`` entry points."""
