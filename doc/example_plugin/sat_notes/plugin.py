"""The NOTES plugin: reads and writes its table through the storage's gateway."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from sat_notes import store

PLUGIN_INFO = {
    "name": "Notes",
    "import_name": "NOTES",
    "type": "MISC",
    "main": "Notes",
    "schemas": ["notes"],  # not loaded when this schema is not ready
    "description": "personal notes, in a table of their own",
}
SCHEMA = "notes"


class Notes:
    def __init__(self, host: Any) -> None:
        self.storage = host.memory.storage

    def add_note(self, profile: str, title: str, body: str = "") -> Deferred[int]:
        profile_id = self.storage.get_profile_id(profile)  # checked before any SQL
        return self.storage.run_txn(SCHEMA, store.add_note_txn, profile_id, title, body)

    def pin_note(self, note_id: int) -> Deferred[None]:
        return self.storage.run_txn(SCHEMA, store.pin_note_txn, note_id)

    def get_notes(self, profile: str) -> Deferred[list[tuple[str, str, bool]]]:
        profile_id = self.storage.get_profile_id(profile)
        return self.storage.run_txn(SCHEMA, store.get_notes_txn, profile_id)
