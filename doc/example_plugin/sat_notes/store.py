"""The plugin's transactions: synchronous ``*_txn`` functions, a Session first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from sat_notes.models import Note


def add_note_txn(session: Session, profile_id: int, title: str, body: str = "") -> int:
    note = Note(profile_id=profile_id, title=title, body=body)
    session.add(note)
    session.flush()
    return note.id


def pin_note_txn(session: Session, note_id: int) -> None:
    session.get_one(Note, note_id).pinned = True


def get_notes_txn(session: Session, profile_id: int) -> list[tuple[str, str, bool]]:
    rows = session.execute(
        select(Note.title, Note.body, Note.pinned)
        .where(Note.profile_id == profile_id)
        .order_by(Note.id)
    )
    return [tuple(row) for row in rows]
