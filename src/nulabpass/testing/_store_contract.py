"""The storage contract: one pytest suite every :class:`~nulabpass.ports.Store` must pass.

Subclass :class:`StoreContract` in a test module and give it a ``store`` fixture that
returns a fresh, empty store for each test::

    import pytest

    from nulabpass.testing import StoreContract


    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            return MyStore()

Every test talks to the store only through ``store.transaction()`` and the repository
methods of :mod:`nulabpass.ports`, so the suite runs unchanged against the memory
store, SQLite and PostgreSQL. Writes and the reads that check them happen in separate
transactions: what is checked is what was committed.

Where the port docstrings leave a choice open (what updating a vanished row raises, the
order of teams and of due outbox messages, duplicate ids), the suite pins what the
stores shipped with nulabpass do; where they leave it open on purpose (the order of an
event's personal data), it accepts either.
"""

# This module is a test suite shipped inside the package: assertions are its purpose.
# ruff: noqa: S101

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs
import pytest

from nulabpass.audit._model import (
    GENESIS_HASH,
    AuditQuery,
    EventRecord,
    Outcome,
    PersonalDatum,
    Target,
)
from nulabpass.errors import Conflict, NotFound, StaleWrite
from nulabpass.org._model import (
    Account,
    AccountStatus,
    ConversionRequest,
    ConversionStatus,
    Domain,
    DomainStatus,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrgSettings,
    Role,
    Team,
    TeamMember,
)
from nulabpass.outbox._model import OutboxKind, OutboxMessage
from nulabpass.plans import PlanRecord
from nulabpass.ports import FailureCounter, Store, StoredPlan, UnitOfWork

__all__ = ["StoreContract"]

R = TypeVar("R")

# ---------------------------------------------------------------------------------------
# Test data. Times carry microseconds and some carry a non-UTC offset, so a store that
# truncates precision or mishandles time zones fails the round trips.

T0 = datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=UTC)
JST = timezone(timedelta(hours=9), "JST")


def at(minutes: float) -> datetime:
    """``T0`` plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


def make_org(org_id: str = "org-a", *, requires_admin: bool = False) -> Organization:
    return Organization(
        id=org_id,
        name=f"Organization {org_id}",
        settings=OrgSettings(break_glass_requires_admin=requires_admin),
        created_at=T0,
        updated_at=T0,
    )


def make_account(
    account_id: str,
    *,
    email: str | None = None,
    managed_by: str | None = None,
    status: AccountStatus = AccountStatus.ACTIVE,
) -> Account:
    return Account(
        id=account_id,
        email=email or f"{account_id}@example.com",
        display_name=f"Person {account_id}",
        language="ja",
        timezone="Asia/Tokyo",
        status=status,
        managed_by=managed_by,
        created_at=T0,
        updated_at=T0,
    )


def make_membership(
    org_id: str,
    account_id: str,
    *,
    role: Role = Role.MEMBER,
    plan_admin: bool = False,
    audit_log_admin: bool = False,
) -> Membership:
    return Membership(
        org_id=org_id,
        account_id=account_id,
        role=role,
        plan_admin=plan_admin,
        audit_log_admin=audit_log_admin,
        created_at=T0,
        updated_at=T0,
    )


def make_team(team_id: str, org_id: str, name: str) -> Team:
    return Team(id=team_id, org_id=org_id, name=name, created_at=T0, updated_at=T0)


def make_invitation(
    invitation_id: str,
    org_id: str,
    account_id: str,
    *,
    status: InvitationStatus = InvitationStatus.PENDING,
    team_id: str | None = None,
) -> Invitation:
    return Invitation(
        id=invitation_id,
        org_id=org_id,
        account_id=account_id,
        team_id=team_id,
        token_hash=hashlib.sha256(invitation_id.encode()).hexdigest(),
        nonce=f"nonce-{invitation_id}",
        status=status,
        expires_at=at(60 * 24 * 7).astimezone(JST),
        created_at=T0,
        updated_at=T0,
    )


def make_conversion(
    request_id: str,
    org_id: str,
    account_id: str,
    *,
    status: ConversionStatus = ConversionStatus.PENDING,
) -> ConversionRequest:
    return ConversionRequest(
        id=request_id,
        org_id=org_id,
        account_id=account_id,
        token_hash=hashlib.sha256(request_id.encode()).hexdigest(),
        nonce=f"nonce-{request_id}",
        status=status,
        expires_at=at(60 * 24 * 3),
        created_at=T0,
        updated_at=T0,
    )


def make_domain(
    domain_id: str,
    org_id: str,
    name: str,
    *,
    status: DomainStatus = DomainStatus.PENDING,
    verified_at: datetime | None = None,
) -> Domain:
    return Domain(
        id=domain_id,
        org_id=org_id,
        name=name,
        status=status,
        include_subdomains=False,
        created_at=T0,
        updated_at=T0,
        verified_at=verified_at,
    )


def chain_hash(scope: str, seq: int) -> str:
    """The (fake, but chained) hash of event ``seq`` of ``scope``."""
    return hashlib.sha256(f"{scope}:{seq}".encode()).hexdigest()


def make_event(
    scope: str,
    seq: int,
    *,
    event_id: str | None = None,
    action: str = "member.added",
    actor_id: str = "acc-actor",
    outcome: Outcome = Outcome.SUCCESS,
    targets: tuple[Target, ...] = (),
    occurred_at: datetime | None = None,
) -> EventRecord:
    return EventRecord(
        id=event_id or f"evt-{scope}-{seq}",
        scope=scope,
        seq=seq,
        occurred_at=occurred_at or at(seq),
        action=action,
        category="members",
        outcome=outcome,
        actor_type="account",
        actor_id=actor_id,
        targets=targets,
        context={"request_id": f"req-{seq}", "product": "tracker"},
        metadata={"note": "n", "count": seq, "flag": seq % 2 == 0, "none": None},
        commitments={"actor.email": hashlib.sha256(f"c{seq}".encode()).hexdigest()},
        prev_hash=GENESIS_HASH if seq == 1 else chain_hash(scope, seq - 1),
        hash=chain_hash(scope, seq),
    )


def make_datum(event_id: str, slot: str, subject_id: str, value: str) -> PersonalDatum:
    return PersonalDatum(
        event_id=event_id, slot=slot, subject_id=subject_id, salt=f"salt-{slot}", value=value
    )


def make_message(
    message_id: str,
    *,
    key: str | None = None,
    created: float = 0,
    due: float | None = None,
    kind: OutboxKind = OutboxKind.EMAIL,
) -> OutboxMessage:
    return OutboxMessage(
        id=message_id,
        kind=kind,
        topic="invitation" if kind is OutboxKind.EMAIL else "account.deactivated",
        scope="org-a",
        payload={"to": f"{message_id}@example.com", "count": 2, "urgent": True, "none": None},
        idempotency_key=key or f"key-{message_id}",
        created_at=at(created),
        next_attempt_at=at(created if due is None else due),
    )


def make_plan(org_id: str, *, due: float | None = None, seats: int | None = 5) -> StoredPlan:
    """A trialing organization's plan, due at ``T0 + due`` minutes (``None``: never)."""
    return StoredPlan(
        org_id=org_id,
        record=PlanRecord(
            trial_started_at=T0,
            trial_ends_at=T0 + timedelta(days=30),
            seats=seats,
            last_event_at=T0,
        ),
        next_due_at=None if due is None else at(due),
    )


def make_full_plan_record() -> PlanRecord:
    """A record with every fact set, consistently."""
    day = timedelta(days=1)
    return PlanRecord(
        trial_started_at=T0,
        trial_ends_at=T0 + 30 * day,
        plan_name="Pro",
        seats=25,
        paid_starts_at=T0 + 30 * day,
        period_ends_at=(T0 + 60 * day).astimezone(JST),
        grace_ends_at=T0 + 63 * day,
        canceled_at=T0 + 40 * day,
        cancel_effective_at=T0 + 60 * day,
        suspended_at=T0 + 41 * day,
        suspended_until=T0 + 50 * day,
        ended_at=T0 + 42 * day,
        last_event_at=T0 + 42 * day,
    )


def add_all(store: Store, *entities: object) -> None:
    """Insert entities, in order, in one transaction."""
    with store.transaction() as uow:
        for entity in entities:
            match entity:
                case Organization():
                    uow.organizations.add(entity)
                case Account():
                    uow.accounts.add(entity)
                case Membership():
                    uow.memberships.add(entity)
                case Team():
                    uow.teams.add(entity)
                case TeamMember():
                    uow.teams.add_member(entity)
                case Invitation():
                    uow.invitations.add(entity)
                case ConversionRequest():
                    uow.conversions.add(entity)
                case Domain():
                    uow.domains.add(entity)
                case EventRecord():
                    uow.audit.append(entity, ())
                case OutboxMessage():
                    uow.outbox.add(entity)
                case FailureCounter():
                    uow.audit.put_failure_counter(entity)
                case StoredPlan():
                    uow.plans.add(entity)
                case _:  # pragma: no cover - a mistake in a test
                    raise TypeError(f"cannot add {entity!r}")


def append_chain(
    store: Store,
    scope: str,
    count: int,
    *,
    actor_id: str = "acc-actor",
    targets: tuple[Target, ...] = (),
) -> list[EventRecord]:
    """Append events 1..count to ``scope`` in one transaction and return them."""
    events = [
        make_event(scope, seq, actor_id=actor_id, targets=targets) for seq in range(1, count + 1)
    ]
    add_all(store, *events)
    return events


