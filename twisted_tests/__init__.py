"""Trial test suite of sat_storage."""
