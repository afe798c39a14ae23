"""General and per-profile parameters.

Parameters are text values keyed by ``(category, name)``: general ones in
``param_gen``, individual (per-profile) ones in ``param_ind``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from twisted.internet import defer

from sat_storage import engines
from sat_storage.models import ParamGen, ParamInd, Profile
from sat_storage.storage.base import StorageBase, check_type
from sat_storage.storage.checks import check_text

ParamsDict = dict[tuple[str, str], str | None]


def _check_key(category: object, name: object) -> None:
    check_text("category", category)
    check_text("name", name)


class ParamsStore(StorageBase):
    """General and per-profile parameters."""

    @staticmethod
    def load_gen_params_txn(session: Session) -> ParamsDict:
        """Every general parameter as ``{(category, name): value}``."""
        rows = session.execute(select(ParamGen.category, ParamGen.name, ParamGen.value))
        return {(category, name): value for category, name, value in rows}

    @defer.inlineCallbacks
    def load_gen_params(self, params: dict[Any, Any]) -> defer.Deferred[None]:
        """Fill ``params`` with the general parameters: ``{(category, name): value}``."""
        check_type("params", params, dict)
        params.update((yield self.db.run(self.load_gen_params_txn)))

    @staticmethod
    def load_ind_params_txn(session: Session, profile_id: int) -> ParamsDict:
        """Every parameter of a profile as ``{(category, name): value}``."""
        rows = session.execute(
            select(ParamInd.category, ParamInd.name, ParamInd.value).where(
                ParamInd.profile_id == profile_id
            )
        )
        return {(category, name): value for category, name, value in rows}

    @defer.inlineCallbacks
    def load_ind_params(self, params: dict[Any, Any], profile: str) -> defer.Deferred[None]:
        """Fill ``params`` with the parameters of ``profile``: ``{(category, name): value}``."""
        check_type("params", params, dict)
        profile_id = self.get_profile_id(profile)
        params.update((yield self.db.run(self.load_ind_params_txn, profile_id)))

    @staticmethod
    def get_ind_param_txn(
        session: Session, category: str, name: str, profile_id: int
    ) -> str | None:
        return session.execute(
            select(ParamInd.value).where(
                ParamInd.category == category,
                ParamInd.name == name,
                ParamInd.profile_id == profile_id,
            )
        ).scalar_one_or_none()

    @defer.inlineCallbacks
    def get_ind_param(self, category: str, name: str, profile: str) -> defer.Deferred[str | None]:
        """Value of a parameter of ``profile``, or None when it is not set."""
        _check_key(category, name)
        profile_id = self.get_profile_id(profile)
        return (yield self.db.run(self.get_ind_param_txn, category, name, profile_id))

    @staticmethod
    def get_ind_param_values_txn(session: Session, category: str, name: str) -> dict[str, Any]:
        rows = session.execute(
            select(Profile.name, ParamInd.value)
            .join(Profile, Profile.id == ParamInd.profile_id)
            .where(ParamInd.category == category, ParamInd.name == name)
        )
        return {profile: value for profile, value in rows}

    @defer.inlineCallbacks
    def get_ind_param_values(self, category: str, name: str) -> defer.Deferred[dict[str, Any]]:
        """Value of a parameter for every profile that set it: ``{profile: value}``."""
        _check_key(category, name)
        return (yield self.db.run(self.get_ind_param_values_txn, category, name))

    def set_gen_param_txn(self, session: Session, category: str, name: str, value: str) -> None:
        stmt = engines.upsert(self.dialect, ParamGen.__table__, ("category", "name"), ("value",))
        session.execute(stmt, {"category": category, "name": name, "value": value})

    @defer.inlineCallbacks
    def set_gen_param(self, category: str, name: str, value: str) -> defer.Deferred[None]:
        """Set (insert or replace) a general parameter."""
        _check_key(category, name)
        check_text("value", value)
        yield self.db.run(self.set_gen_param_txn, category, name, value)

    def set_ind_param_txn(
        self, session: Session, category: str, name: str, value: str, profile_id: int
    ) -> None:
        stmt = engines.upsert(
            self.dialect, ParamInd.__table__, ("category", "name", "profile_id"), ("value",)
        )
        session.execute(
            stmt, {"category": category, "name": name, "profile_id": profile_id, "value": value}
        )

    @defer.inlineCallbacks
    def set_ind_param(
        self, category: str, name: str, value: str, profile: str
    ) -> defer.Deferred[None]:
        """Set (insert or replace) a parameter of ``profile``."""
        _check_key(category, name)
        check_text("value", value)
        profile_id = self.get_profile_id(profile)
        yield self.db.run(self.set_ind_param_txn, category, name, value, profile_id)
