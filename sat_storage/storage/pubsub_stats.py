"""Figures of the pubsub cache: nodes by sync state, nodes/items/bytes by type."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage import engines
from sat_storage.models import PubsubItem, PubsubNode, SyncState
from sat_storage.storage.base import StorageBase, as_deferred
from sat_storage.storage.pubsub_filters import in_filters, profile_ids

__all__ = ["PubsubStatsStore"]


def _none_first(values: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    """Sort key of a tuple of optional strings: None before any string."""
    return tuple((value is not None, value or "") for value in values)


class PubsubStatsStore(StorageBase):
    """Figures of the pubsub cache (read only)."""

    def get_pubsub_stats_txn(
        self, session: Session, profile_ids: list[int] | None
    ) -> dict[str, Any]:
        by_state: dict[SyncState | None, int] = {}
        by_type: dict[tuple[str | None, str | None], list[int]] = {}
        xml_size = func.coalesce(func.sum(engines.byte_length(self.dialect, PubsubItem.data)), 0)
        for clauses in in_filters([(PubsubNode.profile_id, profile_ids)]):
            states = select(PubsubNode.sync_state, func.count()).where(*clauses)
            for state, count in session.execute(states.group_by(PubsubNode.sync_state)):
                by_state[state] = by_state.get(state, 0) + count
            types = (
                select(
                    PubsubNode.type_,
                    PubsubNode.subtype,
                    func.count(PubsubNode.id.distinct()),
                    func.count(PubsubItem.id),
                    xml_size,
                )
                .outerjoin(PubsubItem, PubsubItem.node_id == PubsubNode.id)
                .where(*clauses)
                .group_by(PubsubNode.type_, PubsubNode.subtype)
            )
            for type_, subtype, *figures in session.execute(types):
                totals = by_type.setdefault((type_, subtype), [0, 0, 0])
                for index, value in enumerate(figures):
                    totals[index] += int(value)
        rows = [
            {"type": t, "subtype": st, "nodes": nodes, "items": items, "size": size}
            for (t, st), (nodes, items, size) in sorted(
                by_type.items(), key=lambda entry: _none_first(entry[0])
            )
        ]
        return {
            "nodes": sum(by_state.values()),
            "items": sum(row["items"] for row in rows),
            "size": sum(row["size"] for row in rows),
            "by_state": by_state,
            "by_type": rows,
        }

    @as_deferred
    def get_pubsub_stats(self, profiles: list[str] | None = None) -> defer.Deferred[dict[str, Any]]:
        """Figures of the cache, for ``profiles`` (None: every profile).

        Returns ``nodes``, ``items`` and ``size`` (bytes of item XML) in all,
        ``by_state`` (``{SyncState or None: nodes}``, None = never synchronised) and
        ``by_type`` (a list of ``{"type", "subtype", "nodes", "items", "size"}``,
        ordered by type then subtype, None first).
        """
        ids = profile_ids(self.get_profile_id, profiles)
        return self.db.run(self.get_pubsub_stats_txn, ids)
