"""The SAML replay cache in SQL, shared by every process of the host.

:class:`SqlReplayCache` implements :class:`~nulabpass.ports.SamlReplayCache`: one row per
accepted assertion (keyed by a SHA-256 of issuer and assertion id, so keys have a fixed
width), deleted once it has expired. The primary key makes "accept once" hold across
processes: of two concurrent inserts of the same key exactly one commits.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert

from nulabpass.errors import Conflict
from nulabpass.stores.sql import schema as s

if TYPE_CHECKING:
    from nulabpass.stores.sql._repositories import Db
    from nulabpass.stores.sql.store import SqlStore

__all__ = ["SqlReplayCache", "SqlSamlReplayRows"]


class SqlSamlReplayRows:
    """Rows of the SQL replay cache."""

    _t = s.saml_replay

    def __init__(self, db: Db) -> None:
        self._db = db

    def remember(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Insert ``key`` unless an unexpired row holds it; ``False`` if one does."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        t = self._t
        self._db.execute(delete(t).where(t.c.key == digest, t.c.expires_at <= now), "saml_replay")
        try:
            self._db.execute(
                insert(t).values(key=digest, expires_at=expires_at),
                "saml_replay",
                on_unique=Conflict("The assertion was already used.", code="saml.replay"),
            )
        except Conflict:
            return False
        return True

    def purge(self, now: datetime) -> None:
        """Delete expired rows (through the ``expires_at`` index)."""
        self._db.execute(delete(self._t).where(self._t.c.expires_at <= now), "saml_replay")


class SqlReplayCache:
    """A :class:`~nulabpass.ports.SamlReplayCache` in the SQL store.

    Call it outside the store's transactions: each assertion is recorded in a short
    transaction of its own, which also deletes the expired rows.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def remember(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires_at``; ``False`` if it is already recorded."""
        with self._store.transaction() as uow:
            rows = uow.saml_replay
            accepted = rows.remember(key, expires_at=expires_at, now=now)
            if accepted:
                rows.purge(now)
        return accepted
