"""Domain challenges and rate limits behave the same in every store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from nulabpass.domains import DomainChallenge
from nulabpass.errors import Conflict, NotFound, StaleWrite
from nulabpass.org._model import Domain, DomainStatus, Organization, OrgSettings
from nulabpass.ports import RateLimiter, Store
from nulabpass.stores.memory import MemoryStore
from nulabpass.stores.ratelimit import MemoryRateLimiter, window_start
from nulabpass.stores.sql import SqlRateLimiter, SqlStore

SqlStoreFactory = Callable[[str], SqlStore]
T0 = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KINDS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, sql_store_factory: SqlStoreFactory) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        yield sql_store_factory(request.param)


def _seed(store: Store, count: int = 3) -> list[Domain]:
    domains = []
    with store.transaction() as uow:
        uow.organizations.add(
            Organization(
                id="org_1", name="Acme", settings=OrgSettings(), created_at=T0, updated_at=T0
            )
        )
        for i in range(count):
            domain = Domain(
                id=f"dom_{i}",
                org_id="org_1",
                name=f"d{i}.example",
                status=DomainStatus.PENDING,
                include_subdomains=False,
                created_at=T0,
                updated_at=T0,
            )
            uow.domains.add(domain)
            domains.append(domain)
    return domains


def _challenge(domain: Domain, **changes: object) -> DomainChallenge:
    base = DomainChallenge(
        domain_id=domain.id,
        org_id=domain.org_id,
        domain=domain.name,
        token=f"tok-{domain.id}",
        issued_at=T0,
        expires_at=T0 + timedelta(days=7),
    )
    return attrs.evolve(base, **changes)  # type: ignore[arg-type]


def test_a_challenge_round_trips_with_every_field(store: Store) -> None:
    (domain,) = _seed(store, 1)
    challenge = _challenge(
        domain,
        verified_at=T0,
        next_check_at=T0 + HOUR,
        last_checked_at=T0,
        last_outcome="verified",
        missing_since=T0,
        indeterminate_since=T0,
    )
    with store.transaction() as uow:
        uow.domain_challenges.add(challenge)
    with store.transaction() as uow:
        assert uow.domain_challenges.get(domain.id) == challenge
        assert uow.domain_challenges.get("dom_missing") is None


def test_a_domain_has_one_challenge(store: Store) -> None:
    (domain,) = _seed(store, 1)
    with store.transaction() as uow:
        uow.domain_challenges.add(_challenge(domain))
    with pytest.raises(Conflict) as info, store.transaction() as uow:
        uow.domain_challenges.add(_challenge(domain))
    assert info.value.code == "domain_challenge.exists"


def test_challenge_updates_check_the_version(store: Store) -> None:
    (domain,) = _seed(store, 1)
    with store.transaction() as uow:
        uow.domain_challenges.add(_challenge(domain))
    with store.transaction() as uow:
        first = uow.domain_challenges.update(_challenge(domain, token="new"))
    assert first.version == 2
    with pytest.raises(StaleWrite), store.transaction() as uow:
        uow.domain_challenges.update(_challenge(domain, token="stale"))
    with store.transaction() as uow:
        uow.domain_challenges.delete(domain.id)
    with pytest.raises(NotFound), store.transaction() as uow:
        uow.domain_challenges.update(first)


def test_due_lists_only_verified_challenges_whose_time_has_come_earliest_first(
    store: Store,
) -> None:
    a, b, c = _seed(store, 3)
    with store.transaction() as uow:
        uow.domain_challenges.add(_challenge(a, verified_at=T0, next_check_at=T0 + 2 * HOUR))
        uow.domain_challenges.add(_challenge(b, verified_at=T0, next_check_at=T0 + HOUR))
        uow.domain_challenges.add(_challenge(c, next_check_at=T0))  # pending: never due
    with store.transaction() as uow:
        assert uow.domain_challenges.due(T0 + 30 * timedelta(minutes=1), 10) == []
        due = uow.domain_challenges.due(T0 + 3 * HOUR, 10)
        assert [d.domain_id for d in due] == [b.id, a.id]
        assert [d.domain_id for d in uow.domain_challenges.due(T0 + 3 * HOUR, 1)] == [b.id]


def test_a_removed_domain_is_gone_and_its_name_can_be_added_again(store: Store) -> None:
    (domain,) = _seed(store, 1)
    with store.transaction() as uow:
        uow.domain_challenges.add(_challenge(domain))
    with store.transaction() as uow:
        uow.domain_challenges.delete(domain.id)
        uow.domains.delete("org_1", domain.name)
    with store.transaction() as uow:
        assert uow.domains.get("org_1", domain.name) is None
        uow.domains.add(attrs.evolve(domain, id="dom_again"))


def test_writes_roll_back_with_their_transaction(store: Store) -> None:
    (domain,) = _seed(store, 1)

    def add_then_fail() -> None:
        with store.transaction() as uow:
            uow.domain_challenges.add(_challenge(domain))
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        add_then_fail()
    with store.transaction() as uow:
        assert uow.domain_challenges.get(domain.id) is None


@pytest.fixture(params=KINDS)
def limiter(request: pytest.FixtureRequest, sql_store_factory: SqlStoreFactory) -> RateLimiter:
    if request.param == "memory":
        return MemoryRateLimiter()
    sql: SqlStore = sql_store_factory(request.param)
    return SqlRateLimiter(sql)


def test_the_limit_applies_per_key_and_window(limiter: RateLimiter) -> None:
    at = window_start(T0, HOUR)
    for _ in range(3):
        assert limiter.acquire("k", at, limit=3, window=HOUR).allowed
    refused = limiter.acquire("k", at + timedelta(minutes=59), limit=3, window=HOUR)
    assert not refused.allowed
    assert refused.retry_at == at + HOUR
    assert limiter.acquire("other", at, limit=3, window=HOUR).allowed
    assert limiter.acquire("k", at + HOUR, limit=3, window=HOUR).allowed


def test_windows_are_aligned_to_the_epoch() -> None:
    assert window_start(datetime(2025, 1, 10, 12, 34, tzinfo=UTC), HOUR) == datetime(
        2025, 1, 10, 12, 0, tzinfo=UTC
    )
