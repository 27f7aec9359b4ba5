"""Concurrent writers on one SQL store, each thread on its own connection.

The audit chain of a scope stays gapless and correctly linked under concurrent
appenders, optimistic versions let exactly one of two racing writers win, and
concurrent outbox dispatchers on PostgreSQL never take the same message.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable

import attrs
import pytest

from nulabpass.audit._model import EventRecord
from nulabpass.errors import StaleWrite
from nulabpass.org._model import Account
from nulabpass.outbox._model import OutboxMessage
from nulabpass.stores.sql import SqlStore
from nulabpass.testing._store_contract import (
    add_all,
    make_account,
    make_event,
    make_message,
    make_org,
    read,
)

APPENDS_PER_THREAD = 200


def _run_together(workers: list[Callable[[], None]]) -> list[BaseException]:
    """Start every worker at once; return what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(work: Callable[[], None]) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
        assert not thread.is_alive(), "a writer hung"
    return errors


def _append_next(store: SqlStore, scope: str, event_id: str, *, lock: bool) -> None:
    """The facade's pattern: lock the organization, read the head, append seq + 1."""
    with store.transaction() as uow:
        if lock:
            assert uow.organizations.lock(scope) is not None
        seq, prev = uow.audit.head(scope)
        event = attrs.evolve(
            make_event(scope, seq + 1, event_id=event_id),
            prev_hash=prev,
            hash=hashlib.sha256(f"{prev}/{event_id}".encode()).hexdigest(),
        )
        uow.audit.append(event, ())


def _assert_linked_chain(chain: list[EventRecord], length: int) -> None:
    assert [e.seq for e in chain] == list(range(1, length + 1))
    for previous, event in itertools.pairwise(chain):
        assert event.prev_hash == previous.hash
    for writer in ("w0", "w1"):
        assert sum(e.id.startswith(f"evt-{writer}-") for e in chain) == length // 2


@pytest.mark.parametrize("lock", [True, False], ids=["org-locked", "scope-only"])
def test_concurrent_appends_keep_the_chain_gapless(sql_store: SqlStore, lock: bool) -> None:
    """Two writers appending 200 events each to one scope produce seqs 1..400, each
    event linked to the one before, none lost to a conflict. With the organization
    locked (the facade's pattern) and without (the "host" scope has no row to lock)."""
    scope = "org-a" if lock else "host"
    add_all(sql_store, make_org("org-a"))

    def writer(name: str) -> Callable[[], None]:
        def work() -> None:
            for i in range(APPENDS_PER_THREAD):
                _append_next(sql_store, scope, f"evt-{name}-{i}", lock=lock)

        return work

    assert _run_together([writer("w0"), writer("w1")]) == []
    chain = read(sql_store, lambda u: list(u.audit.iter_chain(scope, batch_size=64)))
    _assert_linked_chain(chain, 2 * APPENDS_PER_THREAD)


def _updater(
    store: SqlStore, base: Account, name: str, outcomes: dict[str, str]
) -> Callable[[], None]:
    def work() -> None:
        try:
            with store.transaction() as uow:
                uow.accounts.update(attrs.evolve(base, display_name=name))
            outcomes[name] = "won"
        except StaleWrite:
            outcomes[name] = "stale"

    return work


def _get_account(store: SqlStore, account_id: str) -> Account:
    with store.transaction() as uow:
        account = uow.accounts.get(account_id)
    assert account is not None
    return account


def test_racing_updates_from_one_version_let_exactly_one_win(sql_store: SqlStore) -> None:
    """Two writers updating the same account from the same version: one succeeds, the
    other gets StaleWrite, and the stored account is the winner's."""
    for round_ in range(10):
        account_id = f"acc-{round_}"
        add_all(sql_store, make_account(account_id))
        base = _get_account(sql_store, account_id)
        outcomes: dict[str, str] = {}
        workers = [_updater(sql_store, base, name, outcomes) for name in ("left", "right")]
        assert _run_together(workers) == []
        assert sorted(outcomes.values()) == ["stale", "won"]
        (winner,) = (name for name, outcome in outcomes.items() if outcome == "won")
        stored = _get_account(sql_store, account_id)
        assert (stored.display_name, stored.version) == (winner, 2)


@pytest.mark.postgres
def test_concurrent_dispatchers_skip_locked_messages(postgres_store: SqlStore) -> None:
    """While one dispatcher holds claimed messages, another claims only the others
    (FOR UPDATE SKIP LOCKED): no message is taken twice."""
    messages = [make_message(f"m{n:02d}", created=n) for n in range(20)]
    add_all(postgres_store, *messages)
    claimed_first = threading.Event()
    second_done = threading.Event()
    first: list[OutboxMessage] = []
    second: list[OutboxMessage] = []

    def hold() -> None:
        with postgres_store.transaction() as uow:
            first.extend(uow.outbox.claim_due(messages[-1].created_at, 5))
            claimed_first.set()
            assert second_done.wait(timeout=60)

    def take() -> None:
        assert claimed_first.wait(timeout=60)
        with postgres_store.transaction() as uow:
            second.extend(uow.outbox.claim_due(messages[-1].created_at, 100))
        second_done.set()

    assert _run_together([hold, take]) == []
    assert [m.id for m in first] == [f"m{n:02d}" for n in range(5)]
    assert [m.id for m in second] == [f"m{n:02d}" for n in range(5, 20)]
