"""Small helpers shared by the storage tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sat_storage import Storage


async def count_rows(storage: Storage, *tables: Any) -> int:
    """Total number of rows in ``tables`` (mapped classes), read in one transaction."""

    def txn(session: Session) -> int:
        return sum(
            session.execute(select(func.count()).select_from(t)).scalar_one() for t in tables
        )

    return await storage.db.run(txn)
