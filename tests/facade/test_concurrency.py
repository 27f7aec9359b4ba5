"""Concurrent requests through one NulabPass: real threads, started together.

Each thread calls the facade of the same ``NulabPass``; on the SQL stores every
transaction checks out its own connection, so the threads really race in the database
(PostgreSQL: row locks; SQLite: one writer at a time). The memory store serialises
transactions and runs the same tests as a reference. Whatever the interleaving, the
invariants hold: no write is lost, the audit chain stays gapless and verifies, seat
limits and the break-glass rule are never exceeded, a single-use token is used once.

On PostgreSQL a statement hook also stages one exact interleaving of two writers of
one organization, where one of them reaches it from another organization's action.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from nulabpass import (
    Account,
    AccountStatus,
    Actor,
    BreakGlassViolation,
    Conflict,
    DomainEvent,
    NulabPass,
    Organization,
    Outcome,
    PermissionDenied,
    Role,
    SeatLimitExceeded,
)
from nulabpass.audit._model import EventRecord
from nulabpass.ports import Store
from nulabpass.testing import (
    FrozenClock,
    RecordingMailer,
    make_nulabpass,
    mark_domain_verified,
    mark_saml_configured,
)

from .conftest import World

ACCOUNTS_PER_WRITER = 25

Call = Callable[[], object]


def _run_threads(threads: list[threading.Thread], *, timeout: float = 60) -> None:
    """Start every thread, then wait for each; a thread still running after
    ``timeout`` seconds fails the test."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
        assert not thread.is_alive(), "a racing call hung"


