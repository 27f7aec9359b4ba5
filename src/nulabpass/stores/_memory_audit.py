"""The in-memory audit ledger: checkpoints, purge anchors and retention periods."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from nulabpass.audit._checkpoint import Checkpoint
from nulabpass.audit._model import AuditAnchor

if TYPE_CHECKING:
    from nulabpass.stores.memory import _Tx

__all__ = ["MemoryAuditLedger"]


class MemoryAuditLedger:
    """:class:`~nulabpass.ports.AuditLedgerRepository` over the memory store's state."""

    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        if str(checkpoint.tree_size) in self._s.checkpoints.get(checkpoint.scope, {}):
            return
        self._tx.index_add(
            self._s.checkpoints, checkpoint.scope, str(checkpoint.tree_size), checkpoint
        )

    def latest_checkpoint(self, scope: str) -> Checkpoint | None:
        found = self._s.checkpoints.get(scope)
        if not found:
            return None
        return max(found.values(), key=lambda c: c.tree_size)

    def get_checkpoint(self, scope: str, tree_size: int) -> Checkpoint | None:
        found: Checkpoint | None = self._s.checkpoints.get(scope, {}).get(str(tree_size))
        return found

    def list_checkpoints(
        self, scope: str, *, min_size: int = 0, limit: int = 1000
    ) -> list[Checkpoint]:
        found = self._s.checkpoints.get(scope, {}).values()
        chosen = sorted((c for c in found if c.tree_size >= min_size), key=lambda c: c.tree_size)
        return chosen[:limit]

    def anchor(self, scope: str) -> AuditAnchor | None:
        return self._s.anchors.get(scope)

    def put_anchor(self, anchor: AuditAnchor) -> None:
        self._tx.put(self._s.anchors, anchor.scope, anchor)

    def retention_months(self, scope: str) -> int | None:
        return self._s.retention.get(scope)

    def set_retention_months(self, scope: str, months: int | None) -> None:
        if months is None:
            self._tx.pop(self._s.retention, scope)
        else:
            self._tx.put(self._s.retention, scope, months)

    def last_seq_before(self, scope: str, when: datetime) -> int:
        last = 0
        for event in self._s.events.get(scope, []):
            if event.occurred_at < when:
                last = max(last, event.seq)
        return last

    def first_seq_from(self, scope: str, when: datetime) -> int | None:
        for event in self._s.events.get(scope, []):
            if event.occurred_at >= when:
                return event.seq
        return None

    def purge_through(self, scope: str, seq: int) -> int:
        chain = self._s.events.get(scope, [])
        gone = [e for e in chain if e.seq <= seq]
        if not gone:
            return 0
        self._tx.put(self._s.events, scope, [e for e in chain if e.seq > seq])
        for event in gone:
            self._tx.pop(self._s.personal, event.id)
        return len(gone)
