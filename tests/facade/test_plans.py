"""Trial and plans through the facade: entitlements gate every feature, time needs no
job, billing webhooks are authenticated and idempotent, a plan's end releases managed
accounts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from nulabpass import (
    AccountStatus,
    Actor,
    Conflict,
    DomainEvent,
    NulabPass,
    PermissionDenied,
    PlanRequired,
    Role,
    SeatLimitExceeded,
)
from nulabpass.plans import Capability, PlanState
from nulabpass.ports import BillingEvent
from nulabpass.testing import (
    FakeBillingProvider,
    FrozenClock,
    RecordingMailer,
    mark_saml_configured,
)

from .conftest import World, chain_actions

DAY = timedelta(days=1)


def _bare_org(np: NulabPass) -> tuple[Actor, str]:
    founder = np.accounts.register("founder@partner.test", "Founder")
    admin = Actor.account(founder.id)
    return admin, np.orgs.create(admin, "Acme").id


def test_without_a_plan_the_add_on_features_are_refused(np: NulabPass) -> None:
    admin, org_id = _bare_org(np)
    assert np.plans.status(org_id).state is PlanState.NONE
    with pytest.raises(PlanRequired) as sso:
        mark_saml_configured(np, org_id)
    assert sso.value.code == "plan.required.configure_sso"
    with pytest.raises(PlanRequired) as teams:
        np.teams.create(admin, org_id, "Eng")
    assert teams.value.code == "plan.required.manage_accounts"
    with pytest.raises(PlanRequired) as audit:
        np.audit.query(admin, org_id)
    assert audit.value.code == "plan.required.read_audit"
    # Audit events are recorded in every state, refusals included.
    assert chain_actions(np, org_id)[-1] == "audit.read"


def test_one_trial_per_organization(world: World) -> None:
    with pytest.raises(Conflict) as err:
        world.np.plans.start_trial(world.admin, world.org.id)
    assert err.value.code == "plan.invalid_transition.trialing.start_trial"


def test_only_admins_and_plan_admins_change_the_plan(world: World, clock: FrozenClock) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id)
    end = clock.now() + 60 * DAY
    with pytest.raises(PermissionDenied) as err:
        np.plans.upgrade(Actor.account(bob.id), world.org.id, plan_name="pro", period_ends_at=end)
    assert err.value.code == "permission.change_plan"
    np.members.set_privileges(world.admin, world.org.id, bob.id, plan_admin=True)
    status = np.plans.upgrade(
        Actor.account(bob.id), world.org.id, plan_name="pro", period_ends_at=end
    )
    assert status.state is PlanState.ACTIVE


def test_trial_expiry_ends_managed_sign_in_without_any_job(
    world: World, clock: FrozenClock
) -> None:
    np = world.np
    carol = world.managed("carol")
    trial_end = np.plans.status(world.org.id).record.trial_ends_at
    assert trial_end == world.org.created_at + timedelta(days=30)
    assert np.access.check(carol, trial_end - timedelta(microseconds=1)).allowed
    decision = np.access.check(carol, trial_end)
    assert not decision.allowed
    assert decision.code == "access.plan_inactive"
    # Non-managed accounts are not affected.
    assert np.access.check(world.founder.id, trial_end + DAY).allowed


def test_process_due_sends_the_reminder_and_expiry_once(
    world: World, clock: FrozenClock, mailer: RecordingMailer
) -> None:
    np = world.np
    trial_end = np.plans.status(world.org.id).record.trial_ends_at
    assert trial_end is not None
    clock.set(trial_end - 3 * DAY)
    assert np.plans.process_due().effects == 1
    assert np.plans.process_due().effects == 0
    np.outbox.dispatch_pending()
    reminder = mailer.last_to("founder@partner.test")
    assert reminder is not None
    assert "Acme" in reminder.subject
    clock.set(trial_end)
    assert np.plans.process_due().effects == 1
    assert np.plans.process_due().effects == 0
    assert world.events("plan.trial_ending_notified") == ["plan.trial_ending_notified"]
    assert world.events("plan.trial_expired") == ["plan.trial_expired"]
    assert np.plans.status(world.org.id).state is PlanState.TRIAL_EXPIRED


def test_upgrade_during_trial_keeps_the_remaining_days(world: World, clock: FrozenClock) -> None:
    np = world.np
    trial_end = np.plans.status(world.org.id).record.trial_ends_at
    clock.advance(days=10)
    status = np.plans.upgrade(
        world.admin, world.org.id, plan_name="pro", period_ends_at=trial_end + 365 * DAY
    )
    assert status.record.paid_starts_at == trial_end
    assert status.state is PlanState.ACTIVE


def test_upgrade_after_expiry_restores_access_at_once(world: World, clock: FrozenClock) -> None:
    np = world.np
    carol = world.managed("carol")
    trial_end = np.plans.status(world.org.id).record.trial_ends_at
    assert trial_end is not None
    clock.set(trial_end + 5 * DAY)
    assert not np.access.check(carol).allowed
    np.plans.upgrade(
        world.admin, world.org.id, plan_name="pro", period_ends_at=clock.now() + 30 * DAY
    )
    assert np.access.check(carol).allowed


def test_a_plan_end_releases_managed_accounts_and_withdraws_audit_privileges(
    world: World, clock: FrozenClock
) -> None:
    np = world.np
    signed_out: list[DomainEvent] = []
    np.outbox.subscribe("account.sign_out", signed_out.append)
    carol = world.managed("carol")
    auditor = np.accounts.register("audra@partner.test", "Audra")
    np.members.add(world.admin, world.org.id, auditor.id)
    np.members.set_privileges(world.admin, world.org.id, auditor.id, audit_log_admin=True)
    period_end = clock.now() + 60 * DAY
    np.plans.upgrade(
        world.admin, world.org.id, plan_name="pro", period_ends_at=period_end, start_now=True
    )
    np.plans.cancel(world.admin, world.org.id)
    assert np.plans.status(world.org.id).state is PlanState.CANCELING
    clock.set(period_end - timedelta(microseconds=1))
    assert np.access.check(carol).allowed
    clock.set(period_end)
    assert np.plans.process_due().effects == 1
    account = np.accounts.get(carol)
    assert account.managed_by is None
    assert account.status is AccountStatus.ACTIVE
    assert not np.members.get(world.org.id, auditor.id).audit_log_admin
    np.outbox.dispatch_pending()
    assert [e.payload["account_id"] for e in signed_out] == [carol]
    assert "plan.ended" in world.events()
    assert np.audit.verify(world.org.id).ok
    # A restart within 30 days gives the privilege back.
    clock.advance(days=10)
    np.plans.upgrade(
        world.admin, world.org.id, plan_name="pro", period_ends_at=clock.now() + 30 * DAY
    )
    assert np.members.get(world.org.id, auditor.id).audit_log_admin


def test_a_restart_after_the_window_does_not_restore_privileges(
    world: World, clock: FrozenClock
) -> None:
    np = world.np
    auditor = np.accounts.register("audra@partner.test", "Audra")
    np.members.add(world.admin, world.org.id, auditor.id)
    np.members.set_privileges(world.admin, world.org.id, auditor.id, audit_log_admin=True)
    np.plans.cancel(world.admin, world.org.id)  # a trial ends at once by default
    assert np.plans.status(world.org.id).state is PlanState.ENDED
    assert not np.members.get(world.org.id, auditor.id).audit_log_admin
    clock.advance(days=31)
    np.plans.upgrade(
        world.admin, world.org.id, plan_name="pro", period_ends_at=clock.now() + 30 * DAY
    )
    assert not np.members.get(world.org.id, auditor.id).audit_log_admin


def test_seats_limit_creation_and_conversion(world: World, clock: FrozenClock) -> None:
    np = world.np
    np.plans.upgrade(
        world.admin,
        world.org.id,
        plan_name="team",
        period_ends_at=clock.now() + 90 * DAY,
        seats=2,
        start_now=True,
    )
    world.managed("a1")
    world.managed("a2")
    with pytest.raises(SeatLimitExceeded) as err:
        world.managed("a3")
    assert err.value.code == "plan.seat_limit"
    assert np.accounts.find_by_email("a3@example.com") is None
    dave = np.accounts.register("dave@example.com", "Dave")
    with pytest.raises(SeatLimitExceeded):
        np.conversions.request(world.admin, world.org.id, dave.id)


def test_over_seats_management_stops_but_reducing_stays_possible(
    world: World, clock: FrozenClock
) -> None:
    np = world.np
    np.plans.upgrade(
        world.admin,
        world.org.id,
        plan_name="team",
        period_ends_at=clock.now() + 90 * DAY,
        seats=2,
        start_now=True,
    )
    a1 = world.managed("a1")
    world.managed("a2")
    np.plans.change_seats(world.admin, world.org.id, 1)
    status = np.plans.status(world.org.id)
    assert Capability.MANAGE_ACCOUNTS not in status.capabilities
    assert Capability.SIGN_IN in status.capabilities
    with pytest.raises(SeatLimitExceeded) as err:
        np.teams.create(world.admin, world.org.id, "Ops")
    assert err.value.code == "plan.over_seat_limit"
    assert np.access.check(a1).allowed
    np.members.delete(world.admin, world.org.id, a1)
    np.teams.create(world.admin, world.org.id, "Ops")


def _event(org_id: str, event_id: str, kind: str, at: datetime, **kw: object) -> BillingEvent:
    return BillingEvent(id=event_id, org_id=org_id, kind=kind, occurred_at=at, **kw)  # type: ignore[arg-type]


def test_billing_webhooks_are_authenticated(world: World, clock: FrozenClock) -> None:
    forged = FakeBillingProvider()  # another secret
    body, headers = forged.webhook(
        _event(
            world.org.id,
            "evt_1",
            "upgrade",
            clock.now(),
            plan_name="pro",
            period_ends_at=clock.now() + 30 * DAY,
        )
    )
    with pytest.raises(PermissionDenied) as err:
        world.np.plans.apply_billing_event(body, headers)
    assert err.value.code == "billing.signature_invalid"
    assert world.np.plans.status(world.org.id).state is PlanState.TRIALING


def test_the_same_webhook_twice_changes_nothing(
    world: World, clock: FrozenClock, billing: FakeBillingProvider
) -> None:
    np = world.np
    body, headers = billing.webhook(
        _event(
            world.org.id,
            "evt_1",
            "upgrade",
            clock.now(),
            plan_name="pro",
            period_ends_at=clock.now() + 30 * DAY,
            start_now=True,
        )
    )
    first = np.plans.apply_billing_event(body, headers)
    events = len(world.events())
    second = np.plans.apply_billing_event(body, headers)
    assert (first.result, second.result) == ("applied", "duplicate")
    assert len(world.events()) == events


def test_out_of_order_webhooks_are_judged_by_event_time(
    world: World, clock: FrozenClock, billing: FakeBillingProvider
) -> None:
    np = world.np
    t0 = clock.now()
    np.plans.upgrade(
        world.admin, world.org.id, plan_name="pro", period_ends_at=t0 + 30 * DAY, start_now=True
    )
    failed = billing.webhook(_event(world.org.id, "evt_f", "payment_failed", t0 + DAY))
    recovered = billing.webhook(_event(world.org.id, "evt_r", "payment_recovered", t0 + 2 * DAY))
    clock.advance(days=3)
    assert np.plans.apply_billing_event(*failed).state is PlanState.SUSPENDED
    assert np.plans.apply_billing_event(*recovered).state is PlanState.ACTIVE
    # The provider retries the older failure after the recovery: it is stale.
    late = billing.webhook(
        _event(world.org.id, "evt_f2", "payment_failed", t0 + DAY + timedelta(hours=1))
    )
    assert np.plans.apply_billing_event(*late).result == "stale"
    assert np.plans.status(world.org.id).state is PlanState.ACTIVE


def test_suspension_keeps_sign_in_and_stops_management_then_give_up_ends(
    world: World, clock: FrozenClock, billing: FakeBillingProvider
) -> None:
    np = world.np
    carol = world.managed("carol")
    t0 = clock.now()
    np.plans.upgrade(
        world.admin, world.org.id, plan_name="pro", period_ends_at=t0 + 30 * DAY, start_now=True
    )
    np.plans.apply_billing_event(
        *billing.webhook(_event(world.org.id, "e1", "payment_failed", t0))
    )
    assert np.access.check(carol).allowed
    with pytest.raises(PlanRequired):
        np.teams.create(world.admin, world.org.id, "Ops")
    np.plans.apply_billing_event(*billing.webhook(_event(world.org.id, "e2", "give_up", t0 + DAY)))
    assert np.plans.status(world.org.id).state is PlanState.ENDED
    assert np.accounts.get(carol).managed_by is None
    assert world.events("managed_account.released") == ["managed_account.released"]


def test_members_role_survives_plan_end(world: World, clock: FrozenClock) -> None:
    carol = world.managed("carol")
    world.np.members.set_role(world.admin, world.org.id, carol, Role.ADMIN)
    world.np.plans.cancel(world.admin, world.org.id)
    assert world.np.members.get(world.org.id, carol).role is Role.ADMIN
    assert world.np.accounts.get(carol).managed_by is None
