"""Email domains through the facade: challenges, verification, re-verification, on
every store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nulabpass import Actor, NulabPass
from nulabpass.domains import (
    DomainPolicy,
    LookupStatus,
    Outcome,
    RateLimited,
    StaticTxtResolver,
)
from nulabpass.errors import Conflict, InvalidInput, NotFound, PermissionDenied, PlanRequired
from nulabpass.org._model import AccountStatus, DomainStatus
from nulabpass.outbox._model import OutboxMessage
from nulabpass.ports import Store
from nulabpass.testing import (
    FakeBillingProvider,
    FrozenClock,
    RecordingMailer,
    make_nulabpass,
)

from .conftest import World, chain_actions

DAY = timedelta(days=1)


def resolver_of(np: NulabPass) -> StaticTxtResolver:
    resolver = np.domains.resolvers[0]
    assert isinstance(resolver, StaticTxtResolver)
    return resolver


def publish(np: NulabPass, org_id: str, domain: str) -> None:
    view = np.domains.get(Actor.system(), org_id, domain)
    assert view.record_value is not None
    resolver_of(np).publish(view.record_name, view.record_value)


def verified_domain(world: World, domain: str = "acme.test") -> None:
    np = world.np
    np.domains.add(world.admin, world.org.id, domain)
    publish(np, world.org.id, domain)
    assert np.domains.verify(world.admin, world.org.id, domain).verified


def test_adding_a_domain_returns_the_exact_record_to_publish(world: World) -> None:
    np = world.np
    view = np.domains.add(world.admin, world.org.id, "  Acme.TEST. ")
    assert view.name == "acme.test"
    assert view.status is DomainStatus.PENDING
    assert view.record_name == "_nulabpass-challenge.acme.test"
    assert view.record_value is not None
    prefix, _, token = view.record_value.partition("=")
    assert prefix == "nulabpass-verification"
    assert len(token) * 5 >= 128
    assert view.challenge_expires_at == np.clock.now() + 7 * DAY
    assert world.events("domain.added") == ["domain.added"]


def test_a_second_domain_gets_another_token(world: World) -> None:
    first = world.np.domains.add(world.admin, world.org.id, "one.test")
    second = world.np.domains.add(world.admin, world.org.id, "two.test")
    assert first.record_value != second.record_value


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("gmail.com", "domain.free_mail"),
        ("co.uk", "domain.public_suffix"),
        ("com", "domain.public_suffix"),
        ("192.0.2.7", "domain.ip_literal"),
    ],
)
def test_unclaimable_domains_are_refused_with_a_clear_code(
    world: World, name: str, code: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        world.np.domains.add(world.admin, world.org.id, name)
    assert info.value.code == code
    assert world.events("domain.added") == []


def test_adding_the_same_domain_twice_is_a_conflict(world: World) -> None:
    world.np.domains.add(world.admin, world.org.id, "acme.test")
    with pytest.raises(Conflict) as info:
        world.np.domains.add(world.admin, world.org.id, "ACME.test")
    assert info.value.code == "domain.exists"


def test_only_admins_manage_domains(world: World) -> None:
    np = world.np
    member = np.accounts.register("mem@partner.test", "Mem")
    np.members.add(world.admin, world.org.id, member.id)
    with pytest.raises(PermissionDenied) as info:
        np.domains.add(Actor.account(member.id), world.org.id, "acme.test")
    assert info.value.code == "permission.manage_domains"
    with pytest.raises(PermissionDenied):
        np.domains.list(Actor.account(member.id), world.org.id)


def test_adding_a_domain_needs_the_plan(np: NulabPass) -> None:
    founder = np.accounts.register("f@partner.test", "F")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "NoPlan")
    with pytest.raises(PlanRequired):
        np.domains.add(admin, org.id, "acme.test")


def test_a_published_record_verifies_the_domain(world: World) -> None:
    np = world.np
    seen: list[OutboxMessage] = []
    np.outbox.subscribe("domain.verified", seen.append)
    np.domains.add(world.admin, world.org.id, "acme.test")
    resolver_of(np).publish("_nulabpass-challenge.acme.test", "v=spf1 -all")
    publish(np, world.org.id, "acme.test")
    check = np.domains.verify(world.admin, world.org.id, "acme.test")
    assert check.verified
    assert check.result.verdict is Outcome.VERIFIED
    assert check.domain.status is DomainStatus.VERIFIED
    assert check.domain.next_check_at == np.clock.now() + DomainPolicy().recheck_interval
    assert world.events("domain.verified")[-1] == "domain.verified"
    np.outbox.dispatch_pending()
    assert [e.payload["domain"] for e in seen] == ["acme.test"]
    carol = np.members.create_managed(
        world.admin,
        world.org.id,
        team_id=world.team.id,
        email="carol@acme.test",
        display_name="Carol",
    )
    assert carol.managed_by == world.org.id


def test_a_missing_record_leaves_the_domain_pending_and_is_recorded(world: World) -> None:
    np = world.np
    np.domains.add(world.admin, world.org.id, "acme.test")
    check = np.domains.verify(world.admin, world.org.id, "acme.test")
    assert not check.verified
    assert check.result.verdict is Outcome.ABSENT
    assert check.domain.status is DomainStatus.PENDING
    assert world.events("domain.verification_failed") == ["domain.verification_failed"]
    with pytest.raises(Conflict) as info:
        np.members.create_managed(
            world.admin,
            world.org.id,
            team_id=world.team.id,
            email="carol@acme.test",
            display_name="Carol",
        )
    assert info.value.code == "managed.domain_unverified"


def test_a_wrong_value_is_reported_as_such(world: World) -> None:
    np = world.np
    np.domains.add(world.admin, world.org.id, "acme.test")
    resolver_of(np).publish("_nulabpass-challenge.acme.test", "nulabpass-verification=nope")
    check = np.domains.verify(world.admin, world.org.id, "acme.test")
    assert check.result.verdict is Outcome.WRONG_VALUE
    assert check.result.results[0].found == ("nulabpass-verification=nope",)


def test_another_organizations_token_does_not_verify(world: World) -> None:
    np = world.np
    other = np.accounts.register("boss@other.test", "Boss")
    other_admin = Actor.account(other.id)
    other_org = np.orgs.create(other_admin, "Other")
    np.plans.start_trial(other_admin, other_org.id)
    np.domains.add(world.admin, world.org.id, "shared.test")
    np.domains.add(other_admin, other_org.id, "shared.test")
    publish(np, world.org.id, "shared.test")
    refused = np.domains.verify(other_admin, other_org.id, "shared.test")
    assert refused.result.verdict is Outcome.WRONG_VALUE
    assert refused.domain.status is DomainStatus.PENDING
    # Both may verify the same domain, each with its own record.
    assert np.domains.verify(world.admin, world.org.id, "shared.test").verified
    publish(np, other_org.id, "shared.test")
    assert np.domains.verify(other_admin, other_org.id, "shared.test").verified


def test_verifying_a_domain_never_takes_another_organizations_accounts(world: World) -> None:
    np = world.np
    carol_id = world.managed("carol")
    other = np.accounts.register("boss@other.test", "Boss")
    other_admin = Actor.account(other.id)
    other_org = np.orgs.create(other_admin, "Other")
    np.plans.start_trial(other_admin, other_org.id)
    np.domains.add(other_admin, other_org.id, "example.com")
    publish(np, other_org.id, "example.com")
    assert np.domains.verify(other_admin, other_org.id, "example.com").verified
    assert np.accounts.get(carol_id).managed_by == world.org.id


def test_an_expired_challenge_cannot_verify_and_a_fresh_one_replaces_it(world: World) -> None:
    np = world.np
    old = np.domains.add(world.admin, world.org.id, "acme.test")
    assert old.record_value is not None
    resolver_of(np).publish(old.record_name, old.record_value)
    np.clock.advance(8 * DAY)
    with pytest.raises(Conflict) as info:
        np.domains.verify(world.admin, world.org.id, "acme.test")
    assert info.value.code == "domain.challenge_expired"
    fresh = np.domains.renew_challenge(world.admin, world.org.id, "acme.test")
    assert fresh.record_value != old.record_value
    assert np.domains.verify(world.admin, world.org.id, "acme.test").result.verdict is (
        Outcome.WRONG_VALUE
    )
    publish(np, world.org.id, "acme.test")
    assert np.domains.verify(world.admin, world.org.id, "acme.test").verified
    assert "domain.challenge_renewed" in world.events()


def test_checks_are_rate_limited_per_organization_and_domain(
    store: Store, clock: FrozenClock, mailer: RecordingMailer, billing: FakeBillingProvider
) -> None:
    np = make_nulabpass(
        store,
        clock=clock,
        mailer=mailer,
        billing=billing,
        domain_policy=DomainPolicy(check_limit=2, check_window=timedelta(hours=1)),
    )
    founder = np.accounts.register("f@partner.test", "F")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    np.domains.add(admin, org.id, "one.test")
    np.domains.add(admin, org.id, "two.test")
    np.domains.verify(admin, org.id, "one.test")
    np.domains.verify(admin, org.id, "one.test")
    with pytest.raises(RateLimited) as info:
        np.domains.verify(admin, org.id, "one.test")
    assert info.value.code == "rate_limit.exceeded"
    np.domains.verify(admin, org.id, "two.test")
    clock.advance(timedelta(hours=1))
    np.domains.verify(admin, org.id, "one.test")


def test_subdomains_are_covered_only_when_the_option_is_on(world: World) -> None:
    np = world.np
    verified_domain(world)

    def create(email: str) -> None:
        np.members.create_managed(
            world.admin, world.org.id, team_id=world.team.id, email=email, display_name="X"
        )

    with pytest.raises(Conflict):
        create("a@eng.acme.test")
    view = np.domains.set_include_subdomains(world.admin, world.org.id, "acme.test", True)
    assert view.include_subdomains
    create("a@eng.acme.test")
    assert world.events("domain.subdomains_changed") == ["domain.subdomains_changed"]


def test_removing_a_domain_keeps_existing_managed_accounts(world: World) -> None:
    np = world.np
    carol_id = world.managed("carol")
    np.domains.remove(world.admin, world.org.id, "example.com")
    assert [d.name for d in np.domains.list(world.admin, world.org.id)] == []
    assert np.accounts.get(carol_id).managed_by == world.org.id
    with pytest.raises(Conflict) as info:
        np.members.create_managed(
            world.admin,
            world.org.id,
            team_id=world.team.id,
            email="dave@example.com",
            display_name="Dave",
        )
    assert info.value.code == "managed.domain_unverified"
    with pytest.raises(NotFound):
        np.domains.remove(world.admin, world.org.id, "example.com")


def test_routine_rechecks_are_not_audited(world: World) -> None:
    np = world.np
    verified_domain(world)
    before = world.events()
    np.clock.advance(2 * DAY)
    report = np.domains.reverify_due()
    assert report.checked == 1
    assert report.verified == 1
    assert world.events() == before
    view = np.domains.get(world.admin, world.org.id, "acme.test")
    assert view.last_checked_at == np.clock.now()


def test_a_record_removed_then_restored_within_grace_changes_nothing(world: World) -> None:
    np = world.np
    verified_domain(world)
    resolver = resolver_of(np)
    record = "_nulabpass-challenge.acme.test"
    value = np.domains.get(world.admin, world.org.id, "acme.test").record_value
    assert value is not None
    missing: list[OutboxMessage] = []
    np.outbox.subscribe("domain.record_missing", missing.append)
    resolver.remove(record)
    np.clock.advance(2 * DAY)
    assert np.domains.reverify_due().record_missing == 1
    view = np.domains.get(world.admin, world.org.id, "acme.test")
    assert view.status is DomainStatus.VERIFIED
    assert view.grace_ends_at == np.clock.now() + 14 * DAY
    np.outbox.dispatch_pending()
    assert [m.payload["domain"] for m in missing] == ["acme.test"]
    emails = [m for m in world.mailer.sent if "acme.test" in m.subject]
    assert [m.to for m in emails] == ["founder@partner.test"]
    resolver.publish(record, value)
    np.clock.advance(10 * DAY)
    assert np.domains.reverify_due().restored == 1
    np.clock.advance(10 * DAY)
    np.domains.reverify_due()
    assert np.domains.get(world.admin, world.org.id, "acme.test").status is DomainStatus.VERIFIED
    assert world.events("domain.restored") == ["domain.restored"]
    assert world.events("domain.lapsed") == []


def test_a_record_gone_past_grace_unverifies_the_domain_but_keeps_its_accounts(
    world: World,
) -> None:
    np = world.np
    verified_domain(world)
    carol = np.members.create_managed(
        world.admin, world.org.id, team_id=world.team.id, email="c@acme.test", display_name="C"
    )
    lapsed: list[OutboxMessage] = []
    np.outbox.subscribe("domain.lapsed", lapsed.append)
    resolver_of(np).remove("_nulabpass-challenge.acme.test")
    np.clock.advance(2 * DAY)
    np.domains.reverify_due()
    for _ in range(20):
        np.clock.advance(DAY)
        np.domains.reverify_due()
    view = np.domains.get(world.admin, world.org.id, "acme.test")
    assert view.status is DomainStatus.UNVERIFIED
    assert world.events("domain.lapsed") == ["domain.lapsed"]
    np.outbox.dispatch_pending()
    assert [m.payload["domain"] for m in lapsed] == ["acme.test"]
    assert np.accounts.get(carol.id).managed_by == world.org.id
    with pytest.raises(Conflict) as info:
        np.members.create_managed(
            world.admin, world.org.id, team_id=world.team.id, email="d@acme.test", display_name="D"
        )
    assert info.value.code == "managed.domain_unverified"
    outsider = np.accounts.register("e@acme.test", "E")
    with pytest.raises(Conflict) as info:
        np.conversions.request(world.admin, world.org.id, outsider.id)
    assert info.value.code == "managed.domain_unverified"
    # Re-verifying a lapsed domain needs a fresh challenge.
    with pytest.raises(Conflict) as info:
        np.domains.verify(world.admin, world.org.id, "acme.test")
    assert info.value.code == "domain.challenge_required"
    np.domains.renew_challenge(world.admin, world.org.id, "acme.test")
    publish(np, world.org.id, "acme.test")
    assert np.domains.verify(world.admin, world.org.id, "acme.test").verified


def test_indeterminate_answers_inside_grace_never_change_the_state(world: World) -> None:
    np = world.np
    verified_domain(world)
    resolver_of(np).fail("_nulabpass-challenge.acme.test", LookupStatus.TIMEOUT)
    before = world.events()
    for _ in range(13):
        np.clock.advance(DAY)
        report = np.domains.reverify_due()
        assert report.record_missing == 0
        assert report.lapsed == 0
    assert world.events() == before
    assert np.domains.get(world.admin, world.org.id, "acme.test").status is DomainStatus.VERIFIED


def test_resolvers_that_disagree_do_not_verify(
    store: Store, clock: FrozenClock, mailer: RecordingMailer, billing: FakeBillingProvider
) -> None:
    first, second = StaticTxtResolver("a"), StaticTxtResolver("b")
    np = make_nulabpass(
        store, clock=clock, mailer=mailer, billing=billing, resolver=[first, second]
    )
    founder = np.accounts.register("f@partner.test", "F")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    view = np.domains.add(admin, org.id, "acme.test")
    assert view.record_value is not None
    first.publish(view.record_name, view.record_value)
    check = np.domains.verify(admin, org.id, "acme.test")
    assert check.result.verdict is Outcome.ABSENT
    assert [r.outcome for r in check.result.results] == [Outcome.VERIFIED, Outcome.ABSENT]
    second.fail(view.record_name, LookupStatus.SERVFAIL)
    assert np.domains.verify(admin, org.id, "acme.test").result.verdict is Outcome.INDETERMINATE
    second.publish(view.record_name, view.record_value)
    assert np.domains.verify(admin, org.id, "acme.test").verified


def test_reverify_due_processes_every_due_domain_in_batches(
    store: Store, clock: FrozenClock, mailer: RecordingMailer, billing: FakeBillingProvider
) -> None:
    np = make_nulabpass(
        store,
        clock=clock,
        mailer=mailer,
        billing=billing,
        domain_policy=DomainPolicy(batch_size=4, concurrency=3),
    )
    founder = np.accounts.register("f@partner.test", "F")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    names = [f"d{i}.test" for i in range(11)]
    for name in names:
        np.domains.add(admin, org.id, name)
        publish(np, org.id, name)
        assert np.domains.verify(admin, org.id, name).verified
    clock.advance(2 * DAY)
    assert np.domains.reverify_due(limit=5).checked == 5
    assert np.domains.reverify_due().checked == 6
    assert np.domains.reverify_due().checked == 0


def test_an_organization_without_a_plan_keeps_being_reverified(world: World) -> None:
    np = world.np
    verified_domain(world)
    np.clock.advance(40 * DAY)
    assert np.domains.reverify_due().checked == 1
    assert chain_actions(np, world.org.id, "domain.lapsed") == []


def test_a_managed_account_stays_active_when_its_domain_lapses(world: World) -> None:
    np = world.np
    verified_domain(world)
    account = np.members.create_managed(
        world.admin, world.org.id, team_id=world.team.id, email="k@acme.test", display_name="K"
    )
    np.outbox.dispatch_pending()
    np.invitations.accept(world.mailer.tokens_for("k@acme.test")[-1])
    resolver_of(np).remove("_nulabpass-challenge.acme.test")
    for _ in range(20):
        np.clock.advance(DAY)
        np.domains.reverify_due()
    assert np.accounts.get(account.id).status is AccountStatus.ACTIVE
    assert np.access.check(account.id).allowed
