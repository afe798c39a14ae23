"""Names of one cached node: ``NodeKey`` (profile, service, node) and its helpers."""

from __future__ import annotations

from typing import Any, NamedTuple

from twisted.words.protocols.jabber import jid


class NodeKey(NamedTuple):
    """One profile's cache of one node; equal to the plain ``(profile, service, node)``
    tuple (the keys of :class:`~.sync.SyncManager` and of the node locks)."""

    profile: str
    service: str  # full JID
    node: str

    @classmethod
    def of(cls, profile: str, service: jid.JID | str, node: str) -> NodeKey:
        """The key of ``node`` at ``service`` (a JID or its full form) for ``profile``."""
        return cls(profile, service.full() if isinstance(service, jid.JID) else service, node)

    @property
    def service_jid(self) -> jid.JID:
        """The service, as the storage takes it."""
        return jid.JID(self.service)

    @property
    def where(self) -> tuple[str, str]:
        """(service, node): the node whatever the profile."""
        return self.service, self.node

    @property
    def label(self) -> str:
        """The node for logs and errors: ``node 'n' at s [profile]``."""
        return f"node {self.node!r} at {self.service} [{self.profile}]"


class ProfileClient:
    """What the storage needs of a client: the profile (for another profile's cache)."""

    def __init__(self, profile: str) -> None:
        self.profile = profile


def profile_names(storage: Any) -> dict[int, str]:
    """Profile id -> name, as the storage knows them now."""
    return {id_: name for name, id_ in storage.profiles.items()}


def key_of(storage_node: Any, names: dict[int, str]) -> NodeKey:
    """The key of a stored node (``names``: :func:`profile_names`)."""
    return NodeKey.of(names[storage_node.profile_id], storage_node.service, storage_node.name)


__all__ = ["NodeKey", "ProfileClient", "key_of", "profile_names"]
