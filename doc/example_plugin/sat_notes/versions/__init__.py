"""Revisions of the notes schema (its Alembic branch)."""
