"""What a node holds: the service is asked (configuration, metadata, last item), then
the registered analysers are applied (:mod:`.analysers`). A look-up answered
item-not-found sets ``analyse["missing"]`` (the node does not exist)."""

from __future__ import annotations

import logging
from typing import Any

from sat_storage.plugins.pubsub_cache import LOGGER, hints
from sat_storage.plugins.pubsub_cache.analysers import AnalyserRegistry
from sat_storage.plugins.pubsub_cache.existence import is_missing
from sat_storage.plugins.pubsub_cache.keys import NodeKey
from twisted.internet import defer
from twisted.words.protocols.jabber import error as jabber_error
from twisted.words.protocols.jabber import jid

from sat_storage.deferreds import as_deferred
from sat_storage.exceptions import NotFound
from sat_storage.models import PubsubNode

log = logging.getLogger(f"{LOGGER}.analysis")

#: extra key of XEP-0060 get_items: False sends the request to the network
KEY_USE_CACHE = "use_cache"
#: ``extra`` of the cache's own requests: they bypass the cache (to the network)
BYPASS_CACHE = {KEY_USE_CACHE: False}


class NodeAnalysis:
    """Analyses nodes with ``analysers``, asking the service through ``xep_0060``."""

    def __init__(self, analysers: AnalyserRegistry, xep_0060: Any) -> None:
        self.analysers = analysers
        self.xep_0060 = xep_0060

    async def analyse_node(
        self,
        client: Any,
        service: jid.JID,
        node: str,
        pubsub_node: PubsubNode | None = None,
    ) -> dict[str, Any]:
        """What ``node`` holds (see ``PubsubCache.analyse_node``)."""
        analyse: dict[str, Any] = {"service": service, "node": node}
        if pubsub_node is None:
            lookups = [
                defer.ensureDeferred(self._node_configuration(client, service, node)),
                defer.ensureDeferred(self._node_metadata(client, service, node)),
            ]
            if self.analysers.needs_namespace(node):
                lookups.append(defer.ensureDeferred(self._last_namespace(client, service, node)))
            for found in await defer.gatherResults(lookups, consumeErrors=True):
                analyse.update(found)
        analyser = self.analysers.apply(analyse)
        if analyser is None:
            log.debug("%s matches no analyser", NodeKey.of(client.profile, service, node).label)
        elif "match_cb" in analyser:
            try:
                await as_deferred(analyser["match_cb"], client, analyse)
            except Exception:
                log.exception("match_cb of analyser %r failed on node %r", analyser["name"], node)
        return analyse

    async def _last_namespace(self, client: Any, service: jid.JID, node: str) -> dict[str, Any]:
        """``{"namespace": …}`` of the payload of the node's last item, or ``{}``."""
        try:
            items, _ = await self.xep_0060.get_items(
                client, service, node, 1, extra=dict(BYPASS_CACHE)
            )
        except NotFound:
            return {"missing": True}
        except Exception as e:
            log.warning("can't get the last item of node %r at %s: %s", node, service.full(), e)
            return {}
        payload = items[-1].firstChildElement() if items else None
        return {} if payload is None or not payload.uri else {"namespace": payload.uri}

    async def _node_metadata(self, client: Any, service: jid.JID, node: str) -> dict[str, Any]:
        """``{"meta": form}``: the node's disco#info metadata form (XEP-0460 hints)."""
        disco_client = getattr(client, "disco_client", None)
        if disco_client is None:
            return {}
        try:
            request = disco_client.requestInfo(service, nodeIdentifier=node)
            info = await self.xep_0060._timed(client, request)
        except Exception as e:
            if is_missing(e):
                return {"missing": True}
            log.info("metadata of node %r at %s unavailable: %s", node, service.full(), e)
            return {}
        form = hints.metadata_form(info)
        return {} if form is None else {"meta": form}

    async def _node_configuration(self, client: Any, service: jid.JID, node: str) -> dict[str, Any]:
        """``{"conf": form}`` when the service gives the node configuration, else ``{}``."""
        try:
            return {"conf": await self.xep_0060.get_configuration(client, service, node)}
        except (jabber_error.StanzaError, NotFound) as e:
            if is_missing(e):
                return {"missing": True}
            log.info("configuration of node %r at %s unavailable: %s", node, service.full(), e)
        except Exception as e:
            log.warning("can't get the configuration of node %r at %s: %s", node, service, e)
        return {}


__all__ = ["BYPASS_CACHE", "KEY_USE_CACHE", "NodeAnalysis"]
