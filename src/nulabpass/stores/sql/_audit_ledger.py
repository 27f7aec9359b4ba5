"""The SQL audit ledger: checkpoints, purge anchors, retention periods and purging."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from nulabpass.audit._checkpoint import Checkpoint
from nulabpass.audit._model import AuditAnchor
from nulabpass.stores.sql import schema as s
from nulabpass.stores.sql._repositories import Db

__all__ = ["SqlAuditLedgerRepository"]


def _checkpoint(m: Any) -> Checkpoint:
    return Checkpoint(
        scope=m["scope"],
        tree_size=int(m["tree_size"]),
        root_hash=m["root_hash"],
        issued_at=m["issued_at"],
        key_id=m["key_id"],
        signature=m["signature"],
        frontier=tuple(m["frontier"]),
    )


class SqlAuditLedgerRepository:
    """:class:`~nulabpass.ports.AuditLedgerRepository` on SQLAlchemy Core.

    Every query is keyed by scope: checkpoints by their primary key ``(scope,
    tree_size)``, event positions through ``(scope, occurred_at)`` and ``(scope, seq)``.
    """

    _c = s.audit_checkpoints
    _a = s.audit_anchors
    _r = s.audit_retention
    _e = s.audit_events

    def __init__(self, db: Db) -> None:
        self._db = db

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint unless one of the same size exists."""
        values = {
            "scope": checkpoint.scope,
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash,
            "issued_at": checkpoint.issued_at,
            "key_id": checkpoint.key_id,
            "signature": checkpoint.signature,
            "frontier": list(checkpoint.frontier),
        }
        self._db.insert_ignore(self._c, values, "audit checkpoint")

    def latest_checkpoint(self, scope: str) -> Checkpoint | None:
        """The largest checkpoint of ``scope``."""
        stmt = (
            select(self._c)
            .where(self._c.c.scope == scope)
            .order_by(self._c.c.tree_size.desc())
            .limit(1)
        )
        row = self._db.first(stmt, "audit checkpoint")
        return None if row is None else _checkpoint(row._mapping)

    def get_checkpoint(self, scope: str, tree_size: int) -> Checkpoint | None:
        """The checkpoint of ``scope`` over exactly ``tree_size`` events."""
        stmt = select(self._c).where(self._c.c.scope == scope, self._c.c.tree_size == tree_size)
        row = self._db.first(stmt, "audit checkpoint")
        return None if row is None else _checkpoint(row._mapping)

    def list_checkpoints(
        self, scope: str, *, min_size: int = 0, limit: int = 1000
    ) -> list[Checkpoint]:
        """Checkpoints of ``scope`` from ``min_size`` on, smallest first."""
        stmt = (
            select(self._c)
            .where(self._c.c.scope == scope, self._c.c.tree_size >= min_size)
            .order_by(self._c.c.tree_size)
            .limit(limit)
        )
        return [_checkpoint(r._mapping) for r in self._db.all(stmt, "audit checkpoint")]

    def anchor(self, scope: str) -> AuditAnchor | None:
        """The purge anchor of ``scope``."""
        row = self._db.first(select(self._a).where(self._a.c.scope == scope), "audit anchor")
        if row is None:
            return None
        m = row._mapping
        return AuditAnchor(
            scope=m["scope"],
            seq=int(m["seq"]),
            prev_hash=m["prev_hash"],
            frontier=tuple(m["frontier"]),
            recorded_at=m["recorded_at"],
        )

    def put_anchor(self, anchor: AuditAnchor) -> None:
        """Insert or replace the purge anchor of ``anchor.scope``."""
        values = {
            "scope": anchor.scope,
            "seq": anchor.seq,
            "prev_hash": anchor.prev_hash,
            "frontier": list(anchor.frontier),
            "recorded_at": anchor.recorded_at,
        }
        self._db.upsert(self._a, values, ("scope",), "audit anchor")

    def retention_months(self, scope: str) -> int | None:
        """The retention period of ``scope``, if one was set."""
        stmt = select(self._r.c.months).where(self._r.c.scope == scope)
        row = self._db.first(stmt, "audit retention")
        return None if row is None else int(row._mapping["months"])

    def set_retention_months(self, scope: str, months: int | None) -> None:
        """Set or reset the retention period of ``scope``."""
        if months is None:
            self._db.execute(delete(self._r).where(self._r.c.scope == scope), "audit retention")
            return
        self._db.upsert(self._r, {"scope": scope, "months": months}, ("scope",), "audit retention")

    def last_seq_before(self, scope: str, when: datetime) -> int:
        """The largest ``seq`` of ``scope`` that occurred before ``when``."""
        stmt = select(func.max(self._e.c.seq)).where(
            self._e.c.scope == scope, self._e.c.occurred_at < when
        )
        return self._db.scalar_int(stmt, "audit event")

    def first_seq_from(self, scope: str, when: datetime) -> int | None:
        """The smallest ``seq`` of ``scope`` that occurred at or after ``when``."""
        stmt = select(func.min(self._e.c.seq)).where(
            self._e.c.scope == scope, self._e.c.occurred_at >= when
        )
        value = self._db.execute(stmt, "audit event").scalar()
        return None if value is None else int(value)

    def purge_through(self, scope: str, seq: int) -> int:
        """Delete the events of ``scope`` up to ``seq`` with their targets and personal
        data (children first: they reference the events)."""
        ids = select(self._e.c.id).where(self._e.c.scope == scope, self._e.c.seq <= seq)
        self._db.execute(
            delete(s.audit_targets).where(s.audit_targets.c.event_id.in_(ids)), "audit event"
        )
        self._db.execute(
            delete(s.audit_personal).where(s.audit_personal.c.event_id.in_(ids)), "audit event"
        )
        stmt = delete(self._e).where(self._e.c.scope == scope, self._e.c.seq <= seq)
        return int(self._db.execute(stmt, "audit event").rowcount)
