"""The break-glass rule: an organization always keeps an active non-managed account
that is an admin or plan admin. Every path that could break it is refused, and the
refusal changes nothing."""

from __future__ import annotations

import pytest

from nulabpass import AccountStatus, Actor, BreakGlassViolation, Conflict, NulabPass, Role
from nulabpass.testing import RecordingMailer, mark_domain_verified, mark_saml_configured

from .conftest import World, chain_actions


def _snapshot(np: NulabPass, world: World) -> tuple[object, ...]:
    m = np.members.get(world.org.id, world.founder.id)
    a = np.accounts.get(world.founder.id)
    return (m.role, m.plan_admin, a.status, a.managed_by)


def _assert_refused_without_change(world: World, action: object, recorded: int = 1) -> None:
    before = _snapshot(world.np, world)
    events_before = len(world.events())
    with pytest.raises(BreakGlassViolation) as err:
        action()  # type: ignore[operator]
    assert err.value.code == "member.break_glass"
    assert "non-managed" in err.value.message
    assert _snapshot(world.np, world) == before
    # The refusal itself is recorded, as a failure, and nothing else.
    assert len(world.events()) == events_before + recorded


def test_demoting_the_last_break_glass_account_is_refused_when_it_loses_both(world: World) -> None:
    np = world.np
    np.members.set_role(world.admin, world.org.id, world.founder.id, Role.MEMBER)
    # Still a plan admin, so still break-glass; withdrawing that too is refused.
    _assert_refused_without_change(
        world,
        lambda: np.members.set_privileges(
            Actor.system(), world.org.id, world.founder.id, plan_admin=False
        ),
    )


def test_withdrawing_plan_admin_from_a_plan_admin_only_founder_is_refused(world: World) -> None:
    np = world.np
    np.members.set_privileges(world.admin, world.org.id, world.founder.id, plan_admin=False)
    _assert_refused_without_change(
        world,
        lambda: np.members.set_role(world.admin, world.org.id, world.founder.id, Role.MEMBER),
    )


def test_leaving_as_the_last_break_glass_account_is_refused(world: World) -> None:
    _assert_refused_without_change(
        world, lambda: world.np.members.leave(world.admin, world.org.id)
    )


def test_removing_the_last_break_glass_account_is_refused(world: World) -> None:
    np = world.np
    # A managed admin cannot count as break-glass; the founder stays the only one.
    carol = world.managed("carol")
    np.members.set_role(world.admin, world.org.id, carol, Role.ADMIN)
    _assert_refused_without_change(
        world, lambda: np.members.remove(Actor.account(carol), world.org.id, world.founder.id)
    )


def test_host_deactivation_of_the_last_break_glass_account_is_refused(world: World) -> None:
    _assert_refused_without_change(
        world,
        lambda: world.np.accounts.deactivate(Actor.system(), world.founder.id),
        recorded=0,
    )


def test_converting_the_last_break_glass_account_is_refused(
    np: NulabPass, mailer: RecordingMailer
) -> None:
    founder = np.accounts.register("boss@example.com", "Boss")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    mark_saml_configured(np, org.id)
    mark_domain_verified(np, org.id, "example.com")
    np.conversions.request(admin, org.id, founder.id)
    np.outbox.dispatch_pending()
    token = mailer.tokens_for("boss@example.com")[-1]
    with pytest.raises(BreakGlassViolation):
        np.conversions.accept(token)
    assert np.accounts.get(founder.id).managed_by is None


def test_conversion_into_another_org_cannot_strip_this_org_of_break_glass(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    # Dana is the only break-glass account of her own organization "Dana's shop".
    dana = np.accounts.register("dana@example.com", "Dana")
    shop = np.orgs.create(Actor.account(dana.id), "Dana's shop")
    np.conversions.request(world.admin, world.org.id, dana.id)
    np.outbox.dispatch_pending()
    token = mailer.tokens_for("dana@example.com")[-1]
    with pytest.raises(BreakGlassViolation) as err:
        np.conversions.accept(token)
    assert err.value.details["organization"] == shop.id
    assert np.members.get(shop.id, dana.id).role is Role.ADMIN
    assert np.accounts.get(dana.id).managed_by is None
    assert chain_actions(np, shop.id) == ["organization.created"]


def test_a_second_non_managed_admin_lets_the_founder_step_down(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id, role=Role.ADMIN)
    bob_actor = Actor.account(bob.id)
    np.members.set_role(world.admin, world.org.id, world.founder.id, Role.MEMBER)
    np.members.set_privileges(bob_actor, world.org.id, world.founder.id, plan_admin=False)
    np.members.leave(world.admin, world.org.id)
    _ = [m.account_id for m in np.members.list(Actor.account(bob.id), world.org.id)]
    with pytest.raises(BreakGlassViolation):
        np.members.leave(Actor.account(bob.id), world.org.id)


def test_deactivated_or_managed_admins_do_not_count(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id, role=Role.ADMIN)
    np.accounts.deactivate(Actor.system(), bob.id)
    assert np.accounts.get(bob.id).status is AccountStatus.DEACTIVATED
    with pytest.raises(BreakGlassViolation):
        np.members.leave(world.admin, world.org.id)


def test_requiring_an_admin_discounts_plan_admins(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id)
    np.members.set_privileges(world.admin, world.org.id, bob.id, plan_admin=True)
    np.members.set_role(world.admin, world.org.id, world.founder.id, Role.MEMBER)
    # Bob (plan admin) and the founder (plan admin) are break-glass; an admin is not
    # required yet. Requiring one now would leave none: refused.
    with pytest.raises(BreakGlassViolation):
        np.orgs.update_settings(Actor.system(), world.org.id, break_glass_requires_admin=True)
    assert not np.orgs.get(world.org.id).settings.break_glass_requires_admin


def test_no_managed_account_can_take_the_break_glass_email(world: World) -> None:
    np = world.np
    mark_domain_verified(np, world.org.id, "partner.test")
    with pytest.raises(Conflict) as err:
        np.members.create_managed(
            world.admin,
            world.org.id,
            team_id=world.team.id,
            email="FOUNDER@partner.test",
            display_name="Impostor",
        )
    assert err.value.code == "account.email_taken"
    assert np.accounts.find_by_email("founder@partner.test") == np.accounts.get(world.founder.id)
