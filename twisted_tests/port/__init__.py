"""Tests of ``sat-storage db port`` (SQLite -> PostgreSQL)."""
