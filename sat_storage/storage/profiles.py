"""Profiles and components."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage.exceptions import ConflictError, NotFound
from sat_storage.models import Component, Profile
from sat_storage.storage.base import StorageBase, check_type


class ProfilesStore(StorageBase):
    """Profiles (with their optional component entry point)."""

    @staticmethod
    def load_profiles_txn(session: Session) -> tuple[dict[str, int], dict[int, str]]:
        """All profiles as ``{name: id}`` and components as ``{profile_id: entry_point}``."""
        profiles = {name: id_ for id_, name in session.execute(select(Profile.id, Profile.name))}
        rows = session.execute(select(Component.profile_id, Component.entry_point))
        components = {row[0]: row[1] for row in rows}
        return profiles, components

    def get_profiles_list(self) -> list[str]:
        """Names of the existing profiles (answered from memory)."""
        return list(self.profiles)

    def has_profile(self, profile_name: str) -> bool:
        """True when the profile exists (answered from memory)."""
        return profile_name in self.profiles

    def profile_is_component(self, profile_name: str) -> bool:
        """True when the profile is a component (answered from memory)."""
        return self.get_profile_id(profile_name) in self.components

    def get_entry_point(self, profile_name: str) -> str:
        """Entry point of a component profile; ``NotFound`` for a client profile."""
        try:
            return self.components[self.get_profile_id(profile_name)]
        except KeyError:
            raise NotFound(f"profile {profile_name!r} is not a component") from None

    @staticmethod
    def create_profile_txn(session: Session, name: str, component_ep: str | None) -> int:
        profile = Profile(name=name)
        session.add(profile)
        try:
            session.flush()
        except IntegrityError:
            raise ConflictError(f"profile {name!r} already exists") from None
        if component_ep is not None:
            session.add(Component(profile_id=profile.id, entry_point=component_ep))
        return profile.id

    @defer.inlineCallbacks
    def create_profile(self, name: str, component_ep: str | None = None) -> defer.Deferred[None]:
        """Create a profile (a component one when ``component_ep`` is given)."""
        check_type("name", name, str)
        if not name.strip():
            raise ValueError("profile name must not be empty")
        if component_ep is not None:
            check_type("component_ep", component_ep, str)
        if name in self.profiles:
            raise ConflictError(f"profile {name!r} already exists")
        profile_id = yield self.db.run(self.create_profile_txn, name, component_ep)
        self.profiles[name] = profile_id
        if component_ep is not None:
            self.components[profile_id] = component_ep

    @staticmethod
    def delete_profile_txn(session: Session, profile_id: int) -> None:
        # Every profile-owned row cascades (ON DELETE CASCADE).
        session.execute(delete(Profile).where(Profile.id == profile_id))

    @defer.inlineCallbacks
    def delete_profile(self, name: str) -> defer.Deferred[None]:
        """Delete a profile and everything it owns."""
        profile_id = self.get_profile_id(name)
        yield self.db.run(self.delete_profile_txn, profile_id)
        del self.profiles[name]
        self.components.pop(profile_id, None)
