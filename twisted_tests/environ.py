"""Environment variables changed for the length of one test."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase


def set_env(testcase: TestCase, **values: str | None) -> None:
    """Set (None: remove) environment variables; the old values come back at cleanup."""
    for name, value in values.items():
        testcase.addCleanup(_restore, name, os.environ.get(name))
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
