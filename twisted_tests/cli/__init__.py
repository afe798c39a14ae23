"""Tests of the ``sat-storage`` command line, run as users run it (a subprocess)."""
