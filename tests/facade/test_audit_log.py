"""The audit chain: every action recorded, reads permitted to the right people,
tampering detected, erasure leaving the chain verifiable."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from nulabpass import Actor, InvalidInput, NulabPass, PermissionDenied, RequestContext, Role
from nulabpass.audit._catalogue import ACTIONS
from nulabpass.ports import Store
from nulabpass.testing import FrozenClock

from .conftest import World, chain_actions


def test_every_recorded_action_is_catalogued(world: World) -> None:
    world.managed("carol")
    assert set(chain_actions(world.np, world.org.id)) <= set(ACTIONS)


def test_query_filters_and_cursor_paging(world: World, clock: FrozenClock) -> None:
    np = world.np
    start = clock.now()
    names = [f"Team {i}" for i in range(7)]
    created = []
    for name in names:
        clock.advance(minutes=1)
        created.append(np.teams.create(world.admin, world.org.id, name))
    page = np.audit.query(world.admin, world.org.id, actions=["team.created"], limit=3)
    seen = [e.targets[0].id for e in page.entries]
    while page.next_cursor:
        page = np.audit.query(
            world.admin, world.org.id, actions=["team.created"], limit=3, cursor=page.next_cursor
        )
        seen += [e.targets[0].id for e in page.entries]
    # Newest first, every team once, the world's own team last.
    assert seen == [t.id for t in reversed(created)] + [world.team.id]
    window = np.audit.query(
        world.admin,
        world.org.id,
        since=start + timedelta(minutes=2),
        until=start + timedelta(minutes=4),
        actions=["team.created"],
    )
    assert [e.targets[0].id for e in window.entries] == [created[2].id, created[1].id]
    by_target = np.audit.query(world.admin, world.org.id, target_id=created[3].id)
    assert [e.action for e in by_target.entries] == ["team.created"]
    by_actor = np.audit.query(world.admin, world.org.id, actor_id="system")
    assert {e.action for e in by_actor.entries} == {"saml.configured", "domain.verified"}


def test_reading_is_itself_recorded(world: World) -> None:
    world.np.audit.query(world.admin, world.org.id, limit=1)
    assert world.events()[-1] == "audit.read"


def test_only_admins_and_audit_log_admins_read(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id, role=Role.MEMBER)
    with pytest.raises(PermissionDenied) as err:
        np.audit.query(Actor.account(bob.id), world.org.id)
    assert err.value.code == "permission.read_audit_log"
    np.members.set_privileges(world.admin, world.org.id, bob.id, audit_log_admin=True)
    assert np.audit.query(Actor.account(bob.id), world.org.id).entries


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"limit": 0}, "audit.invalid_limit"),
        ({"limit": 5000}, "audit.invalid_limit"),
        ({"cursor": "not-a-cursor"}, "audit.invalid_cursor"),
        ({"since": __import__("datetime").datetime(2026, 1, 1)}, "audit.invalid_time"),
    ],
)
def test_bad_queries_are_refused(world: World, kwargs: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        world.np.audit.query(world.admin, world.org.id, **kwargs)  # type: ignore[arg-type]
    assert err.value.code == code


def test_personal_data_is_shown_to_readers(world: World) -> None:
    np = world.np
    np.teams.create(
        world.admin, world.org.id, "Ops", ctx=RequestContext(ip="198.51.100.7", user_agent="UA/1")
    )
    entry = np.audit.query(world.admin, world.org.id, actions=["team.created"]).entries[0]
    assert entry.actor.email == "founder@partner.test"
    assert (entry.ip, entry.user_agent) == ("198.51.100.7", "UA/1")


def test_erasure_removes_a_persons_data_and_keeps_every_chain_verifiable(world: World) -> None:
    np = world.np
    carol = world.managed("carol")
    np.teams.create(Actor.account(world.founder.id), world.org.id, "Ops")
    erased = np.audit.erase_person(Actor.system(), carol)
    assert erased > 0
    entries = np.audit.query(world.admin, world.org.id, limit=1000).entries
    for entry in entries:
        for party in (entry.actor, *entry.targets):
            if party.id == carol:
                assert party.email is None
                assert party.name is None
    # Others' data stays.
    assert any(e.actor.email == "founder@partner.test" for e in entries)
    assert all(v.ok for v in np.audit.verify_all())
    with pytest.raises(PermissionDenied):
        np.audit.erase_person(world.admin, carol)


def _tamper(store: Store, scope: str, seq: int, **changes: object) -> None:
    """Rewrite one stored event in place, as an attacker with database access would."""
    from nulabpass.stores.memory import MemoryStore

    if isinstance(store, MemoryStore):
        chain = store._state.events[scope]
        chain[seq - 1] = attrs.evolve(chain[seq - 1], **changes)  # type: ignore[arg-type]
        return
    import sqlalchemy as sa

    from nulabpass.stores.sql.schema import audit_events

    values = {k: (v.value if hasattr(v, "value") else v) for k, v in changes.items()}
    with store.bind.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            sa.update(audit_events)
            .where(audit_events.c.scope == scope, audit_events.c.seq == seq)
            .values(**values)
        )


def test_verify_names_the_first_modified_event(world: World) -> None:
    np = world.np
    assert np.audit.verify(world.org.id).ok
    _tamper(np.store, world.org.id, 3, action="domain.removed")
    result = np.audit.verify(world.org.id)
    assert not result.ok
    assert (result.first_broken_seq, result.problem) == (3, "audit.hash_mismatch")


def test_verify_detects_a_removed_event(world: World, np: NulabPass) -> None:
    from nulabpass.stores.memory import MemoryStore

    if not isinstance(np.store, MemoryStore):
        import sqlalchemy as sa

        from nulabpass.stores.sql.schema import audit_events, audit_personal, audit_targets

        with np.store.transaction() as uow:
            victim = next(e for e in uow.audit.iter_chain(world.org.id) if e.seq == 2)
        with np.store.bind.begin() as conn:  # type: ignore[attr-defined]
            for table in (audit_personal, audit_targets):
                conn.execute(sa.delete(table).where(table.c.event_id == victim.id))
            conn.execute(sa.delete(audit_events).where(audit_events.c.id == victim.id))
    else:
        del np.store._state.events[world.org.id][1]
    result = np.audit.verify(world.org.id)
    assert (result.ok, result.first_broken_seq, result.problem) == (
        False,
        3,
        "audit.sequence_gap",
    )


def test_verify_detects_reordering(world: World, np: NulabPass) -> None:
    """Swapping the positions of events 2 and 3 (each keeps its own content and hash)."""
    from nulabpass.stores.memory import MemoryStore

    if isinstance(np.store, MemoryStore):
        chain = np.store._state.events[world.org.id]
        second, third = chain[1], chain[2]
        chain[1] = attrs.evolve(third, seq=2)
        chain[2] = attrs.evolve(second, seq=3)
    else:
        import sqlalchemy as sa

        from nulabpass.stores.sql.schema import audit_events

        col = audit_events.c
        with np.store.bind.begin() as conn:  # type: ignore[attr-defined]
            for old, new in ((2, -2), (3, 2), (-2, 3)):
                conn.execute(
                    sa.update(audit_events)
                    .where(col.scope == world.org.id, col.seq == old)
                    .values(seq=new)
                )
    result = np.audit.verify(world.org.id)
    assert not result.ok
    assert result.first_broken_seq == 2
    assert result.problem in ("audit.link_broken", "audit.hash_mismatch")


def test_verify_detects_edited_personal_data(world: World, np: NulabPass) -> None:
    from nulabpass.stores.memory import MemoryStore

    with np.store.transaction() as uow:
        first = next(iter(uow.audit.iter_chain(world.org.id)))
    if isinstance(np.store, MemoryStore):
        data = np.store._state.personal[first.id]
        np.store._state.personal[first.id] = tuple(
            attrs.evolve(d, value="mallory@evil.test") if d.slot == "actor.email" else d
            for d in data
        )
    else:
        import sqlalchemy as sa

        from nulabpass.stores.sql.schema import audit_personal

        with np.store.bind.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(
                sa.update(audit_personal)
                .where(
                    audit_personal.c.event_id == first.id, audit_personal.c.slot == "actor.email"
                )
                .values(value="mallory@evil.test")
            )
    result = np.audit.verify(world.org.id)
    assert (result.ok, result.first_broken_seq, result.problem) == (
        False,
        1,
        "audit.personal_data_mismatch",
    )


def test_query_by_ip_address_finds_that_requests_events_until_the_person_is_erased(
    world: World,
) -> None:
    np = world.np
    np.teams.create(world.admin, world.org.id, "Ops", ctx=RequestContext(ip="198.51.100.7"))
    np.teams.create(world.admin, world.org.id, "Sales", ctx=RequestContext(ip="203.0.113.9"))
    page = np.audit.query(world.admin, world.org.id, ip="198.51.100.7")
    assert [e.action for e in page.entries] == ["team.created"]
    assert page.entries[0].ip == "198.51.100.7"
    assert np.audit.query(world.admin, world.org.id, ip="192.0.2.1").entries == ()
    # The read that used the filter records its name, never the address.
    with np.store.transaction() as uow:
        read = next(
            e
            for e in reversed(list(uow.audit.iter_chain(world.org.id)))
            if e.action == "audit.read"
        )
    assert read.metadata["filters"] == "ip"
    assert "198.51.100.7" not in str(read.metadata)
    np.audit.erase_person(Actor.system(), world.founder.id)
    assert np.audit.query(world.admin, world.org.id, ip="198.51.100.7").entries == ()
    with pytest.raises(InvalidInput) as err:
        np.audit.query(world.admin, world.org.id, ip="")
    assert err.value.code == "audit.invalid_ip"
