"""Signed checkpoints and proofs: tampering of every kind is detected and named, on every
store, and proofs verify offline with only the public keys."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
import sqlalchemy as sa

from nulabpass import Actor, NulabPass, PermissionDenied
from nulabpass.audit._chain import event_hash
from nulabpass.audit._model import EventRecord
from nulabpass.audit.verifier import (
    AuditVerificationError,
    ConsistencyProof,
    InclusionProof,
    verify_checkpoint,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from nulabpass.stores.memory import MemoryStore
from nulabpass.testing import (
    MemoryKeyProvider,
)

from .conftest import World

Edit = Callable[[list[EventRecord]], list[EventRecord]]


def chain(np: NulabPass, scope: str) -> list[EventRecord]:
    with np.store.transaction() as uow:
        return list(uow.audit.iter_chain(scope))


def rewrite(np: NulabPass, scope: str, edit: Edit) -> None:
    """Replace a chain's stored events with ``edit(events)``, bypassing every check, as
    someone with write access to the database could."""
    events = edit(chain(np, scope))
    store = np.store
    if isinstance(store, MemoryStore):
        store._state.events[scope] = events
        return
    from nulabpass.stores.sql import schema
    from nulabpass.stores.sql._repositories import _event_values

    engine = store.bind  # type: ignore[attr-defined]
    p, t, e = schema.audit_personal, schema.audit_targets, schema.audit_events
    with engine.begin() as conn:
        old_ids = select_ids = sa.select(e.c.id).where(e.c.scope == scope)
        rows = conn.execute(sa.select(p).where(p.c.event_id.in_(select_ids))).mappings().all()
        conn.execute(sa.delete(p).where(p.c.event_id.in_(old_ids)))
        conn.execute(sa.delete(t).where(t.c.scope == scope))
        conn.execute(sa.delete(e).where(e.c.scope == scope))
        ids = {event.id for event in events}
        for event in events:
            conn.execute(sa.insert(e).values(_event_values(event)))
            for position, target in enumerate(event.targets):
                conn.execute(
                    sa.insert(t).values(
                        event_id=event.id,
                        scope=scope,
                        position=position,
                        type=target.type,
                        target_id=target.id,
                    )
                )
        for row in rows:
            if row["event_id"] in ids:
                conn.execute(sa.insert(p).values(dict(row)))


def rehash(events: list[EventRecord], start: int) -> list[EventRecord]:
    """Recompute hashes and links from index ``start`` on (a careful forger)."""
    out = list(events[:start])
    prev = out[-1].hash if out else "0" * 64
    for original in events[start:]:
        linked = attrs.evolve(original, prev_hash=prev)
        sealed = attrs.evolve(linked, hash=event_hash(linked))
        out.append(sealed)
        prev = sealed.hash
    return out


def signed(world: World) -> int:
    """Add a few events and sign a checkpoint; return its tree size."""
    for name in ("Ops", "Sales", "Legal"):
        world.np.teams.create(world.admin, world.org.id, name)
    return world.np.audit.checkpoint(Actor.system(), world.org.id).tree_size


def test_a_checkpoint_covers_the_log_and_verifies_offline(
    world: World, keys: MemoryKeyProvider
) -> None:
    np = world.np
    size = signed(world)
    assert size == len(chain(np, world.org.id)) - 1  # the checkpoint event follows it
    cp = np.audit.checkpoints(world.org.id)[-1]
    assert verify_checkpoint(cp, keys.public_keys()) == cp
    assert chain(np, world.org.id)[-1].action == "audit.checkpoint_signed"
    result = np.audit.verify(world.org.id)
    assert result.ok
    assert result.checkpoints_checked == 1
    assert result.signatures_checked
    forged = attrs.evolve(cp, tree_size=cp.tree_size + 1)
    with pytest.raises(AuditVerificationError) as err:
        verify_checkpoint(forged, keys.public_keys())
    assert err.value.code == "audit.checkpoint_signature_invalid"
    with pytest.raises(AuditVerificationError) as err:
        verify_checkpoint(cp, {})
    assert err.value.code == "audit.checkpoint_unknown_key"


def test_only_the_host_signs_checkpoints(world: World) -> None:
    with pytest.raises(PermissionDenied):
        world.np.audit.checkpoint(world.admin, world.org.id)


def test_rotated_keys_verify_by_key_id(world: World, keys: MemoryKeyProvider) -> None:
    np = world.np
    first = np.audit.checkpoint(Actor.system(), world.org.id)
    new_id = keys.rotate()
    second = np.audit.checkpoint(Actor.system(), world.org.id)
    assert first.key_id != second.key_id
    assert second.key_id == new_id
    assert np.audit.verify(world.org.id).checkpoints_checked == 2
    keys.forget(first.key_id)
    result = np.audit.verify(world.org.id)
    assert (result.ok, result.problem, result.checkpoint_size) == (
        False,
        "audit.checkpoint_unknown_key",
        first.tree_size,
    )


def _modify(events: list[EventRecord]) -> list[EventRecord]:
    events[3] = attrs.evolve(events[3], action="team.renamed")
    return events


def _delete(events: list[EventRecord]) -> list[EventRecord]:
    del events[3]
    return events


def _insert(events: list[EventRecord]) -> list[EventRecord]:
    forged = attrs.evolve(events[3], id="evt_forged", seq=5)
    return [*events[:4], forged, *[attrs.evolve(e, seq=e.seq + 1) for e in events[4:]]]


def _reorder(events: list[EventRecord]) -> list[EventRecord]:
    # Swap two events' positions (their sequence numbers, as a store orders by them).
    a, b = events[3], events[4]
    events[3], events[4] = attrs.evolve(b, seq=a.seq), attrs.evolve(a, seq=b.seq)
    return events


@pytest.mark.parametrize(
    ("edit", "problem", "at"),
    [
        (_modify, "audit.hash_mismatch", 4),
        (_delete, "audit.sequence_gap", 5),
        (_insert, "audit.link_broken", 5),
        (_reorder, "audit.link_broken", 4),
    ],
    ids=["modified", "deleted", "inserted", "reordered"],
)
def test_tampering_is_detected_and_the_first_event_at_fault_named(
    world: World, edit: Edit, problem: str, at: int
) -> None:
    signed(world)
    rewrite(world.np, world.org.id, edit)
    result = world.np.audit.verify(world.org.id)
    assert (result.ok, result.problem, result.first_broken_seq) == (False, problem, at)


@pytest.mark.parametrize(
    "edit",
    [
        lambda ev: rehash([*ev[:3], attrs.evolve(ev[3], action="team.renamed"), *ev[4:]], 3),
        lambda ev: rehash([*ev[:3], *[attrs.evolve(e, seq=e.seq - 1) for e in ev[4:]]], 3),
    ],
    ids=["modified-and-rehashed", "deleted-and-rehashed"],
)
def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(world: World, edit: Edit) -> None:
    size = signed(world)
    rewrite(world.np, world.org.id, edit)
    result = world.np.audit.verify(world.org.id)
    assert (result.ok, result.problem, result.checkpoint_size) == (
        False,
        "audit.checkpoint_mismatch",
        size,
    )


def test_events_removed_from_the_end_are_caught_by_the_checkpoint(world: World) -> None:
    size = signed(world)
    rewrite(world.np, world.org.id, lambda ev: ev[: size - 2])
    result = world.np.audit.verify(world.org.id)
    assert (result.ok, result.problem, result.checkpoint_size) == (
        False,
        "audit.checkpoint_beyond_log",
        size,
    )


def test_a_checkpoint_altered_in_the_store_fails_its_signature(
    world: World, keys: MemoryKeyProvider
) -> None:
    np = world.np
    size = signed(world)
    other = MemoryKeyProvider()
    forged = np.audit.checkpoints(world.org.id)[-1]
    with np.store.transaction() as uow:
        # A checkpoint of a different size, signed by a key the organization never had.
        from nulabpass.audit._checkpoint import sign_checkpoint
        from nulabpass.audit._merkle import EMPTY_ROOT

        key = other.audit_signing_key()
        fake = sign_checkpoint(
            world.org.id, 2, EMPTY_ROOT, forged.issued_at, key.key_id, key.private_key
        )
        uow.audit_ledger.add_checkpoint(fake)
    result = np.audit.verify(world.org.id)
    assert (result.ok, result.problem, result.checkpoint_size) == (
        False,
        "audit.checkpoint_unknown_key",
        2,
    )
    unsigned = np.audit.verify(world.org.id, public_keys=lambda key_id: None)
    assert unsigned.problem == "audit.checkpoint_unknown_key"
    assert size > 2


def test_inclusion_proofs_verify_offline_for_every_event(
    world: World, keys: MemoryKeyProvider
) -> None:
    np = world.np
    size = signed(world)
    for seq in range(1, size + 1):
        proof = np.audit.inclusion_proof(world.org.id, seq)
        again = InclusionProof.from_json(proof.to_json())
        verify_inclusion_proof(again, keys.public_keys())
    wrong = attrs.evolve(proof, event_hash="0" * 64)
    with pytest.raises(AuditVerificationError) as err:
        verify_inclusion_proof(wrong, keys.public_keys())
    assert err.value.code == "audit.inclusion_invalid"


def test_consistency_proofs_show_the_old_log_is_a_prefix_of_the_new(
    world: World, keys: MemoryKeyProvider
) -> None:
    np = world.np
    first = np.audit.checkpoint(Actor.system(), world.org.id)
    second_size = signed(world)
    proof = np.audit.consistency_proof(world.org.id, first.tree_size, second_size)
    verify_consistency_proof(ConsistencyProof.from_json(proof.to_json()), keys.public_keys())
    swapped = attrs.evolve(proof, path=tuple(reversed(proof.path)))
    with pytest.raises(AuditVerificationError) as err:
        verify_consistency_proof(swapped, keys.public_keys())
    assert err.value.code == "audit.consistency_invalid"


def test_a_checkpoint_refuses_to_vouch_for_a_broken_chain(world: World) -> None:
    signed(world)
    world.np.teams.create(world.admin, world.org.id, "After")
    rewrite(world.np, world.org.id, lambda ev: [*ev[:-2], ev[-1]])
    from nulabpass import Conflict

    with pytest.raises(Conflict) as err:
        world.np.audit.checkpoint(Actor.system(), world.org.id)
    assert err.value.code == "audit.chain_broken"
