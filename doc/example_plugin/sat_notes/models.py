"""The plugin's models: on its own declarative base, never on sat_storage's."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, MetaData, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sat_storage.models import NAMING_CONVENTION, Profile


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # a core table may be referenced; the note goes with its profile
    profile_id: Mapped[int] = mapped_column(ForeignKey(Profile.id, ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    # added by revision notes_0002
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
