"""Adoption of Libervia 0.9 databases (fixture made by generate_fixture.py)."""
