"""One transaction per action: a fault anywhere leaves nothing half-done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from nulabpass import NulabPass
from nulabpass.ports import Store, UnitOfWork

from .conftest import World, chain_actions


class Boom(RuntimeError):
    """The injected fault."""


class FaultyStore:
    """Wraps a real store; makes one repository method raise after the real call ran."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.fail_on: tuple[str, str] | None = None

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        with self.inner.transaction() as uow:
            if self.fail_on is None:
                yield uow
                return
            repo_name, method = self.fail_on
            repo = getattr(uow, repo_name)
            real = getattr(repo, method)

            def failing(*args: Any, **kwargs: Any) -> Any:
                real(*args, **kwargs)  # the change happens...
                raise Boom(f"fault injected after {repo_name}.{method}")  # ...then we crash

            setattr(repo, method, failing)
            try:
                yield uow
            finally:
                setattr(repo, method, real)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def faulty(np: NulabPass) -> FaultyStore:
    wrapper = FaultyStore(np.store)
    np.store = wrapper  # type: ignore[assignment]
    np._runtime.store = wrapper  # type: ignore[assignment]
    return wrapper


@pytest.mark.parametrize(
    "fault",
    [
        ("accounts", "add"),
        ("memberships", "add"),
        ("teams", "add_member"),
        ("invitations", "add"),
        ("audit", "append"),
        ("outbox", "add"),
    ],
)
def test_create_managed_rolls_back_whole_on_a_fault_after_any_write(
    world: World, faulty: FaultyStore, fault: tuple[str, str]
) -> None:
    np = world.np
    events_before = chain_actions(np, world.org.id)
    with np.store.transaction() as uow:
        outbox_before = uow.outbox.pending_count()
    faulty.fail_on = fault
    with pytest.raises(Boom):
        np.members.create_managed(
            world.admin,
            world.org.id,
            team_id=world.team.id,
            email="carol@example.com",
            display_name="Carol",
        )
    faulty.fail_on = None
    assert np.accounts.find_by_email("carol@example.com") is None
    assert np.teams.members(world.admin, world.org.id, world.team.id) == []
    assert chain_actions(np, world.org.id) == events_before
    with np.store.transaction() as uow:
        assert uow.outbox.pending_count() == outbox_before
    assert np.audit.verify(world.org.id).ok


def test_conversion_accept_rolls_back_every_organization_on_a_fault(
    world: World, faulty: FaultyStore
) -> None:
    from nulabpass import Actor

    np = world.np
    dave = np.accounts.register("dave@example.com", "Dave")
    other_founder = np.accounts.register("olga@partner.test", "Olga")
    other = np.orgs.create(Actor.account(other_founder.id), "Other")
    np.members.add(Actor.account(other_founder.id), other.id, dave.id)
    np.conversions.request(world.admin, world.org.id, dave.id)
    np.outbox.dispatch_pending()
    token = world.mailer.tokens_for("dave@example.com")[-1]
    other_before = chain_actions(np, other.id)
    faulty.fail_on = ("accounts", "update")
    with pytest.raises(Boom):
        np.conversions.accept(token)
    faulty.fail_on = None
    assert np.members.get(other.id, dave.id).account_id == dave.id
    assert np.accounts.get(dave.id).managed_by is None
    assert chain_actions(np, other.id) == other_before
    assert np.conversions.accept(token).managed_by == world.org.id
