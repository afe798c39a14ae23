"""An example plugin with a table of its own (see doc/storage.rst)."""
