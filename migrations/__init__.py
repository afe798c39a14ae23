"""Alembic environment and revisions of the sat_storage schema."""
