"""Interfaces between the host and its plugins (zope.interface).

Plugin classes need not declare them (Libervia's plugins do not): the loader checks
their shape with ``verifyClass(..., tentative=True)``.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IPlugin(Interface):
    """Main class of a plugin (``PLUGIN_INFO["main"]``), instantiated once as ``main(host)``.

    Optional hooks, called by the host when present (each may return a Deferred or be
    a coroutine function): ``profile_connecting(client)`` (before the session is
    announced, once per connection request), ``profile_connected(client)`` (each time
    a session is ready: after connecting, and again after an automatic reconnection),
    ``profile_disconnected(client)`` (each time it ends: disconnection, failed
    connection, or connection lost; connected and disconnected alternate) and
    ``stop()`` (when the host stops).
    """


class IPluginWithHandler(IPlugin):
    """A plugin whose ``PLUGIN_INFO["handler"]`` is ``"yes"``."""

    def get_handler(client: object) -> object:  # noqa: N805  (zope interface style)
        """The wokkel ``XMPPHandler`` attached to ``client`` when it connects."""


#: The optional hooks of :class:`IPlugin` and how many arguments each takes.
PLUGIN_HOOKS = {
    "profile_connecting": 1,
    "profile_connected": 1,
    "profile_disconnected": 1,
    "stop": 0,
}


class IHost(Interface):
    """What plugins may rely on in the host (``sat_storage.host.Host`` provides it)."""

    memory = Attribute("``.storage`` (the Storage) and ``.config_get(section, name, default)``")
    trigger = Attribute("the TriggerManager")
    plugins = Attribute("loaded plugins by import name")

    def check_features(client: object, namespaces: object, service: object) -> object:  # noqa: N805
        """Deferred; fails with FeatureNotFound unless ``service`` has every namespace."""

    def get_client(profile: str) -> object:  # noqa: N805
        """The connected client of ``profile``."""