def read(store: Store, fn: Callable[[UnitOfWork], R]) -> R:
    """Run ``fn`` in its own transaction and return its result."""
    with store.transaction() as uow:
        return fn(uow)


def must(value: R | None) -> R:
    """``value``, which the test expects to exist."""
    assert value is not None
    return value


def is_aware(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is not None and value.utcoffset() is not None


def by_slot(data: Iterable[PersonalDatum]) -> list[PersonalDatum]:
    return sorted(data, key=lambda d: d.slot)


class _AbortError(Exception):
    """Raised inside a transaction to force a rollback."""


def _write_and_abort(store: Store, write: Callable[[UnitOfWork], object]) -> None:
    with store.transaction() as uow:
        write(uow)
        raise _AbortError


# ---------------------------------------------------------------------------------------
# The world every rollback case starts from, and a snapshot of everything it holds.

_WORLD: tuple[object, ...] = (
    make_org("org-a"),
    make_org("org-b"),
    make_account("acc-1"),
    make_account("acc-2", managed_by="org-a"),
    make_membership("org-a", "acc-1", role=Role.ADMIN),
    make_membership("org-a", "acc-2"),
    make_team("team-1", "org-a", "Design"),
    TeamMember("team-1", "acc-2", T0),
    make_invitation("inv-1", "org-a", "acc-2"),
    make_conversion("conv-1", "org-b", "acc-1"),
    make_domain("dom-1", "org-a", "example.com"),
    make_message("msg-1"),
    FailureCounter("org-a", "fail-1", T0, 1),
    make_plan("org-a", due=60),
)


def _seed_world(store: Store) -> None:
    add_all(store, *_WORLD)
    with store.transaction() as uow:
        uow.audit.append(
            make_event("org-a", 1, targets=(Target("account", "acc-2"),)),
            [make_datum("evt-org-a-1", "target.0.email", "acc-2", "acc-2@example.com")],
        )
        uow.plans.add_notice("org-a", "notice-1", T0)
        uow.plans.record_billing_event(
            event_id="bill-1",
            org_id="org-a",
            kind="renewed",
            occurred_at=T0,
            outcome="applied",
            recorded_at=T0,
        )
        uow.plans.add_withdrawn_privilege("org-a", "acc-2", T0)


def _snapshot(uow: UnitOfWork) -> tuple[object, ...]:
    """Everything a client can read about the world, through the ports only."""
    accounts = ("acc-1", "acc-2", "acc-new")
    return (
        [uow.organizations.get(o) for o in ("org-a", "org-b", "org-new")],
        [uow.accounts.get(a) for a in accounts],
        [uow.accounts.get_by_email(f"{a}@example.com") for a in accounts],
        uow.accounts.count_managed("org-a"),
        uow.memberships.list_for_org("org-a"),
        uow.memberships.list_for_org("org-b"),
        uow.teams.list_for_org("org-a"),
        uow.teams.list_members("team-1"),
        uow.teams.list_members("team-new"),
        [uow.invitations.get(i) for i in ("inv-1", "inv-new")],
        uow.invitations.pending_for_account("acc-2"),
        [uow.conversions.get(c) for c in ("conv-1", "conv-new")],
        uow.domains.list_for_org("org-a"),
        uow.audit.head("org-a"),
        list(uow.audit.iter_chain("org-a")),
        {k: by_slot(v) for k, v in uow.audit.personal_for(["evt-org-a-1", "evt-org-a-2"]).items()},
        uow.audit.scopes(),
        uow.audit.get_failure_counter("org-a", "fail-1"),
        uow.audit.get_failure_counter("org-a", "fail-new"),
        [uow.outbox.get(m) for m in ("msg-1", "msg-new")],
        uow.outbox.pending_count(),
        [uow.plans.get(o) for o in ("org-a", "org-b")],
        uow.plans.due(at(10_000), 10),
        uow.plans.notices("org-a"),
        [uow.plans.billing_event_seen(b) for b in ("bill-1", "bill-new")],
        uow.plans.last_billing_event_at("org-a"),
        uow.plans.withdrawn_privileges("org-a"),
    )


def _delete_account(uow: UnitOfWork) -> None:
    # acc-1 has a membership and a conversion request; remove those first, as the port
    # requires, then the account itself.
    uow.memberships.delete("org-a", "acc-1")
    uow.conversions.delete_for_account("acc-1")
    uow.accounts.delete("acc-1")


#: Every repository write, applied to the seeded world. Each must change the snapshot
#: when committed and leave it untouched when its transaction raises.
_WRITES: dict[str, Callable[[UnitOfWork], object]] = {
    "organizations.add": lambda u: u.organizations.add(make_org("org-new")),
    "organizations.update": lambda u: u.organizations.update(
        attrs.evolve(must(u.organizations.get("org-a")), name="Renamed")
    ),
    "accounts.add": lambda u: u.accounts.add(make_account("acc-new")),
    "accounts.update": lambda u: u.accounts.update(
        attrs.evolve(must(u.accounts.get("acc-1")), display_name="Renamed")
    ),
    "accounts.delete": _delete_account,
    "memberships.add": lambda u: u.memberships.add(make_membership("org-b", "acc-1")),
    "memberships.update": lambda u: u.memberships.update(
        attrs.evolve(must(u.memberships.get("org-a", "acc-2")), plan_admin=True)
    ),
    "memberships.delete": lambda u: u.memberships.delete("org-a", "acc-2"),
    "teams.add": lambda u: u.teams.add(make_team("team-new", "org-a", "Sales")),
    "teams.update": lambda u: u.teams.update(
        attrs.evolve(must(u.teams.get("team-1")), name="Product")
    ),
    "teams.delete": lambda u: u.teams.delete("team-1"),
    "teams.add_member": lambda u: u.teams.add_member(TeamMember("team-1", "acc-1", T0)),
    "teams.remove_member": lambda u: u.teams.remove_member("team-1", "acc-2"),
    "teams.remove_account": lambda u: u.teams.remove_account("org-a", "acc-2"),
    "invitations.add": lambda u: u.invitations.add(make_invitation("inv-new", "org-a", "acc-1")),
    "invitations.update": lambda u: u.invitations.update(
        attrs.evolve(must(u.invitations.get("inv-1")), status=InvitationStatus.REVOKED)
    ),
    "invitations.delete_for_account": lambda u: u.invitations.delete_for_account("acc-2"),
    "conversions.add": lambda u: u.conversions.add(make_conversion("conv-new", "org-a", "acc-1")),
    "conversions.update": lambda u: u.conversions.update(
        attrs.evolve(must(u.conversions.get("conv-1")), status=ConversionStatus.DECLINED)
    ),
    "conversions.delete_for_account": lambda u: u.conversions.delete_for_account("acc-1"),
    "domains.add": lambda u: u.domains.add(make_domain("dom-new", "org-a", "example.org")),
    "domains.update": lambda u: u.domains.update(
        attrs.evolve(
            must(u.domains.get("org-a", "example.com")),
            status=DomainStatus.VERIFIED,
            verified_at=T0,
        )
    ),
    "audit.append": lambda u: u.audit.append(
        make_event("org-a", 2), [make_datum("evt-org-a-2", "actor.email", "acc-1", "a@b.c")]
    ),
    "audit.erase_subject": lambda u: u.audit.erase_subject("acc-2"),
    "audit.put_failure_counter": lambda u: u.audit.put_failure_counter(
        FailureCounter("org-a", "fail-1", at(5), 7)
    ),
    "outbox.add": lambda u: u.outbox.add(make_message("msg-new")),
    "outbox.mark_dispatched": lambda u: u.outbox.mark_dispatched("msg-1", at(1)),
    "outbox.mark_failed": lambda u: u.outbox.mark_failed(
        "msg-1", attempts=1, next_attempt_at=at(10), error="SMTP 451"
    ),
    "plans.add": lambda u: u.plans.add(make_plan("org-b")),
    "plans.update": lambda u: u.plans.update(
        attrs.evolve(must(u.plans.get("org-a")), next_due_at=at(5))
    ),
    "plans.add_notice": lambda u: u.plans.add_notice("org-a", "notice-new", at(1)),
    "plans.record_billing_event": lambda u: u.plans.record_billing_event(
        event_id="bill-new",
        org_id="org-a",
        kind="renewed",
        occurred_at=at(1),
        outcome="applied",
        recorded_at=at(2),
    ),
    "plans.add_withdrawn_privilege": lambda u: u.plans.add_withdrawn_privilege(
        "org-a", "acc-1", at(1)
    ),
    "plans.clear_withdrawn_privileges": lambda u: u.plans.clear_withdrawn_privileges("org-a"),
}


# ---------------------------------------------------------------------------------------


class StoreContract:
    """The storage contract suite. Subclasses provide a ``store`` fixture returning a
    fresh, empty :class:`~nulabpass.ports.Store` for every test."""

    # -- transactions ------------------------------------------------------------------

    def test_leaving_the_block_normally_commits(self, store: Store) -> None:
        """What a unit of work writes is visible to the next one after a normal exit."""
        add_all(store, make_org())
        assert read(store, lambda u: u.organizations.get("org-a")) == make_org()

    @pytest.mark.parametrize("write", sorted(_WRITES))
    def test_an_exception_rolls_back_every_write(self, store: Store, write: str) -> None:
        """Each repository write vanishes when its transaction raises, and shows when
        its transaction commits."""
        _seed_world(store)
        before = read(store, _snapshot)
        with pytest.raises(_AbortError):
            _write_and_abort(store, _WRITES[write])
        assert read(store, _snapshot) == before
        with store.transaction() as uow:
            _WRITES[write](uow)
        assert read(store, _snapshot) != before

    def test_a_conflict_leaves_the_unit_of_work_usable(self, store: Store) -> None:
        """A Conflict from a repository changes nothing and the transaction can go on
        and commit its other writes."""
        add_all(store, make_org(), make_account("acc-1"))
        with store.transaction() as uow:
            with pytest.raises(Conflict):
                uow.accounts.add(make_account("acc-2", email="acc-1@example.com"))
            with pytest.raises(Conflict):
                uow.organizations.add(make_org())
            uow.accounts.add(make_account("acc-3"))
        assert read(store, lambda u: u.accounts.get("acc-3")) == make_account("acc-3")
        assert read(store, lambda u: u.accounts.get("acc-2")) is None

    # -- organizations -------------------------------------------------------------------

    def test_a_snapshot_reads_what_was_committed(self, store: Store) -> None:
        """A snapshot sees every unit of work committed before it opened, and one
        opened inside a transaction of the same store sees that transaction's writes."""
        add_all(store, make_org(), make_account("acc-1"))
        with store.snapshot() as uow:
            assert uow.organizations.get("org-a") == make_org()
            assert uow.accounts.get("acc-1") == make_account("acc-1")
        with store.transaction() as outer:
            outer.accounts.add(make_account("acc-2"))
            with store.snapshot() as inner:
                assert inner.accounts.get("acc-2") == make_account("acc-2")
        assert read(store, lambda u: u.accounts.get("acc-2")) == make_account("acc-2")

    def test_organization_round_trips(self, store: Store) -> None:
        """Every field of an organization, settings and aware times included, reads back
        equal to what was written."""
        org = attrs.evolve(
            make_org(requires_admin=True),
            created_at=T0.astimezone(JST),
            saml_configured_at=at(3),
        )
        add_all(store, org)
        got = read(store, lambda u: u.organizations.get("org-a"))
        assert got == org
        assert isinstance(got, Organization)
        assert is_aware(got.created_at)
        assert is_aware(got.saml_configured_at)
        assert got.settings.break_glass_requires_admin is True

    def test_missing_organization_is_none(self, store: Store) -> None:
        """get and lock return None for an unknown organization."""
        assert read(store, lambda u: u.organizations.get("nope")) is None
        assert read(store, lambda u: u.organizations.lock("nope")) is None

    def test_lock_returns_the_organization(self, store: Store) -> None:
        """lock returns the same organization as get."""
        add_all(store, make_org())
        assert read(store, lambda u: u.organizations.lock("org-a")) == make_org()

    def test_duplicate_organization_is_a_conflict(self, store: Store) -> None:
        """Adding an existing organization id raises Conflict (organization.exists)."""
        add_all(store, make_org())
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.organizations.add(attrs.evolve(make_org(), name="Other"))
        assert info.value.code == "organization.exists"
        assert read(store, lambda u: u.organizations.get("org-a")) == make_org()

    def test_organization_update_bumps_version(self, store: Store) -> None:
        """update returns the organization with version + 1, which is what is stored."""
        add_all(store, make_org())
        changed = attrs.evolve(make_org(), name="Renamed", settings=OrgSettings(True))
        with store.transaction() as uow:
            written = uow.organizations.update(changed)
        assert written == attrs.evolve(changed, version=2)
        assert read(store, lambda u: u.organizations.get("org-a")) == written

    def test_stale_organization_update_raises_and_changes_nothing(self, store: Store) -> None:
        """Writing from an old version raises StaleWrite; the stored row is unchanged."""
        add_all(store, make_org())
        with store.transaction() as uow:
            current = uow.organizations.update(attrs.evolve(make_org(), name="First"))
        with pytest.raises(StaleWrite) as info, store.transaction() as uow:
            uow.organizations.update(attrs.evolve(make_org(), name="Second"))
        assert info.value.code == "conflict.stale_write"
        assert read(store, lambda u: u.organizations.get("org-a")) == current

    def test_updating_a_missing_row_is_not_found(self, store: Store) -> None:
        """update of a row that does not exist raises NotFound (``<resource>.not_found``)
        for every versioned repository; nothing is created."""
        add_all(store, make_org(), make_account("acc-1"))
        cases: list[tuple[str, Callable[[UnitOfWork], object]]] = [
            ("organization", lambda u: u.organizations.update(make_org("org-x"))),
            ("account", lambda u: u.accounts.update(make_account("acc-x"))),
            (
                "membership",
                lambda u: u.memberships.update(make_membership("org-a", "acc-1")),
            ),
            ("team", lambda u: u.teams.update(make_team("team-x", "org-a", "X"))),
            (
                "invitation",
                lambda u: u.invitations.update(make_invitation("inv-x", "org-a", "acc-1")),
            ),
            (
                "conversion",
                lambda u: u.conversions.update(make_conversion("conv-x", "org-a", "acc-1")),
            ),
            ("domain", lambda u: u.domains.update(make_domain("dom-x", "org-a", "x.test"))),
            ("plan", lambda u: u.plans.update(make_plan("org-a"))),
        ]
        for resource, update in cases:
            with pytest.raises(NotFound) as info, store.transaction() as uow:
                update(uow)
            assert info.value.code == f"{resource}.not_found"
        assert read(store, lambda u: u.organizations.get("org-x")) is None
        assert read(store, lambda u: u.memberships.get("org-a", "acc-1")) is None

    # -- accounts ------------------------------------------------------------------------

    def test_account_round_trips(self, store: Store) -> None:
        """Managed and non-managed accounts read back equal, by id and by email."""
        managed = attrs.evolve(
            make_account("acc-2", managed_by="org-a", status=AccountStatus.INVITED),
            updated_at=at(1).astimezone(JST),
        )
        add_all(store, make_org(), make_account("acc-1"), managed)
        assert read(store, lambda u: u.accounts.get("acc-1")) == make_account("acc-1")
        got = read(store, lambda u: u.accounts.get("acc-2"))
        assert got == managed
        assert isinstance(got, Account)
        assert got.status is AccountStatus.INVITED
        assert is_aware(got.updated_at)
        assert read(store, lambda u: u.accounts.get_by_email("acc-2@example.com")) == managed
        assert read(store, lambda u: u.accounts.get_by_email("nobody@example.com")) is None
        assert read(store, lambda u: u.accounts.get("nope")) is None

    def test_duplicate_email_is_account_email_taken(self, store: Store) -> None:
        """A second account with a taken email raises Conflict (account.email_taken)."""
        add_all(store, make_account("acc-1"))
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.accounts.add(make_account("acc-2", email="acc-1@example.com"))
        assert info.value.code == "account.email_taken"
        assert read(store, lambda u: u.accounts.get("acc-2")) is None

    def test_duplicate_account_id_is_a_conflict(self, store: Store) -> None:
        """Adding an existing account id with a new email raises Conflict."""
        add_all(store, make_account("acc-1"))
        with pytest.raises(Conflict), store.transaction() as uow:
            uow.accounts.add(make_account("acc-1", email="other@example.com"))
        assert read(store, lambda u: u.accounts.get_by_email("other@example.com")) is None

    def test_account_update_and_stale_write(self, store: Store) -> None:
        """update bumps the version; a second write from the old version is stale and
        leaves the first one in place."""
        add_all(store, make_account("acc-1"))
        with store.transaction() as uow:
            first = uow.accounts.update(attrs.evolve(make_account("acc-1"), language="en"))
        assert first.version == 2
        with pytest.raises(StaleWrite), store.transaction() as uow:
            uow.accounts.update(attrs.evolve(make_account("acc-1"), language="fr"))
        assert read(store, lambda u: u.accounts.get("acc-1")) == first

    def test_changing_email_follows_the_index(self, store: Store) -> None:
        """After an email change the account is found by the new email only."""
        add_all(store, make_account("acc-1"))
        with store.transaction() as uow:
            uow.accounts.update(attrs.evolve(make_account("acc-1"), email="new@example.com"))
        assert read(store, lambda u: u.accounts.get_by_email("acc-1@example.com")) is None
        got = read(store, lambda u: u.accounts.get_by_email("new@example.com"))
        assert isinstance(got, Account)
        assert got.id == "acc-1"

    def test_changing_email_to_a_taken_one_is_email_taken(self, store: Store) -> None:
        """update to another account's email raises Conflict (account.email_taken)."""
        add_all(store, make_account("acc-1"), make_account("acc-2"))
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.accounts.update(attrs.evolve(make_account("acc-2"), email="acc-1@example.com"))
        assert info.value.code == "account.email_taken"
        assert read(store, lambda u: u.accounts.get("acc-2")) == make_account("acc-2")

    def test_deleted_account_is_gone(self, store: Store) -> None:
        """delete removes the account from get and get_by_email and frees its email."""
        add_all(store, make_account("acc-1"))
        with store.transaction() as uow:
            uow.accounts.delete("acc-1")
        assert read(store, lambda u: u.accounts.get("acc-1")) is None
        assert read(store, lambda u: u.accounts.get_by_email("acc-1@example.com")) is None
        add_all(store, make_account("acc-9", email="acc-1@example.com"))

    def test_updating_a_deleted_account_is_not_found(self, store: Store) -> None:
        """A write based on an account deleted meanwhile raises NotFound."""
        add_all(store, make_account("acc-1"))
        with store.transaction() as uow:
            uow.accounts.delete("acc-1")
        with pytest.raises(NotFound), store.transaction() as uow:
            uow.accounts.update(make_account("acc-1"))

    def test_managed_accounts_are_counted_and_listed_by_id(self, store: Store) -> None:
        """count_managed and list_managed see every status of the organization's managed
        accounts, ordered by id, and nothing else."""
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            make_account("m-3", managed_by="org-a", status=AccountStatus.DEACTIVATED),
            make_account("m-1", managed_by="org-a", status=AccountStatus.INVITED),
            make_account("m-2", managed_by="org-a"),
            make_account("x-1", managed_by="org-b"),
            make_account("free"),
        )
        assert read(store, lambda u: u.accounts.count_managed("org-a")) == 3
        assert read(store, lambda u: u.accounts.count_managed("org-c")) == 0
        listed = read(store, lambda u: u.accounts.list_managed("org-a"))
        assert [a.id for a in listed] == ["m-1", "m-2", "m-3"]
        assert read(store, lambda u: u.accounts.list_managed("org-c")) == []

    # -- memberships ---------------------------------------------------------------------

    def test_membership_round_trips(self, store: Store) -> None:
        """A membership with its role and privileges reads back equal."""
        membership = make_membership(
            "org-a", "acc-1", role=Role.ADMIN, plan_admin=True, audit_log_admin=True
        )
        add_all(store, make_org(), make_account("acc-1"), membership)
        got = read(store, lambda u: u.memberships.get("org-a", "acc-1"))
        assert got == membership
        assert isinstance(got, Membership)
        assert got.role is Role.ADMIN
        assert read(store, lambda u: u.memberships.get("org-a", "acc-2")) is None

    def test_duplicate_membership_is_membership_exists(self, store: Store) -> None:
        """Adding an existing membership raises Conflict (membership.exists)."""
        add_all(store, make_org(), make_account("acc-1"), make_membership("org-a", "acc-1"))
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.memberships.add(make_membership("org-a", "acc-1", role=Role.ADMIN))
        assert info.value.code == "membership.exists"
        got = read(store, lambda u: u.memberships.get("org-a", "acc-1"))
        assert got == make_membership("org-a", "acc-1")

    def test_membership_update_and_stale_write(self, store: Store) -> None:
        """update bumps the version; a write from the old version is stale."""
        add_all(store, make_org(), make_account("acc-1"), make_membership("org-a", "acc-1"))
        base = make_membership("org-a", "acc-1")
        with store.transaction() as uow:
            first = uow.memberships.update(attrs.evolve(base, role=Role.ADMIN))
        assert first.version == 2
        with pytest.raises(StaleWrite), store.transaction() as uow:
            uow.memberships.update(attrs.evolve(base, plan_admin=True))
        assert read(store, lambda u: u.memberships.get("org-a", "acc-1")) == first

    def test_membership_delete(self, store: Store) -> None:
        """delete removes the membership; deleting an absent one is a no-op."""
        add_all(store, make_org(), make_account("acc-1"), make_membership("org-a", "acc-1"))
        with store.transaction() as uow:
            uow.memberships.delete("org-a", "acc-1")
            uow.memberships.delete("org-a", "acc-1")
            uow.memberships.delete("org-z", "acc-z")
        assert read(store, lambda u: u.memberships.get("org-a", "acc-1")) is None

    def test_memberships_are_listed_in_order(self, store: Store) -> None:
        """list_for_org orders by account id; list_for_account by organization id."""
        add_all(
            store,
            make_org("org-b"),
            make_org("org-a"),
            make_account("acc-2"),
            make_account("acc-1"),
            make_membership("org-b", "acc-2"),
            make_membership("org-a", "acc-2"),
            make_membership("org-a", "acc-1"),
        )
        by_org = read(store, lambda u: u.memberships.list_for_org("org-a"))
        assert [m.account_id for m in by_org] == ["acc-1", "acc-2"]
        by_account = read(store, lambda u: u.memberships.list_for_account("acc-2"))
        assert [m.org_id for m in by_account] == ["org-a", "org-b"]
        assert read(store, lambda u: u.memberships.list_for_org("org-z")) == []

    def test_break_glass_truth_table(self, store: Store) -> None:
        """count_break_glass counts a member exactly when the account is active and not
        managed, and the member is an admin, or a plan admin unless require_admin."""
        cases: list[tuple[str, AccountStatus, bool, Role, bool]] = []
        entities: list[object] = []
        for status in AccountStatus:
            for managed in (False, True):
                for role in Role:
                    for plan_admin in (False, True):
                        n = len(cases)
                        org_id, account_id = f"org-{n:02d}", f"acc-{n:02d}"
                        cases.append((org_id, status, managed, role, plan_admin))
                        entities += [
                            make_org(org_id),
                            make_account(
                                account_id,
                                status=status,
                                managed_by=org_id if managed else None,
                            ),
                            make_membership(org_id, account_id, role=role, plan_admin=plan_admin),
                        ]
        add_all(store, *entities)
        with store.transaction() as uow:
            for org_id, status, managed, role, plan_admin in cases:
                for require_admin in (False, True):
                    expected = (
                        status is AccountStatus.ACTIVE
                        and not managed
                        and (role is Role.ADMIN or (plan_admin and not require_admin))
                    )
                    got = uow.memberships.count_break_glass(org_id, require_admin=require_admin)
                    assert got == int(expected), (status, managed, role, plan_admin, require_admin)

    def test_break_glass_counts_members_of_one_organization(self, store: Store) -> None:
        """count_break_glass adds up the qualifying members of one organization only."""
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            make_account("acc-1"),
            make_account("acc-2"),
            make_account("acc-3"),
            make_membership("org-a", "acc-1", role=Role.ADMIN),
            make_membership("org-a", "acc-2", plan_admin=True),
            make_membership("org-a", "acc-3"),
            make_membership("org-b", "acc-3", role=Role.ADMIN),
        )
        assert (
            read(store, lambda u: u.memberships.count_break_glass("org-a", require_admin=False))
            == 2
        )
        assert (
            read(store, lambda u: u.memberships.count_break_glass("org-a", require_admin=True))
            == 1
        )
        assert (
            read(store, lambda u: u.memberships.count_break_glass("org-b", require_admin=True))
            == 1
        )
        assert (
            read(store, lambda u: u.memberships.count_break_glass("org-c", require_admin=False))
            == 0
        )

    # -- teams ---------------------------------------------------------------------------

    def test_team_round_trips_and_is_found_by_name_case_insensitively(self, store: Store) -> None:
        """A team reads back equal by id, and by name whatever the case."""
        team = attrs.evolve(make_team("team-1", "org-a", "Design Ops"), created_at=at(1))
        add_all(store, make_org("org-a"), make_org("org-b"), team)
        assert read(store, lambda u: u.teams.get("team-1")) == team
        assert read(store, lambda u: u.teams.get_by_name("org-a", "design ops")) == team
        assert read(store, lambda u: u.teams.get_by_name("org-a", "DESIGN OPS")) == team
        assert read(store, lambda u: u.teams.get_by_name("org-b", "Design Ops")) is None
        assert read(store, lambda u: u.teams.get_by_name("org-a", "Design")) is None
        assert read(store, lambda u: u.teams.get("nope")) is None

    def test_team_names_are_unique_per_organization_ignoring_case(self, store: Store) -> None:
        """A second team named like an existing one (any case) raises Conflict
        (team.name_taken); another organization may use the name."""
        add_all(store, make_org("org-a"), make_org("org-b"), make_team("t1", "org-a", "Design"))
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.teams.add(make_team("t2", "org-a", "dESIGN"))
        assert info.value.code == "team.name_taken"
        assert read(store, lambda u: u.teams.get("t2")) is None
        add_all(store, make_team("t3", "org-b", "Design"))

    def test_teams_are_listed_by_name(self, store: Store) -> None:
        """list_for_org orders teams by name, ignoring case."""
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            make_team("t1", "org-a", "sales"),
            make_team("t2", "org-a", "Design"),
            make_team("t3", "org-a", "Engineering"),
            make_team("t4", "org-b", "Alpha"),
        )
        teams = read(store, lambda u: u.teams.list_for_org("org-a"))
        assert [t.name for t in teams] == ["Design", "Engineering", "sales"]

    def test_team_update_rename_and_stale_write(self, store: Store) -> None:
        """update renames (a change of case alone is allowed), bumps the version and
        refuses a stale write; the new name is found by get_by_name."""
        add_all(store, make_org(), make_team("t1", "org-a", "Design"))
        with store.transaction() as uow:
            first = uow.teams.update(
                attrs.evolve(make_team("t1", "org-a", "Design"), name="DESIGN")
            )
        assert first.version == 2
        assert read(store, lambda u: u.teams.get_by_name("org-a", "design")) == first
        with pytest.raises(StaleWrite), store.transaction() as uow:
            uow.teams.update(make_team("t1", "org-a", "Other"))
        assert read(store, lambda u: u.teams.get("t1")) == first

    def test_renaming_a_team_to_a_taken_name_is_name_taken(self, store: Store) -> None:
        """update to another team's name (any case) raises Conflict (team.name_taken)."""
        add_all(
            store,
            make_org(),
            make_team("t1", "org-a", "Design"),
            make_team("t2", "org-a", "Sales"),
        )
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.teams.update(attrs.evolve(make_team("t2", "org-a", "Sales"), name="design"))
        assert info.value.code == "team.name_taken"
        assert read(store, lambda u: u.teams.get("t2")) == make_team("t2", "org-a", "Sales")

    def test_team_members(self, store: Store) -> None:
        """add_member, is_member, list_members (by account id) and remove_member, which
        reports whether the member existed; a duplicate is team.member_exists."""
        add_all(
            store,
            make_org(),
            make_account("acc-2"),
            make_account("acc-1"),
            make_team("t1", "org-a", "Design"),
            TeamMember("t1", "acc-2", at(1).astimezone(JST)),
            TeamMember("t1", "acc-1", at(2)),
        )
        members = read(store, lambda u: u.teams.list_members("t1"))
        assert members == [TeamMember("t1", "acc-1", at(2)), TeamMember("t1", "acc-2", at(1))]
        assert all(is_aware(m.added_at) for m in members)
        assert read(store, lambda u: u.teams.is_member("t1", "acc-1")) is True
        assert read(store, lambda u: u.teams.is_member("t1", "acc-9")) is False
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.teams.add_member(TeamMember("t1", "acc-1", at(3)))
        assert info.value.code == "team.member_exists"
        with store.transaction() as uow:
            assert uow.teams.remove_member("t1", "acc-1") is True
            assert uow.teams.remove_member("t1", "acc-1") is False
        assert read(store, lambda u: u.teams.list_members("t1")) == [
            TeamMember("t1", "acc-2", at(1))
        ]

    def test_deleting_a_team_removes_its_members(self, store: Store) -> None:
        """delete removes the team and all its memberships, and no other team's."""
        add_all(
            store,
            make_org(),
            make_account("acc-1"),
            make_team("t1", "org-a", "Design"),
            make_team("t2", "org-a", "Sales"),
            TeamMember("t1", "acc-1", T0),
            TeamMember("t2", "acc-1", T0),
        )
        with store.transaction() as uow:
            uow.teams.delete("t1")
        assert read(store, lambda u: u.teams.get("t1")) is None
        assert read(store, lambda u: u.teams.list_members("t1")) == []
        assert read(store, lambda u: u.teams.is_member("t1", "acc-1")) is False
        assert read(store, lambda u: u.teams.is_member("t2", "acc-1")) is True
        add_all(store, make_team("t3", "org-a", "Design"))

    def test_remove_account_leaves_other_organizations_teams(self, store: Store) -> None:
        """remove_account takes the account out of every team of one organization and
        returns how many memberships it removed."""
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            make_account("acc-1"),
            make_account("acc-2"),
            make_team("a1", "org-a", "One"),
            make_team("a2", "org-a", "Two"),
            make_team("b1", "org-b", "One"),
            TeamMember("a1", "acc-1", T0),
            TeamMember("a2", "acc-1", T0),
            TeamMember("a2", "acc-2", T0),
            TeamMember("b1", "acc-1", T0),
        )
        with store.transaction() as uow:
            assert uow.teams.remove_account("org-a", "acc-1") == 2
            assert uow.teams.remove_account("org-a", "acc-1") == 0
        assert read(store, lambda u: u.teams.is_member("a1", "acc-1")) is False
        assert read(store, lambda u: u.teams.is_member("a2", "acc-1")) is False
        assert read(store, lambda u: u.teams.is_member("a2", "acc-2")) is True
        assert read(store, lambda u: u.teams.is_member("b1", "acc-1")) is True

    # -- invitations and conversions -------------------------------------------------

    def test_invitation_round_trips(self, store: Store) -> None:
        """Invitations with and without a team read back equal."""
        with_team = make_invitation("inv-1", "org-a", "acc-1", team_id="team-1")
        without = make_invitation("inv-2", "org-a", "acc-2", status=InvitationStatus.ACCEPTED)
        add_all(
            store,
            make_org(),
            make_account("acc-1"),
            make_account("acc-2"),
            make_team("team-1", "org-a", "Design"),
            with_team,
            without,
        )
        got = read(store, lambda u: u.invitations.get("inv-1"))
        assert got == with_team
        assert isinstance(got, Invitation)
        assert is_aware(got.expires_at)
        assert read(store, lambda u: u.invitations.get("inv-2")) == without
        assert read(store, lambda u: u.invitations.get("nope")) is None

    def test_duplicate_invitation_id_is_a_conflict(self, store: Store) -> None:
        """Adding an existing invitation id raises Conflict and keeps the first one."""
        first = make_invitation("inv-1", "org-a", "acc-1")
        add_all(store, make_org(), make_account("acc-1"), first)
        with pytest.raises(Conflict), store.transaction() as uow:
            uow.invitations.add(attrs.evolve(first, token_hash="0" * 64))
        assert read(store, lambda u: u.invitations.get("inv-1")) == first

    def test_pending_invitation_of_an_account(self, store: Store) -> None:
        """pending_for_account returns the pending invitation, never an accepted or
        revoked one, and None when there is none."""
        add_all(
            store,
            make_org(),
            make_account("acc-1"),
            make_account("acc-2"),
            make_invitation("inv-1", "org-a", "acc-1", status=InvitationStatus.REVOKED),
            make_invitation("inv-2", "org-a", "acc-1"),
            make_invitation("inv-3", "org-a", "acc-2", status=InvitationStatus.ACCEPTED),
        )
        got = read(store, lambda u: u.invitations.pending_for_account("acc-1"))
        assert isinstance(got, Invitation)
        assert got.id == "inv-2"
        assert read(store, lambda u: u.invitations.pending_for_account("acc-2")) is None
        assert read(store, lambda u: u.invitations.pending_for_account("acc-9")) is None

    def test_invitation_update_stale_write_and_delete(self, store: Store) -> None:
        """update bumps the version and refuses a stale write; delete_for_account
        removes every invitation of that account only."""
        inv = make_invitation("inv-1", "org-a", "acc-1")
        add_all(
            store,
            make_org(),
            make_account("acc-1"),
            make_account("acc-2"),
            inv,
            make_invitation("inv-2", "org-a", "acc-1", status=InvitationStatus.REVOKED),
            make_invitation("inv-3", "org-a", "acc-2"),
        )
        with store.transaction() as uow:
            accepted = uow.invitations.update(attrs.evolve(inv, status=InvitationStatus.ACCEPTED))
        assert accepted.version == 2
        assert read(store, lambda u: u.invitations.pending_for_account("acc-1")) is None
        with pytest.raises(StaleWrite), store.transaction() as uow:
            uow.invitations.update(attrs.evolve(inv, status=InvitationStatus.REVOKED))
        assert read(store, lambda u: u.invitations.get("inv-1")) == accepted
        with store.transaction() as uow:
            uow.invitations.delete_for_account("acc-1")
        assert read(store, lambda u: u.invitations.get("inv-1")) is None
        assert read(store, lambda u: u.invitations.get("inv-2")) is None
        assert read(store, lambda u: u.invitations.get("inv-3")) is not None

    def test_conversion_round_trips(self, store: Store) -> None:
        """A conversion request reads back equal."""
        req = make_conversion("conv-1", "org-a", "acc-1", status=ConversionStatus.DECLINED)
        add_all(store, make_org(), make_account("acc-1"), req)
        got = read(store, lambda u: u.conversions.get("conv-1"))
        assert got == req
        assert isinstance(got, ConversionRequest)
        assert got.status is ConversionStatus.DECLINED
        assert read(store, lambda u: u.conversions.get("nope")) is None

    def test_duplicate_conversion_id_is_a_conflict(self, store: Store) -> None:
        """Adding an existing conversion request id raises Conflict and keeps the first."""
        first = make_conversion("conv-1", "org-a", "acc-1")
        add_all(store, make_org(), make_account("acc-1"), first)
        with pytest.raises(Conflict), store.transaction() as uow:
            uow.conversions.add(attrs.evolve(first, token_hash="0" * 64))
        assert read(store, lambda u: u.conversions.get("conv-1")) == first

    def test_pending_conversion_is_per_organization_and_account(self, store: Store) -> None:
        """pending finds the pending request of one organization for one account only."""
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            make_account("acc-1"),
            make_account("acc-2"),
            make_conversion("c1", "org-a", "acc-1", status=ConversionStatus.CANCELLED),
            make_conversion("c2", "org-a", "acc-1"),
            make_conversion("c3", "org-b", "acc-2", status=ConversionStatus.ACCEPTED),
        )
        got = read(store, lambda u: u.conversions.pending("org-a", "acc-1"))
        assert isinstance(got, ConversionRequest)
        assert got.id == "c2"
        assert read(store, lambda u: u.conversions.pending("org-b", "acc-1")) is None
        assert read(store, lambda u: u.conversions.pending("org-b", "acc-2")) is None

    def test_conversion_update_stale_write_and_delete(self, store: Store) -> None:
        """update bumps the version and refuses a stale write; delete_for_account
        removes every request about that account only."""
        req = make_conversion("c1", "org-a", "acc-1")
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            make_account("acc-1"),
            make_account("acc-2"),
            req,
            make_conversion("c2", "org-b", "acc-1"),
            make_conversion("c3", "org-a", "acc-2"),
        )
        with store.transaction() as uow:
            done = uow.conversions.update(attrs.evolve(req, status=ConversionStatus.ACCEPTED))
        assert done.version == 2
        assert read(store, lambda u: u.conversions.pending("org-a", "acc-1")) is None
        with pytest.raises(StaleWrite), store.transaction() as uow:
            uow.conversions.update(attrs.evolve(req, status=ConversionStatus.DECLINED))
        assert read(store, lambda u: u.conversions.get("c1")) == done
        with store.transaction() as uow:
            uow.conversions.delete_for_account("acc-1")
        assert read(store, lambda u: u.conversions.get("c1")) is None
        assert read(store, lambda u: u.conversions.get("c2")) is None
        assert read(store, lambda u: u.conversions.get("c3")) is not None

    # -- domains -------------------------------------------------------------------------

    def test_domain_round_trips(self, store: Store) -> None:
        """A domain record reads back equal, by organization and name."""
        verified = attrs.evolve(
            make_domain("d1", "org-a", "example.com", status=DomainStatus.VERIFIED),
            include_subdomains=True,
            verified_at=at(2).astimezone(JST),
        )
        add_all(store, make_org("org-a"), make_org("org-b"), verified)
        got = read(store, lambda u: u.domains.get("org-a", "example.com"))
        assert got == verified
        assert isinstance(got, Domain)
        assert is_aware(got.verified_at)
        assert read(store, lambda u: u.domains.get("org-b", "example.com")) is None
        assert read(store, lambda u: u.domains.get("org-a", "example.org")) is None

    def test_a_domain_is_unique_per_organization(self, store: Store) -> None:
        """The same organization cannot add a domain twice (domain.exists); another
        organization can claim it too."""
        add_all(store, make_org("org-a"), make_org("org-b"), make_domain("d1", "org-a", "ex.com"))
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.domains.add(make_domain("d2", "org-a", "ex.com"))
        assert info.value.code == "domain.exists"
        add_all(store, make_domain("d3", "org-b", "ex.com"))
        assert read(store, lambda u: u.domains.get("org-b", "ex.com")) == make_domain(
            "d3", "org-b", "ex.com"
        )

    def test_domains_are_listed_by_name(self, store: Store) -> None:
        """list_for_org orders one organization's domains by name."""
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            make_domain("d1", "org-a", "zeta.test"),
            make_domain("d2", "org-a", "alpha.test"),
            make_domain("d3", "org-b", "beta.test"),
        )
        names = [d.name for d in read(store, lambda u: u.domains.list_for_org("org-a"))]
        assert names == ["alpha.test", "zeta.test"]

    def test_domain_update_and_stale_write(self, store: Store) -> None:
        """update bumps the version and refuses a stale write."""
        dom = make_domain("d1", "org-a", "ex.com")
        add_all(store, make_org(), dom)
        with store.transaction() as uow:
            done = uow.domains.update(
                attrs.evolve(dom, status=DomainStatus.VERIFIED, verified_at=at(1))
            )
        assert done.version == 2
        with pytest.raises(StaleWrite), store.transaction() as uow:
            uow.domains.update(attrs.evolve(dom, status=DomainStatus.UNVERIFIED))
        assert read(store, lambda u: u.domains.get("org-a", "ex.com")) == done

    # -- audit -----------------------------------------------------------------------

    def test_empty_chain_head_is_genesis(self, store: Store) -> None:
        """head of a scope without events is (0, GENESIS_HASH)."""
        assert read(store, lambda u: u.audit.head("org-a")) == (0, GENESIS_HASH)

    def test_append_moves_the_head_of_its_scope_only(self, store: Store) -> None:
        """head returns the seq and hash of the last appended event of each scope."""
        append_chain(store, "org-a", 3)
        append_chain(store, "host", 1)
        assert read(store, lambda u: u.audit.head("org-a")) == (3, chain_hash("org-a", 3))
        assert read(store, lambda u: u.audit.head("host")) == (1, chain_hash("host", 1))
        assert read(store, lambda u: u.audit.head("org-b")) == (0, GENESIS_HASH)

    def test_events_round_trip(self, store: Store) -> None:
        """Every field of an event (targets in order, context, metadata scalars,
        commitments, outcome, aware time) reads back equal through query and
        iter_chain."""
        event = make_event(
            "org-a",
            1,
            outcome=Outcome.FAILURE,
            targets=(Target("team", "t9"), Target("account", "acc-1"), Target("account", "a0")),
            occurred_at=at(1).astimezone(JST),
        )
        add_all(store, event)
        (queried,) = read(store, lambda u: u.audit.query(AuditQuery(scope="org-a")))
        chained = read(store, lambda u: list(u.audit.iter_chain("org-a")))
        assert queried == event
        assert chained == [event]
        assert queried.outcome is Outcome.FAILURE
        assert is_aware(queried.occurred_at)
        assert queried.metadata == {"note": "n", "count": 1, "flag": False, "none": None}

    def test_duplicate_seq_is_a_chain_conflict(self, store: Store) -> None:
        """Appending a second event with an existing (scope, seq) raises Conflict
        (audit.chain_conflict) and leaves the chain as it was."""
        (first,) = append_chain(store, "org-a", 1)
        rival = attrs.evolve(make_event("org-a", 1, event_id="evt-rival"), action="x.y")
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.audit.append(rival, [make_datum("evt-rival", "actor.email", "acc-1", "r@x.y")])
        assert info.value.code == "audit.chain_conflict"
        assert read(store, lambda u: list(u.audit.iter_chain("org-a"))) == [first]
        assert (
            read(store, lambda u: u.audit.personal_for(["evt-rival"]).get("evt-rival", ())) == ()
        )

    def test_a_gap_in_the_chain_is_a_chain_conflict(self, store: Store) -> None:
        """An event whose seq does not directly follow the head raises Conflict
        (audit.chain_conflict): seq counts from 1 without gaps."""
        append_chain(store, "org-a", 1)
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.audit.append(make_event("org-a", 3), ())
        assert info.value.code == "audit.chain_conflict"
        with pytest.raises(Conflict), store.transaction() as uow:
            uow.audit.append(make_event("org-b", 2), ())
        assert read(store, lambda u: u.audit.head("org-a")) == (1, chain_hash("org-a", 1))

    def _query(self, store: Store, **kwargs: Any) -> list[int]:
        query = AuditQuery(scope="org-a", **kwargs)
        events = read(store, lambda u: u.audit.query(query))
        return [e.seq for e in events]

    def _seed_query_chain(self, store: Store) -> None:
        """org-a events 1..6 at T0+seq minutes, plus an org-b chain that must never show."""
        specs: list[tuple[str, str, Outcome, tuple[Target, ...]]] = [
            ("member.added", "acc-1", Outcome.SUCCESS, (Target("account", "acc-7"),)),
            ("member.removed", "acc-2", Outcome.SUCCESS, (Target("account", "acc-8"),)),
            ("team.created", "acc-1", Outcome.FAILURE, (Target("team", "t1"),)),
            (
                "member.added",
                "acc-2",
                Outcome.SUCCESS,
                (Target("team", "t1"), Target("account", "acc-7")),
            ),
            ("sso.login", "acc-1", Outcome.FAILURE, ()),
            ("member.added", "acc-1", Outcome.SUCCESS, (Target("account", "acc-9"),)),
        ]
        events = [
            make_event("org-a", seq, action=action, actor_id=actor, outcome=outcome, targets=tg)
            for seq, (action, actor, outcome, tg) in enumerate(specs, start=1)
        ]
        add_all(store, *events)
        append_chain(store, "org-b", 3, actor_id="acc-1", targets=(Target("account", "acc-7"),))

    def test_query_without_filters_is_newest_first(self, store: Store) -> None:
        """By default a query returns the scope's events newest first; oldest first on
        request; never another scope's events."""
        self._seed_query_chain(store)
        assert self._query(store) == [6, 5, 4, 3, 2, 1]
        assert self._query(store, newest_first=False) == [1, 2, 3, 4, 5, 6]
        assert read(store, lambda u: u.audit.query(AuditQuery(scope="org-z"))) == []

    def test_query_time_bounds_are_since_inclusive_until_exclusive(self, store: Store) -> None:
        """since <= occurred_at < until, with bounds in any time zone."""
        self._seed_query_chain(store)
        assert self._query(store, since=at(2), newest_first=False) == [2, 3, 4, 5, 6]
        assert self._query(store, until=at(4), newest_first=False) == [1, 2, 3]
        assert self._query(store, since=at(2), until=at(4).astimezone(JST)) == [3, 2]
        assert self._query(store, since=at(3), until=at(3)) == []

    def test_query_filters_alone(self, store: Store) -> None:
        """actions (any of), actor_id, target_id (any target) and outcome filter alone."""
        self._seed_query_chain(store)
        assert self._query(store, actions=("member.added",)) == [6, 4, 1]
        assert self._query(store, actions=("team.created", "sso.login")) == [5, 3]
        assert self._query(store, actions=("nothing",)) == []
        assert self._query(store, actor_id="acc-2") == [4, 2]
        assert self._query(store, target_id="acc-7") == [4, 1]
        assert self._query(store, target_id="t1") == [4, 3]
        assert self._query(store, target_id="nobody") == []
        assert self._query(store, outcome=Outcome.FAILURE) == [5, 3]

    def test_query_filters_combined(self, store: Store) -> None:
        """Filters combine with AND."""
        self._seed_query_chain(store)
        assert self._query(store, actions=("member.added",), actor_id="acc-1") == [6, 1]
        assert self._query(store, actions=("member.added",), target_id="acc-7", since=at(2)) == [4]
        assert self._query(store, actor_id="acc-1", outcome=Outcome.FAILURE, until=at(5)) == [3]
        assert self._query(
            store,
            actions=("member.added", "member.removed"),
            actor_id="acc-2",
            target_id="acc-8",
            outcome=Outcome.SUCCESS,
            since=at(1),
            until=at(6),
        ) == [2]

    def test_query_pages_with_after_seq_and_limit(self, store: Store) -> None:
        """limit caps a page; after_seq continues after the last seq seen, in either
        direction, and composes with filters."""
        self._seed_query_chain(store)
        assert self._query(store, limit=2) == [6, 5]
        assert self._query(store, limit=2, after_seq=5) == [4, 3]
        assert self._query(store, limit=2, after_seq=1) == []
        assert self._query(store, newest_first=False, limit=4) == [1, 2, 3, 4]
        assert self._query(store, newest_first=False, limit=4, after_seq=4) == [5, 6]
        assert self._query(store, actor_id="acc-1", limit=1, after_seq=6) == [5]
        assert self._query(store, actor_id="acc-1", newest_first=False, after_seq=1) == [3, 5, 6]

    def test_iter_chain_reads_every_event_in_order_across_batches(self, store: Store) -> None:
        """iter_chain yields every event of one scope in seq order, whatever the batch
        size, including when the size divides the chain exactly."""
        events = append_chain(store, "org-a", 6)
        append_chain(store, "org-b", 2)
        for batch_size in (1, 2, 4, 6, 1000):
            with store.transaction() as uow:
                got = list(uow.audit.iter_chain("org-a", batch_size=batch_size))
            assert got == events, batch_size
        assert read(store, lambda u: list(u.audit.iter_chain("org-z"))) == []

    def test_chain_rows_give_every_event_with_its_targets_and_personal_data(
        self, store: Store
    ) -> None:
        """chain_rows streams the events of one scope after ``after_seq`` in seq order,
        each with its targets in position order and its personal data in slot order
        (erased values as None), whatever the batch size."""
        two = (Target("account", "acc-2"), Target("team", "team-1"))
        events = [
            make_event("org-a", 1, targets=two),
            make_event("org-a", 2),
            make_event("org-a", 3, targets=two[1:]),
        ]
        data = {
            events[0].id: [
                make_datum(events[0].id, "target.0.email", "acc-2", "two@example.com"),
                make_datum(events[0].id, "actor.email", "acc-1", "one@example.com"),
            ],
            events[2].id: [make_datum(events[2].id, "context.ip", "acc-1", "192.0.2.1")],
        }
        with store.transaction() as uow:
            for event in events:
                uow.audit.append(event, data.get(event.id, ()))
        append_chain(store, "org-b", 2)
        with store.transaction() as uow:
            uow.audit.erase_subject("acc-2")

        def row(event: EventRecord) -> tuple[object, ...]:
            personal = by_slot(data.get(event.id, ()))
            return (
                event.seq,
                event.id,
                event.occurred_at,
                event.action,
                event.category,
                event.outcome.value,
                event.actor_type,
                event.actor_id,
                tuple((t.type, t.id) for t in event.targets),
                dict(event.context),
                dict(event.metadata),
                dict(event.commitments),
                event.prev_hash,
                event.hash,
                tuple(
                    (d.slot, None, None) if d.subject_id == "acc-2" else (d.slot, d.salt, d.value)
                    for d in personal
                ),
            )

        for batch_size in (1, 2, 1000):
            with store.transaction() as uow:
                got = [
                    (*r[:9], dict(r[9]), dict(r[10]), dict(r[11]), *r[12:])
                    for r in uow.audit.chain_rows("org-a", batch_size=batch_size)
                ]
            assert got == [row(e) for e in events], batch_size
        with store.transaction() as uow:
            assert [r[0] for r in uow.audit.chain_rows("org-a", after_seq=1)] == [2, 3]
            assert list(uow.audit.chain_rows("org-a", after_seq=3)) == []
            assert list(uow.audit.chain_rows("org-z")) == []

    def test_personal_data_is_keyed_by_event(self, store: Store) -> None:
        """personal_for returns each requested event's data (order within an event is
        not specified); events without data map to nothing or to ()."""
        e1, e2, e3 = (make_event("org-a", n) for n in (1, 2, 3))
        d1 = [
            make_datum(e1.id, "actor.email", "acc-1", "one@example.com"),
            make_datum(e1.id, "actor.name", "acc-1", "One"),
            make_datum(e1.id, "context.ip", "", "192.0.2.1"),
        ]
        d2 = [make_datum(e2.id, "target.0.email", "acc-2", "two@example.com")]
        with store.transaction() as uow:
            uow.audit.append(e1, d1)
            uow.audit.append(e2, d2)
            uow.audit.append(e3, ())
        got = read(store, lambda u: u.audit.personal_for([e1.id, e3.id, "evt-none"]))
        assert by_slot(got[e1.id]) == by_slot(d1)
        assert tuple(got.get(e3.id, ())) == ()
        assert tuple(got.get("evt-none", ())) == ()
        assert e2.id not in got
        assert read(store, lambda u: dict(u.audit.personal_for([]))) == {}

    def test_erase_subject_blanks_that_subjects_data_only(self, store: Store) -> None:
        """erase_subject sets value and salt to None on every datum about the subject,
        returns how many it erased (0 when repeated), keeps the slots and leaves other
        subjects' data and the chain itself untouched."""
        e1, e2 = make_event("org-a", 1), make_event("org-b", 1)
        with store.transaction() as uow:
            uow.audit.append(
                e1,
                [
                    make_datum(e1.id, "actor.email", "acc-1", "one@example.com"),
                    make_datum(e1.id, "target.0.email", "acc-2", "two@example.com"),
                ],
            )
            uow.audit.append(e2, [make_datum(e2.id, "actor.name", "acc-1", "One")])
        with store.transaction() as uow:
            assert uow.audit.erase_subject("acc-1") == 2
        with store.transaction() as uow:
            assert uow.audit.erase_subject("acc-1") == 0
            assert uow.audit.erase_subject("acc-unknown") == 0
        data = read(store, lambda u: u.audit.personal_for([e1.id, e2.id]))
        assert by_slot(data[e1.id]) == [
            PersonalDatum(e1.id, "actor.email", "acc-1", None, None),
            make_datum(e1.id, "target.0.email", "acc-2", "two@example.com"),
        ]
        assert list(data[e2.id]) == [PersonalDatum(e2.id, "actor.name", "acc-1", None, None)]
        assert read(store, lambda u: list(u.audit.iter_chain("org-a"))) == [e1]

    def test_scopes_lists_every_scope_with_events(self, store: Store) -> None:
        """scopes names each scope that has at least one event, once."""
        assert read(store, lambda u: u.audit.scopes()) == []
        append_chain(store, "org-b", 2)
        append_chain(store, "host", 1)
        append_chain(store, "org-a", 1)
        assert sorted(read(store, lambda u: u.audit.scopes())) == ["host", "org-a", "org-b"]

    def test_failure_counters_are_inserted_and_replaced(self, store: Store) -> None:
        """put_failure_counter inserts or replaces one counter per (scope, key)."""
        assert read(store, lambda u: u.audit.get_failure_counter("org-a", "k")) is None
        first = FailureCounter("org-a", "k", T0.astimezone(JST), 1)
        add_all(store, first, FailureCounter("org-b", "k", T0, 5))
        got = read(store, lambda u: u.audit.get_failure_counter("org-a", "k"))
        assert got == first
        assert isinstance(got, FailureCounter)
        assert is_aware(got.window_started_at)
        later = FailureCounter("org-a", "k", at(30), 4)
        add_all(store, later)
        assert read(store, lambda u: u.audit.get_failure_counter("org-a", "k")) == later
        assert read(store, lambda u: u.audit.get_failure_counter("org-b", "k")) == FailureCounter(
            "org-b", "k", T0, 5
        )
        assert read(store, lambda u: u.audit.get_failure_counter("org-a", "other")) is None

    # -- outbox ----------------------------------------------------------------------

    def test_outbox_message_round_trips(self, store: Store) -> None:
        """A message, its payload scalars and kind included, reads back equal."""
        message = attrs.evolve(
            make_message("m1", kind=OutboxKind.EVENT), created_at=at(0).astimezone(JST)
        )
        add_all(store, message)
        got = read(store, lambda u: u.outbox.get("m1"))
        assert got == message
        assert isinstance(got, OutboxMessage)
        assert got.kind is OutboxKind.EVENT
        assert got.dispatched_at is None
        assert got.last_error is None
        assert got.attempts == 0
        assert read(store, lambda u: u.outbox.get("nope")) is None

    def test_duplicate_idempotency_key_is_ignored(self, store: Store) -> None:
        """A second message with a known idempotency key is dropped: the first wins."""
        first = make_message("m1", key="email:invite:1")
        add_all(store, first)
        with store.transaction() as uow:
            uow.outbox.add(make_message("m2", key="email:invite:1", created=5))
            uow.outbox.add(make_message("m3", key="email:invite:1", created=6))
        assert read(store, lambda u: u.outbox.get("m1")) == first
        assert read(store, lambda u: u.outbox.get("m2")) is None
        assert read(store, lambda u: u.outbox.pending_count()) == 1

    def test_claim_due_takes_due_undispatched_messages_in_order(self, store: Store) -> None:
        """claim_due returns undispatched messages with next_attempt_at <= now (the
        bound included), ordered by next_attempt_at then creation, at most limit."""
        add_all(
            store,
            make_message("late", created=0, due=20),
            make_message("b", created=2, due=5),
            make_message("a", created=1, due=5),
            make_message("first", created=3, due=3),
            make_message("done", created=0, due=0),
            make_message("edge", created=4, due=10),
        )
        with store.transaction() as uow:
            uow.outbox.mark_dispatched("done", at(1))

        def ids(messages: list[OutboxMessage]) -> list[str]:
            return [m.id for m in messages]

        assert ids(read(store, lambda u: u.outbox.claim_due(at(10), 10))) == [
            "first",
            "a",
            "b",
            "edge",
        ]
        assert ids(read(store, lambda u: u.outbox.claim_due(at(10), 2))) == ["first", "a"]
        assert ids(read(store, lambda u: u.outbox.claim_due(at(9).astimezone(JST), 10))) == [
            "first",
            "a",
            "b",
        ]
        assert read(store, lambda u: u.outbox.claim_due(at(2), 10)) == []

    def test_mark_dispatched_and_mark_failed(self, store: Store) -> None:
        """mark_dispatched records the delivery and ends pending; mark_failed records
        attempts, the error and when to retry, and the message is due again only then."""
        add_all(store, make_message("m1"), make_message("m2"), make_message("m3"))
        assert read(store, lambda u: u.outbox.pending_count()) == 3
        with store.transaction() as uow:
            uow.outbox.mark_dispatched("m1", at(1).astimezone(JST))
            uow.outbox.mark_failed("m2", attempts=3, next_attempt_at=at(30), error="SMTP 451")
        sent = read(store, lambda u: u.outbox.get("m1"))
        assert isinstance(sent, OutboxMessage)
        assert sent.dispatched_at == at(1)
        assert is_aware(sent.dispatched_at)
        failed = read(store, lambda u: u.outbox.get("m2"))
        assert failed == attrs.evolve(
            make_message("m2"), attempts=3, next_attempt_at=at(30), last_error="SMTP 451"
        )
        assert read(store, lambda u: u.outbox.pending_count()) == 2
        due_now = read(store, lambda u: [m.id for m in u.outbox.claim_due(at(10), 10)])
        assert due_now == ["m3"]
        due_later = read(store, lambda u: [m.id for m in u.outbox.claim_due(at(30), 10)])
        assert due_later == ["m3", "m2"]

    # -- plans -----------------------------------------------------------------------

    def test_plan_round_trips(self, store: Store) -> None:
        """A stored plan with every fact of its record set reads back equal, times aware."""
        plan = StoredPlan("org-a", make_full_plan_record(), next_due_at=at(3).astimezone(JST))
        add_all(store, make_org("org-a"), make_org("org-b"), plan, make_plan("org-b"))
        got = read(store, lambda u: u.plans.get("org-a"))
        assert got == plan
        assert got is not None
        assert is_aware(got.next_due_at)
        assert is_aware(got.record.period_ends_at)
        assert read(store, lambda u: u.plans.get("org-b")) == make_plan("org-b")
        assert read(store, lambda u: u.plans.get("org-c")) is None

    def test_provisioning_facts_read_organization_domains_and_plan_together(
        self, store: Store
    ) -> None:
        """scim.provisioning_facts answers what organizations.get, domains.list_for_org
        and plans.get answer, with or without domains and plan."""
        plan = StoredPlan("org-a", make_full_plan_record(), next_due_at=at(3).astimezone(JST))
        add_all(
            store,
            make_org("org-a"),
            make_org("org-b"),
            plan,
            make_domain("d1", "org-a", "zeta.test", status=DomainStatus.VERIFIED),
            make_domain("d2", "org-a", "alpha.test"),
            make_domain("d3", "org-b", "beta.test"),
            make_org("org-c"),
            make_plan("org-c"),
        )
        for org_id in ("org-a", "org-b", "org-c", "org-x"):
            with store.transaction() as uow:
                facts = uow.scim.provisioning_facts(org_id)
                alone = (
                    uow.organizations.get(org_id),
                    uow.domains.list_for_org(org_id),
                    uow.plans.get(org_id),
                )
            assert facts == alone
        org, domains, stored = read(store, lambda u: u.scim.provisioning_facts("org-a"))
        assert org is not None
        assert org.id == "org-a"
        assert [d.name for d in domains] == ["alpha.test", "zeta.test"]
        assert stored == plan

    def test_second_plan_is_plan_exists(self, store: Store) -> None:
        """An organization has at most one plan: a second add raises Conflict
        (plan.exists) and keeps the first."""
        add_all(store, make_org(), make_plan("org-a"))
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            uow.plans.add(make_plan("org-a", seats=99))
        assert info.value.code == "plan.exists"
        assert read(store, lambda u: u.plans.get("org-a")) == make_plan("org-a")

    def test_plan_update_and_stale_write(self, store: Store) -> None:
        """update bumps the version and refuses a stale write."""
        add_all(store, make_org(), make_plan("org-a"))
        changed = StoredPlan("org-a", make_full_plan_record(), next_due_at=at(1))
        with store.transaction() as uow:
            written = uow.plans.update(changed)
        assert written == attrs.evolve(changed, version=2)
        with pytest.raises(StaleWrite), store.transaction() as uow:
            uow.plans.update(make_plan("org-a", seats=1))
        assert read(store, lambda u: u.plans.get("org-a")) == written

    def test_due_plans_are_listed_earliest_first(self, store: Store) -> None:
        """due lists organizations whose next_due_at <= now (the bound included),
        earliest first, at most limit, never a plan with nothing due."""
        orgs = ("org-a", "org-b", "org-c", "org-d", "org-e")
        add_all(
            store,
            *(make_org(o) for o in orgs),
            make_plan("org-a", due=30),
            make_plan("org-b", due=10),
            make_plan("org-c", due=None),
            make_plan("org-d", due=20),
            make_plan("org-e", due=31),
        )
        assert read(store, lambda u: u.plans.due(at(30), 10)) == ["org-b", "org-d", "org-a"]
        assert read(store, lambda u: u.plans.due(at(30).astimezone(JST), 2)) == [
            "org-b",
            "org-d",
        ]
        assert read(store, lambda u: u.plans.due(at(9), 10)) == []

    def test_plan_notices_are_remembered_once(self, store: Store) -> None:
        """add_notice remembers an effect key per organization; a duplicate is ignored."""
        add_all(store, make_org("org-a"), make_org("org-b"))
        assert read(store, lambda u: u.plans.notices("org-a")) == frozenset()
        with store.transaction() as uow:
            uow.plans.add_notice("org-a", "trial.reminder", at(1))
            uow.plans.add_notice("org-a", "trial.expired", at(2))
            uow.plans.add_notice("org-a", "trial.reminder", at(3))
            uow.plans.add_notice("org-b", "plan.ended", at(4))
        assert read(store, lambda u: u.plans.notices("org-a")) == frozenset(
            {"trial.reminder", "trial.expired"}
        )
        assert read(store, lambda u: u.plans.notices("org-b")) == frozenset({"plan.ended"})

    def test_billing_events_are_recorded_once(self, store: Store) -> None:
        """record_billing_event remembers an event id; recording it again raises
        Conflict (billing.duplicate)."""
        add_all(store, make_org())

        def record(uow: UnitOfWork) -> None:
            uow.plans.record_billing_event(
                event_id="bill-1",
                org_id="org-a",
                kind="renewed",
                occurred_at=at(1),
                outcome="applied",
                recorded_at=at(2),
            )

        assert read(store, lambda u: u.plans.billing_event_seen("bill-1")) is False
        with store.transaction() as uow:
            record(uow)
        assert read(store, lambda u: u.plans.billing_event_seen("bill-1")) is True
        with pytest.raises(Conflict) as info, store.transaction() as uow:
            record(uow)
        assert info.value.code == "billing.duplicate"

    def test_last_billing_event_is_the_latest_applied_occurrence(self, store: Store) -> None:
        """last_billing_event_at is the greatest occurred_at among the organization's
        applied events, whatever the order they were recorded in."""
        add_all(store, make_org("org-a"), make_org("org-b"))
        assert read(store, lambda u: u.plans.last_billing_event_at("org-a")) is None
        with store.transaction() as uow:
            for event_id, org_id, minutes, outcome in (
                ("b1", "org-a", 5, "applied"),
                ("b2", "org-a", 3, "applied"),
                ("b3", "org-a", 9, "ignored"),
                ("b4", "org-b", 20, "applied"),
            ):
                uow.plans.record_billing_event(
                    event_id=event_id,
                    org_id=org_id,
                    kind="renewed",
                    occurred_at=at(minutes),
                    outcome=outcome,
                    recorded_at=at(30),
                )
        last = read(store, lambda u: u.plans.last_billing_event_at("org-a"))
        assert last == at(5)
        assert is_aware(last)

    def test_withdrawn_privileges(self, store: Store) -> None:
        """Withdrawn privileges are listed by account id, replaced when added again and
        cleared per organization."""
        add_all(store, make_org("org-a"), make_org("org-b"))
        with store.transaction() as uow:
            uow.plans.add_withdrawn_privilege("org-a", "acc-2", at(1))
            uow.plans.add_withdrawn_privilege("org-a", "acc-1", at(2).astimezone(JST))
            uow.plans.add_withdrawn_privilege("org-b", "acc-1", at(3))
        assert read(store, lambda u: u.plans.withdrawn_privileges("org-a")) == [
            ("acc-1", at(2)),
            ("acc-2", at(1)),
        ]
        with store.transaction() as uow:
            uow.plans.add_withdrawn_privilege("org-a", "acc-2", at(7))
        assert read(store, lambda u: u.plans.withdrawn_privileges("org-a")) == [
            ("acc-1", at(2)),
            ("acc-2", at(7)),
        ]
        with store.transaction() as uow:
            uow.plans.clear_withdrawn_privileges("org-a")
        assert read(store, lambda u: u.plans.withdrawn_privileges("org-a")) == []
        assert read(store, lambda u: u.plans.withdrawn_privileges("org-b")) == [("acc-1", at(3))]
