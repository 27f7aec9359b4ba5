"""Retention and purge: old events go, the rest stays verifiable from a signed anchor;
purges and erasures are recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import attrs
import pytest

from nulabpass import Actor, InvalidInput, NotFound, PermissionDenied
from nulabpass._runtime import HOST_SCOPE
from nulabpass.audit._service import verify_chain
from nulabpass.audit.verifier import verify_export, verify_inclusion_proof
from nulabpass.testing import (
    FrozenClock,
    MemoryKeyProvider,
)

from .conftest import World
from .test_audit_checkpoints import chain, rewrite


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2025, 1, 10, 9, 0, tzinfo=UTC))


def _history(world: World, clock: FrozenClock) -> int:
    """A paid organization with events in January 2025 and in March 2026; returns the
    sequence number of the last January event."""
    np = world.np
    np.plans.upgrade(
        world.admin,
        world.org.id,
        plan_name="pro",
        period_ends_at=datetime(2027, 1, 1, tzinfo=UTC),
        start_now=True,
    )
    carol = world.managed("carol")
    np.teams.create(world.admin, world.org.id, "Old")
    last_old = chain(np, world.org.id)[-1].seq
    clock.set(datetime(2026, 3, 15, 9, 0, tzinfo=UTC))
    np.teams.create(world.admin, world.org.id, "New")
    np.members.deactivate(world.admin, world.org.id, carol)
    return last_old


def test_the_default_retention_is_thirteen_months_and_admins_change_it(world: World) -> None:
    np = world.np
    assert np.audit.retention(world.org.id) == 13
    assert np.audit.set_retention(world.admin, world.org.id, months=24) == 24
    assert np.audit.retention(world.org.id) == 24
    assert world.events()[-1] == "audit.retention_changed"
    assert np.audit.set_retention(world.admin, world.org.id, months=None) == 13
    with pytest.raises(InvalidInput) as err:
        np.audit.set_retention(world.admin, world.org.id, months=0)
    assert err.value.code == "audit.invalid_retention"
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id)
    with pytest.raises(PermissionDenied):
        np.audit.set_retention(Actor.account(bob.id), world.org.id, months=36)
    assert np.audit.retention(world.org.id) == 13


def test_a_purge_removes_old_events_and_the_rest_still_verifies(
    world: World, clock: FrozenClock, keys: MemoryKeyProvider
) -> None:
    np = world.np
    last_old = _history(world, clock)
    report = np.audit.purge(Actor.system(), world.org.id)
    assert report.purged == last_old
    assert report.anchor is not None
    assert report.anchor.seq == last_old
    assert report.cutoff == datetime(2025, 2, 15, 9, 0, tzinfo=UTC)
    remaining = chain(np, world.org.id)
    assert remaining[0].seq == last_old + 1
    assert remaining[-1].action == "audit.purged"
    assert remaining[-1].metadata["events_purged"] == last_old
    result = np.audit.verify(world.org.id)
    assert result.ok, result.message
    assert (result.start_seq, result.checkpoints_checked) == (last_old + 1, 0)
    anchored = [c for c in np.audit.checkpoints(world.org.id) if c.tree_size == last_old]
    assert len(anchored) == 1
    cp = np.audit.checkpoint(Actor.system(), world.org.id)
    assert np.audit.verify(world.org.id).checkpoints_checked == 1
    for seq in range(last_old + 1, cp.tree_size + 1):
        verify_inclusion_proof(np.audit.inclusion_proof(world.org.id, seq), keys.public_keys())
    with pytest.raises(NotFound) as err:
        np.audit.inclusion_proof(world.org.id, 1)
    assert err.value.code == "audit.proof_unavailable"
    again = np.audit.purge(Actor.system(), world.org.id)
    assert again.purged == 0
    assert again.anchor is None


def test_a_longer_retention_keeps_more(world: World, clock: FrozenClock) -> None:
    np = world.np
    _history(world, clock)
    np.audit.set_retention(world.admin, world.org.id, months=24)
    assert np.audit.purge(Actor.system(), world.org.id).purged == 0
    assert chain(np, world.org.id)[0].seq == 1


def test_only_the_host_purges(world: World) -> None:
    with pytest.raises(PermissionDenied):
        world.np.audit.purge(world.admin, world.org.id)


def test_tampering_after_a_purge_is_still_detected(world: World, clock: FrozenClock) -> None:
    np = world.np
    last_old = _history(world, clock)
    np.audit.purge(Actor.system(), world.org.id)
    rewrite(
        np,
        world.org.id,
        lambda ev: [attrs.evolve(ev[0], action="team.deleted"), *ev[1:]],
    )
    result = np.audit.verify(world.org.id)
    assert (result.problem, result.first_broken_seq) == ("audit.hash_mismatch", last_old + 1)


def test_a_forged_anchor_is_detected(world: World, clock: FrozenClock) -> None:
    np = world.np
    last_old = _history(world, clock)
    report = np.audit.purge(Actor.system(), world.org.id)
    assert report.anchor is not None
    forged = attrs.evolve(report.anchor, frontier=tuple("00" * 32 for _ in report.anchor.frontier))
    with np.store.transaction() as uow:
        uow.audit_ledger.put_anchor(forged)
    result = np.audit.verify(world.org.id)
    assert (result.problem, result.checkpoint_size) == ("audit.anchor_mismatch", last_old)


def test_verification_can_start_at_an_explicit_anchor(world: World, clock: FrozenClock) -> None:
    np = world.np
    _history(world, clock)
    report = np.audit.purge(Actor.system(), world.org.id)
    assert report.anchor is not None
    assert verify_chain(np.store, world.org.id, anchor=report.anchor).ok
    wrong = attrs.evolve(report.anchor, prev_hash="0" * 64)
    with np.store.transaction() as uow:
        assert uow.audit_ledger.get_checkpoint(world.org.id, report.anchor.seq) is not None
    broken = verify_chain(np.store, world.org.id, anchor=wrong)
    assert broken.problem == "audit.link_broken"


def test_erasure_and_purge_leave_every_chain_verifiable_and_are_recorded(
    world: World, clock: FrozenClock, keys: MemoryKeyProvider
) -> None:
    np = world.np
    _history(world, clock)
    np.audit.purge(Actor.system(), world.org.id)
    erased = np.audit.erase_person(Actor.system(), world.founder.id)
    assert erased > 0
    assert all(r.ok for r in np.audit.verify_all())
    assert chain(np, HOST_SCOPE)[-1].action == "audit.personal_data_erased"
    assert "audit.purged" in world.events()
    export = np.audit.export(world.admin, world.org.id, fmt="jsonl")
    text = "".join(export.lines())
    assert "founder@partner.test" not in text
    first = json.loads(text.splitlines()[0])
    assert first["seq"] > 1
    verify_export([text.encode()], export.manifest(), keys.public_keys())
