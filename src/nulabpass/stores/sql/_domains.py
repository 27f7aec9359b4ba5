"""Domain challenges and rate-limit counters in SQL.

:class:`SqlDomainChallengeRepository` implements
:class:`~nulabpass.ports.DomainChallengeRepository`; ``due`` reads through the
``next_check_at`` index. :class:`SqlRateLimiter` implements
:class:`~nulabpass.ports.RateLimiter` with one counter row per key and window, bumped by
an upsert in its own short transaction, so that attempts count even when the action
they guard fails and rolls back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from nulabpass.domains._model import DomainChallenge
from nulabpass.errors import Conflict
from nulabpass.ports import RateDecision
from nulabpass.stores.ratelimit import window_start
from nulabpass.stores.sql import schema as s

if TYPE_CHECKING:
    from nulabpass.stores.sql._repositories import AnyRow, Db
    from nulabpass.stores.sql.store import SqlStore

__all__ = ["SqlDomainChallengeRepository", "SqlRateLimitBuckets", "SqlRateLimiter"]

#: Windows older than this many window lengths are deleted now and then.
_PURGE_AFTER_WINDOWS = 2


def _challenge(row: AnyRow) -> DomainChallenge:
    m = row._mapping
    return DomainChallenge(
        domain_id=m["domain_id"],
        org_id=m["org_id"],
        domain=m["domain"],
        token=m["token"],
        issued_at=m["issued_at"],
        expires_at=m["expires_at"],
        verified_at=m["verified_at"],
        next_check_at=m["next_check_at"],
        last_checked_at=m["last_checked_at"],
        last_outcome=m["last_outcome"],
        missing_since=m["missing_since"],
        indeterminate_since=m["indeterminate_since"],
        version=m["version"],
    )


def _values(challenge: DomainChallenge) -> dict[str, Any]:
    return attrs.asdict(challenge, recurse=False)


class SqlDomainChallengeRepository:
    """Domain challenges (:class:`~nulabpass.ports.DomainChallengeRepository`)."""

    _t = s.domain_challenges

    def __init__(self, db: Db) -> None:
        self._db = db

    def get(self, domain_id: str) -> DomainChallenge | None:
        """The challenge of one domain record, or ``None``."""
        row = self._db.first(select(self._t).where(self._t.c.domain_id == domain_id), "domain")
        return _challenge(row) if row is not None else None

    def add(self, challenge: DomainChallenge) -> None:
        """Insert; raises ``Conflict`` (``domain_challenge.exists``) if one exists."""
        if not self._db.insert_ignore(self._t, _values(challenge), "domain_challenge"):
            raise Conflict(
                f"The domain {challenge.domain} already has a challenge.",
                code="domain_challenge.exists",
            )

    def update(self, challenge: DomainChallenge) -> DomainChallenge:
        """Write with a version check; return it with the next version."""
        self._db.update_versioned(
            self._t,
            {"domain_id": challenge.domain_id},
            challenge.version,
            _values(challenge),
            "domain_challenge",
        )
        return attrs.evolve(challenge, version=challenge.version + 1)

    def delete(self, domain_id: str) -> None:
        """Remove the challenge of one domain record if present."""
        self._db.execute(
            delete(self._t).where(self._t.c.domain_id == domain_id), "domain_challenge"
        )

    def due(self, now: datetime, limit: int) -> list[DomainChallenge]:
        """Verified challenges due for a re-check, earliest first."""
        stmt = (
            select(self._t)
            .where(self._t.c.next_check_at <= now, self._t.c.verified_at.is_not(None))
            .order_by(self._t.c.next_check_at, self._db.ordered(self._t.c.domain_id))
            .limit(limit)
        )
        return [_challenge(row) for row in self._db.all(stmt, "domain_challenge")]


class SqlRateLimitBuckets:
    """Counter rows of the SQL rate limiter."""

    _t = s.rate_limit_buckets

    def __init__(self, db: Db) -> None:
        self._db = db

    def bump(self, key: str, start: datetime, limit: int) -> tuple[bool, bool]:
        """Count one attempt in the window starting at ``start`` unless ``limit`` were
        already counted; return whether it was counted and whether it was the first."""
        row = self._db.first(
            select(self._t.c.count).where(self._t.c.key == key, self._t.c.window_start == start),
            "rate_limit",
        )
        current = int(row._mapping["count"]) if row is not None else 0
        if current >= limit:
            return False, False
        values = {"key": key, "window_start": start, "count": 1}
        stmt: Insert
        if self._db.is_postgres:
            pg = postgresql.insert(self._t).values(values)
            stmt = pg.on_conflict_do_update(
                index_elements=["key", "window_start"], set_={"count": self._t.c.count + 1}
            )
        else:
            lite = sqlite.insert(self._t).values(values)
            stmt = lite.on_conflict_do_update(
                index_elements=["key", "window_start"], set_={"count": self._t.c.count + 1}
            )
        self._db.execute(stmt, "rate_limit")
        return True, current == 0

    def purge(self, before: datetime) -> None:
        """Delete the counters of windows that started before ``before``."""
        self._db.execute(delete(self._t).where(self._t.c.window_start < before), "rate_limit")


class SqlRateLimiter:
    """A :class:`~nulabpass.ports.RateLimiter` whose counters live in the SQL store, so
    every process of the host shares them.

    Call it outside the store's transactions: each attempt is counted in a transaction
    of its own, which commits even when the guarded action later fails.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def acquire(self, key: str, now: datetime, *, limit: int, window: timedelta) -> RateDecision:
        """Count one attempt under ``key`` unless ``limit`` were counted in this window."""
        start = window_start(now, window)
        with self._store.transaction() as uow:
            buckets = uow.rate_limits
            allowed, first = buckets.bump(key, start, limit)
            if first:
                # A new counter row: drop the rows of windows nobody reads any more.
                buckets.purge(start - window * _PURGE_AFTER_WINDOWS)
        return RateDecision(True) if allowed else RateDecision(False, start + window)
