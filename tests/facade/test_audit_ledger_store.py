"""The audit ledger repository behaves alike on every store: checkpoints, anchors,
retention periods, positions by time and purges (with their rollback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nulabpass.audit._checkpoint import Checkpoint, sign_checkpoint
from nulabpass.audit._model import AuditAnchor
from nulabpass.ports import Store
from nulabpass.testing import MemoryKeyProvider

from .conftest import World
from .test_audit_checkpoints import chain

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _cp(scope: str, size: int) -> Checkpoint:
    key = MemoryKeyProvider().audit_signing_key()
    return sign_checkpoint(scope, size, bytes(32), AT, key.key_id, key.private_key)


def test_checkpoints_are_kept_once_per_size_and_listed_smallest_first(store: Store) -> None:
    first, second, other = _cp("org_a", 5), _cp("org_a", 9), _cp("org_b", 7)
    with store.transaction() as uow:
        for cp in (second, first, other, _cp("org_a", 5)):
            uow.audit_ledger.add_checkpoint(cp)
    with store.transaction() as uow:
        ledger = uow.audit_ledger
        assert [c.tree_size for c in ledger.list_checkpoints("org_a")] == [5, 9]
        assert [c.tree_size for c in ledger.list_checkpoints("org_a", min_size=6)] == [9]
        assert ledger.list_checkpoints("org_a", limit=1)[0] == first
        assert ledger.latest_checkpoint("org_a") == second
        assert ledger.get_checkpoint("org_a", 5) == first
        assert ledger.get_checkpoint("org_a", 6) is None
        assert ledger.latest_checkpoint("org_c") is None


def test_anchors_and_retention_are_replaced_and_reset(store: Store) -> None:
    anchor = AuditAnchor("org_a", 3, "ab" * 32, ("cd" * 32, "ef" * 32), AT)
    with store.transaction() as uow:
        uow.audit_ledger.put_anchor(anchor)
        uow.audit_ledger.set_retention_months("org_a", 24)
    with store.transaction() as uow:
        assert uow.audit_ledger.anchor("org_a") == anchor
        assert uow.audit_ledger.retention_months("org_a") == 24
        later = AuditAnchor("org_a", 8, "01" * 32, ("02" * 32,), AT + timedelta(days=1))
        uow.audit_ledger.put_anchor(later)
        uow.audit_ledger.set_retention_months("org_a", None)
    with store.transaction() as uow:
        assert uow.audit_ledger.anchor("org_a") == later
        assert uow.audit_ledger.retention_months("org_a") is None
        assert uow.audit_ledger.anchor("org_b") is None


def test_positions_by_time_and_a_purge_that_rolls_back(world: World) -> None:
    np, org = world.np, world.org.id
    events = chain(np, org)
    middle = events[2]
    with np.store.transaction() as uow:
        ledger = uow.audit_ledger
        assert ledger.last_seq_before(org, events[0].occurred_at) == 0
        assert ledger.first_seq_from(org, events[-1].occurred_at + timedelta(days=1)) is None
        assert ledger.first_seq_from(org, events[0].occurred_at) == 1

    def purge_then_fail() -> None:
        with np.store.transaction() as uow:
            assert uow.audit_ledger.purge_through(org, middle.seq) == middle.seq
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        purge_then_fail()
    assert len(chain(np, org)) == len(events)
    with np.store.transaction() as uow:
        assert uow.audit_ledger.purge_through(org, middle.seq) == middle.seq
        assert uow.audit_ledger.purge_through(org, middle.seq) == 0
    remaining = chain(np, org)
    assert remaining[0].seq == middle.seq + 1
    with np.store.transaction() as uow:
        assert uow.audit.personal_for([e.id for e in events[: middle.seq]]) == {}
        assert uow.audit.head(org)[0] == events[-1].seq