def _race(*calls: Call) -> list[object]:
    """Run every call in its own thread, all released at once by a barrier; return,
    in the order of ``calls``, what each returned or raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index: int, call: Call) -> None:
        barrier.wait()
        try:
            outcomes[index] = call()
        except BaseException as exc:
            outcomes[index] = exc

    threads = [
        threading.Thread(target=run, args=(i, call), name=f"racer-{i}")
        for i, call in enumerate(calls)
    ]
    _run_threads(threads, timeout=120)
    return outcomes


def _chain(np: NulabPass, scope: str) -> list[EventRecord]:
    with np.store.transaction() as uow:
        return list(uow.audit.iter_chain(scope))


def _assert_sound_chain(np: NulabPass, scope: str) -> list[EventRecord]:
    chain = _chain(np, scope)
    assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
    for previous, event in itertools.pairwise(chain):
        assert event.prev_hash == previous.hash
    verdict = np.audit.verify(scope)
    assert verdict.ok, verdict.message
    assert verdict.events_checked == len(chain)
    return chain


def _count(chain: list[EventRecord], action: str, outcome: Outcome) -> int:
    return sum(1 for e in chain if e.action == action and e.outcome is outcome)


def _break_glass_count(np: NulabPass, org_id: str) -> int:
    with np.store.transaction() as uow:
        return uow.memberships.count_break_glass(org_id, require_admin=False)


def _create_managed(world: World, local: str) -> Account:
    return world.np.members.create_managed(
        world.admin,
        world.org.id,
        team_id=world.team.id,
        email=f"{local}@example.com",
        display_name=local.title(),
    )


# -- concurrent writers of one organization ------------------------------------------


def test_two_writers_creating_managed_accounts_at_once_lose_no_account_and_no_event(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    events_before = len(world.events())
    outbox_before = np.outbox.pending_count()

    def writer(prefix: str) -> Call:
        def work() -> list[str]:
            return [_create_managed(world, f"{prefix}{i}").id for i in range(ACCOUNTS_PER_WRITER)]

        return work

    left, right = _race(writer("left"), writer("right"))
    assert isinstance(left, list), left
    assert isinstance(right, list), right
    created = set(left) | set(right)
    assert len(created) == 2 * ACCOUNTS_PER_WRITER

    emails = [f"{p}{i}@example.com" for p in ("left", "right") for i in range(ACCOUNTS_PER_WRITER)]
    for email in emails:
        account = np.accounts.find_by_email(email)
        assert account is not None, email
        assert (account.managed_by, account.status) == (world.org.id, AccountStatus.INVITED)
    assert np.plans.status(world.org.id).managed_accounts == 2 * ACCOUNTS_PER_WRITER
    team = {m.account_id for m in np.teams.members(world.admin, world.org.id, world.team.id)}
    assert created <= team

    chain = _assert_sound_chain(np, world.org.id)
    assert len(chain) == events_before + 2 * ACCOUNTS_PER_WRITER
    new_events = chain[events_before:]
    assert {e.action for e in new_events} == {"managed_account.created"}
    assert all(e.outcome is Outcome.SUCCESS for e in new_events)
    assert {e.targets[0].id for e in new_events} == created

    # One invitation email and one invitation.sent event per account, each delivered once.
    assert np.outbox.pending_count() == outbox_before + 2 * 2 * ACCOUNTS_PER_WRITER
    np.outbox.dispatch_pending(limit=1000)
    assert np.outbox.pending_count() == 0
    for email in emails:
        assert len(mailer.tokens_for(email)) == 1, email


# -- the seat limit under concurrent creation ----------------------------------------


def test_concurrent_creation_never_exceeds_the_seat_limit(
    world: World, clock: FrozenClock
) -> None:
    np = world.np
    np.plans.upgrade(
        world.admin,
        world.org.id,
        plan_name="business",
        period_ends_at=clock.now() + timedelta(days=365),
        seats=10,
        start_now=True,
    )
    events_before = len(world.events())

    def writer(prefix: str) -> Call:
        def work() -> tuple[list[str], list[SeatLimitExceeded]]:
            made: list[str] = []
            refused: list[SeatLimitExceeded] = []
            for i in range(8):
                try:
                    made.append(_create_managed(world, f"{prefix}{i}").email)
                except SeatLimitExceeded as exc:
                    refused.append(exc)
            return made, refused

        return work

    outcomes = _race(writer("left"), writer("right"))
    made: list[str] = []
    refused: list[SeatLimitExceeded] = []
    for outcome in outcomes:
        assert isinstance(outcome, tuple), outcome
        made.extend(outcome[0])
        refused.extend(outcome[1])
    assert len(made) == 10
    assert len(refused) == 6
    assert {exc.code for exc in refused} == {"plan.seat_limit"}

    status = np.plans.status(world.org.id)
    assert (status.managed_accounts, status.seats) == (10, 10)
    for prefix in ("left", "right"):
        for i in range(8):
            email = f"{prefix}{i}@example.com"
            assert (np.accounts.find_by_email(email) is not None) == (email in made), email

    chain = _assert_sound_chain(np, world.org.id)
    new_events = chain[events_before:]
    assert _count(new_events, "managed_account.created", Outcome.SUCCESS) == 10
    # Identical refusals inside the aggregation window are one recorded failure.
    failures = [e for e in new_events if e.outcome is Outcome.FAILURE]
    assert [(e.action, e.metadata.get("error_code")) for e in failures] == [
        ("managed_account.created", "plan.seat_limit")
    ]


# -- the break-glass rule under concurrency ------------------------------------------


def _two_admin_org(np: NulabPass, tag: str) -> tuple[Organization, Account, Account]:
    """An organization whose only break-glass accounts are two non-managed admins
    (neither is a plan admin)."""
    first = np.accounts.register(f"first-{tag}@partner.test", "First")
    second = np.accounts.register(f"second-{tag}@partner.test", "Second")
    org = np.orgs.create(Actor.account(first.id), f"Org {tag}")
    np.members.add(Actor.account(first.id), org.id, second.id, role=Role.ADMIN)
    np.members.set_privileges(Actor.account(first.id), org.id, first.id, plan_admin=False)
    assert _break_glass_count(np, org.id) == 2
    return org, first, second


ROUNDS = 3


@pytest.mark.parametrize(
    ("how", "action"),
    [
        ("both-leave", "member.left"),
        ("both-step-down", "member.role_changed"),
        ("host-demotes-both", "member.role_changed"),
    ],
)
def test_two_break_glass_admins_removing_themselves_at_once_leave_exactly_one(
    np: NulabPass, how: str, action: str
) -> None:
    for round_ in range(ROUNDS):
        org, first, second = _two_admin_org(np, f"{how}-{round_}")

        def step(account: Account, org_id: str = org.id) -> Call:
            me = Actor.account(account.id)
            if how == "both-leave":
                return lambda: np.members.leave(me, org_id)
            who = me if how == "both-step-down" else Actor.system()
            return lambda: np.members.set_role(who, org_id, account.id, Role.MEMBER)

        outcomes = _race(step(first), step(second))
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 1, outcomes
        assert isinstance(refused[0], BreakGlassViolation), refused[0]
        assert refused[0].code == "member.break_glass"
        assert _break_glass_count(np, org.id) == 1

        chain = _assert_sound_chain(np, org.id)
        assert _count(chain, action, Outcome.SUCCESS) == 1
        assert _count(chain, action, Outcome.FAILURE) == 1


def test_two_admins_demoting_each_other_at_once_leave_exactly_one_admin(np: NulabPass) -> None:
    for round_ in range(ROUNDS):
        org, first, second = _two_admin_org(np, f"each-other-{round_}")

        def demote(by: Account, whom: Account, org_id: str = org.id) -> Call:
            return lambda: np.members.set_role(Actor.account(by.id), org_id, whom.id, Role.MEMBER)

        outcomes = _race(demote(first, second), demote(second, first))
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 1, outcomes
        # The loser is no longer an admin by the time its change runs.
        assert isinstance(refused[0], PermissionDenied), refused[0]
        assert refused[0].code == "permission.manage_members"
        assert _break_glass_count(np, org.id) == 1
        admins = [m for m in np.members.list(Actor.system(), org.id) if m.role is Role.ADMIN]
        assert len(admins) == 1
        _assert_sound_chain(np, org.id)


# -- single-use tokens accepted twice at once ----------------------------------------


def test_one_invitation_accepted_twice_at_once_is_accepted_exactly_once(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    carol = world.managed("carol", accept=False)
    np.outbox.dispatch_pending()
    (token,) = mailer.tokens_for("carol@example.com")
    events_before = len(world.events())

    outcomes = _race(lambda: np.invitations.accept(token), lambda: np.invitations.accept(token))
    accepted = [o for o in outcomes if isinstance(o, Account)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 1, outcomes
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], Conflict), refused[0]
    assert refused[0].code in {"invitation.used", "conflict.stale_write"}
    assert accepted[0].id == carol
    assert np.accounts.get(carol).status is AccountStatus.ACTIVE

    chain = _assert_sound_chain(np, world.org.id)
    new_events = chain[events_before:]
    action = "managed_account.invitation_accepted"
    assert _count(new_events, action, Outcome.SUCCESS) == 1
    assert _count(new_events, action, Outcome.FAILURE) == 1
    assert len(new_events) == 2


def test_one_conversion_accepted_twice_at_once_converts_exactly_once(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    dana = np.accounts.register("dana@example.com", "Dana")
    np.conversions.request(world.admin, world.org.id, dana.id)
    np.outbox.dispatch_pending()
    (token,) = mailer.tokens_for("dana@example.com")
    converted: list[DomainEvent] = []
    np.outbox.subscribe("account.converted", converted.append)
    events_before = len(world.events())

    outcomes = _race(lambda: np.conversions.accept(token), lambda: np.conversions.accept(token))
    accepted = [o for o in outcomes if isinstance(o, Account)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 1, outcomes
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], Conflict), refused[0]
    assert refused[0].code in {"conversion.used", "conflict.stale_write"}
    assert np.accounts.get(dana.id).managed_by == world.org.id

    chain = _assert_sound_chain(np, world.org.id)
    new_events = chain[events_before:]
    assert _count(new_events, "conversion.accepted", Outcome.SUCCESS) == 1
    assert _count(new_events, "conversion.accepted", Outcome.FAILURE) == 1
    assert len(new_events) == 2
    np.outbox.dispatch_pending()
    assert [e.payload["account_id"] for e in converted] == [dana.id]


def _two_organizations_asking_to_convert(
    np: NulabPass, mailer: RecordingMailer, names: tuple[str, str]
) -> tuple[list[tuple[Organization, Actor]], Account, list[str]]:
    """Two organizations (ready to manage accounts) that both asked Dana to convert her
    account; return them with their admins, Dana, and the two tokens she was mailed."""
    orgs: list[tuple[Organization, Actor]] = []
    for name in names:
        founder = np.accounts.register(f"founder@{name}.test", name.title())
        admin = Actor.account(founder.id)
        org = np.orgs.create(admin, name.title())
        np.plans.start_trial(admin, org.id)
        mark_saml_configured(np, org.id)
        mark_domain_verified(np, org.id, "example.com")
        orgs.append((org, admin))
    dana = np.accounts.register("dana@example.com", "Dana")
    for org, admin in orgs:
        np.conversions.request(admin, org.id, dana.id)
    np.outbox.dispatch_pending()
    return orgs, dana, mailer.tokens_for("dana@example.com")


def test_two_organizations_converting_one_account_at_once_leave_it_managed_by_one(
    np: NulabPass, mailer: RecordingMailer
) -> None:
    orgs, dana, tokens = _two_organizations_asking_to_convert(np, mailer, ("alpha", "beta"))
    assert len(tokens) == 2

    outcomes = _race(*(lambda t=t: np.conversions.accept(t) for t in tokens))
    accepted = [o for o in outcomes if isinstance(o, Account)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 1, outcomes
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], Conflict), refused[0]
    assert refused[0].code in {"conversion.already_managed", "conflict.stale_write"}

    winner = accepted[0].managed_by
    assert np.accounts.get(dana.id).managed_by == winner
    assert [o.id for o in np.orgs.for_account(dana.id)] == [winner]
    for org, _admin in orgs:
        chain = _assert_sound_chain(np, org.id)
        expected = 1 if org.id == winner else 0
        assert _count(chain, "conversion.accepted", Outcome.SUCCESS) == expected


# -- the break-glass rule across organizations (PostgreSQL row locks) --------------------


@pytest.fixture
def pg_np(request: pytest.FixtureRequest, mailer: RecordingMailer) -> Iterator[NulabPass]:
    """A NulabPass on PostgreSQL with an engine of its own, so that statement hooks
    stay local to the test. Skipped without NULABPASS_TEST_POSTGRES_URL."""
    from nulabpass.stores.sql import SqlStore

    from .conftest import _pg_store

    store: Store = _pg_store(request.getfixturevalue("pg_schema_url"))
    assert isinstance(store, SqlStore)
    yield make_nulabpass(store, mailer=mailer)
    engine = store.bind
    assert isinstance(engine, sa.Engine)
    engine.dispose()


class _Choreography:
    """Pauses one thread just before it appends its audit event (its break-glass check
    done, its transaction still open) until another thread asks for the lock of the
    organization, then lets it commit."""

    def __init__(self, engine: sa.Engine, org_id: str, *, pausing: str, locking: str) -> None:
        self.engine = engine
        self.org_id = org_id
        self.pausing = pausing
        self.locking = locking
        self.paused = threading.Event()
        self.lock_requested = threading.Event()

    def __enter__(self) -> _Choreography:
        sa.event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._hook)

    def _hook(
        self,
        _conn: object,
        _cursor: object,
        statement: str,
        parameters: object,
        _context: object,
        _executemany: bool,
    ) -> None:
        name = threading.current_thread().name
        text = statement.lower()
        if (
            name == self.pausing
            and not self.paused.is_set()
            # PostgreSQL inserts the event inside a WITH clause (one statement with its
            # targets and personal data).
            and "insert into nulabpass_audit_events" in text
        ):
            self.paused.set()
            self.lock_requested.wait(timeout=10)
        elif (
            name == self.locking
            and "from nulabpass_organizations" in text
            and "for update" in text
            and self.org_id in repr(parameters)
        ):
            self.lock_requested.set()


def _choreographed(np: NulabPass, org_id: str, leave: Call, other: Call) -> dict[str, object]:
    """Run ``leave`` until just before its audit event, then ``other`` until it asks for
    the lock of ``org_id``, then let both finish; return what each returned or raised."""
    engine = np.store.bind  # type: ignore[attr-defined]
    outcomes: dict[str, object] = {}

    def run(name: str, call: Call, choreography: _Choreography) -> None:
        if name == "other":
            choreography.paused.wait(timeout=10)
        try:
            outcomes[name] = call()
        except BaseException as exc:
            outcomes[name] = exc

    with _Choreography(engine, org_id, pausing="leave", locking="other") as choreography:
        threads = [
            threading.Thread(target=run, args=(name, call, choreography), name=name)
            for name, call in (("leave", leave), ("other", other))
        ]
        _run_threads(threads)
    if not (choreography.paused.is_set() and choreography.lock_requested.is_set()):
        pytest.fail(f"the interleaving was not staged: {outcomes}")
    return outcomes


@pytest.mark.postgres
def test_host_deactivation_racing_a_leave_never_leaves_an_organization_without_break_glass(
    pg_np: NulabPass,
) -> None:
    np = pg_np
    org, first, second = _two_admin_org(np, "cross")
    outcomes = _choreographed(
        np,
        org.id,
        leave=lambda: np.members.leave(Actor.account(second.id), org.id),
        other=lambda: np.accounts.deactivate(Actor.system(), first.id),
    )
    assert _break_glass_count(np, org.id) == 1, outcomes
    refused = [o for o in outcomes.values() if isinstance(o, BaseException)]
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], BreakGlassViolation), refused[0]


@pytest.mark.postgres
def test_conversion_racing_a_leave_never_leaves_the_other_organization_without_break_glass(
    pg_np: NulabPass, mailer: RecordingMailer
) -> None:
    np = pg_np
    alpha = np.accounts.register("founder@alpha.test", "Alpha")
    admin = Actor.account(alpha.id)
    acme = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, acme.id)
    mark_saml_configured(np, acme.id)
    mark_domain_verified(np, acme.id, "example.com")
    # Dana founded another organization, where she and Erin are its two admins.
    dana = np.accounts.register("dana@example.com", "Dana")
    erin = np.accounts.register("erin@partner.test", "Erin")
    club = np.orgs.create(Actor.account(dana.id), "Club")
    np.members.add(Actor.account(dana.id), club.id, erin.id, role=Role.ADMIN)
    assert _break_glass_count(np, club.id) == 2
    np.conversions.request(admin, acme.id, dana.id)
    np.outbox.dispatch_pending()
    (token,) = mailer.tokens_for("dana@example.com")

    outcomes = _choreographed(
        np,
        club.id,
        leave=lambda: np.members.leave(Actor.account(erin.id), club.id),
        other=lambda: np.conversions.accept(token),
    )
    assert _break_glass_count(np, club.id) == 1, outcomes
    refused = [o for o in outcomes.values() if isinstance(o, BaseException)]
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], BreakGlassViolation), refused[0]


@pytest.mark.postgres
def test_two_conversions_of_one_account_never_deadlock(
    pg_np: NulabPass, mailer: RecordingMailer
) -> None:
    """Staged: the first acceptance waits just before it updates the account until the
    second one is updating it too. Whatever each has written before that point, the two
    must queue on the account row, never deadlock: one converts, the other is refused
    as a conflict (not a transient error)."""
    np = pg_np
    orgs, dana, tokens = _two_organizations_asking_to_convert(np, mailer, ("gamma", "delta"))
    first_token, second_token = tokens

    second_updating = threading.Event()
    first_paused = threading.Event()

    def hook(
        _conn: object,
        _cursor: object,
        statement: str,
        _parameters: object,
        _context: object,
        _executemany: bool,
    ) -> None:
        if not statement.lower().lstrip().startswith("update nulabpass_accounts"):
            return
        name = threading.current_thread().name
        if name == "first" and not first_paused.is_set():
            first_paused.set()
            second_updating.wait(timeout=10)
        elif name == "second":
            second_updating.set()

    outcomes: dict[str, object] = {}

    def run(name: str, token: str) -> None:
        if name == "second":
            first_paused.wait(timeout=10)
        try:
            outcomes[name] = np.conversions.accept(token)
        except BaseException as exc:
            outcomes[name] = exc

    engine = np.store.bind  # type: ignore[attr-defined]
    sa.event.listen(engine, "before_cursor_execute", hook)
    try:
        threads = [
            threading.Thread(target=run, args=(name, token), name=name)
            for name, token in (("first", first_token), ("second", second_token))
        ]
        _run_threads(threads)
    finally:
        sa.event.remove(engine, "before_cursor_execute", hook)
    assert first_paused.is_set(), outcomes
    assert second_updating.is_set(), outcomes
    accepted = [o for o in outcomes.values() if isinstance(o, Account)]
    refused = [o for o in outcomes.values() if isinstance(o, BaseException)]
    assert len(accepted) == 1, outcomes
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], Conflict), refused[0]
    managed_by = np.accounts.get(dana.id).managed_by
    assert managed_by in {org.id for org, _ in orgs}
