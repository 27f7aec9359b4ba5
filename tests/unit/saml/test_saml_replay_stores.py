"""Every SamlReplayCache implementation accepts a key once until it expires."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from nulabpass.ports import SamlReplayCache
from nulabpass.saml import MemoryReplayCache
from nulabpass.stores.sql import SqlReplayCache, SqlStore

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def cache(
    request: pytest.FixtureRequest, sql_store_factory: Callable[[str], SqlStore]
) -> SamlReplayCache:
    if request.param == "memory":
        return MemoryReplayCache()
    return SqlReplayCache(sql_store_factory(request.param))


def test_the_implementation_satisfies_the_port(cache: SamlReplayCache) -> None:
    assert isinstance(cache, SamlReplayCache)


def test_a_key_is_accepted_once_until_it_expires(cache: SamlReplayCache) -> None:
    key = "https://idp.example\x00_assertion1"
    assert cache.remember(key, expires_at=LATER, now=NOW) is True
    assert cache.remember(key, expires_at=LATER, now=NOW + timedelta(minutes=1)) is False
    assert cache.remember(key, expires_at=LATER, now=LATER - timedelta(seconds=1)) is False
    assert cache.remember(key, expires_at=LATER + timedelta(minutes=5), now=LATER) is True


def test_different_keys_do_not_collide(cache: SamlReplayCache) -> None:
    assert cache.remember("a\x00_1", expires_at=LATER, now=NOW)
    assert cache.remember("a\x00_2", expires_at=LATER, now=NOW)
    assert cache.remember("b\x00_1", expires_at=LATER, now=NOW)
    assert not cache.remember("a\x00_2", expires_at=LATER, now=NOW)


def test_concurrent_attempts_accept_exactly_one(cache: SamlReplayCache) -> None:
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def attempt() -> None:
        start.wait()
        outcome = cache.remember("race\x00_1", expires_at=LATER, now=NOW)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]


def test_expired_rows_are_purged_from_the_sql_table(
    sql_store_factory: Callable[[str], SqlStore],
) -> None:
    import sqlalchemy as sa

    from nulabpass.stores.sql.schema import saml_replay

    store = sql_store_factory("sqlite")
    cache = SqlReplayCache(store)
    for i in range(3):
        cache.remember(f"old{i}", expires_at=NOW + timedelta(seconds=1), now=NOW)
    cache.remember("new", expires_at=LATER + timedelta(minutes=10), now=LATER)
    engine = store.bind
    assert isinstance(engine, sa.Engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(saml_replay)).scalar() == 1
