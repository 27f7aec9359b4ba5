"""Managed accounts: preconditions, invitations, lifecycle and access."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nulabpass import (
    AccountStatus,
    Actor,
    Conflict,
    DomainEvent,
    InvalidInput,
    NotFound,
    NulabPass,
    PermissionDenied,
    Role,
)
from nulabpass.testing import FrozenClock, RecordingMailer, mark_domain_verified

from .conftest import World


def _create(world: World, email: str = "carol@example.com") -> str:
    return world.np.members.create_managed(
        world.admin, world.org.id, team_id=world.team.id, email=email, display_name="Carol"
    ).id


def test_creation_requires_saml_configured(np: NulabPass) -> None:
    founder = np.accounts.register("founder@partner.test", "Founder")
    admin = Actor.account(founder.id)
    org = np.orgs.create(admin, "Acme")
    np.plans.start_trial(admin, org.id)
    mark_domain_verified(np, org.id, "example.com")
    team = np.teams.create(admin, org.id, "Eng")
    with pytest.raises(Conflict) as err:
        np.members.create_managed(
            admin, org.id, team_id=team.id, email="carol@example.com", display_name="Carol"
        )
    assert err.value.code == "managed.saml_required"
    assert np.accounts.find_by_email("carol@example.com") is None


def test_creation_requires_the_domain_verified_by_this_organization(world: World) -> None:
    np = world.np
    other_founder = np.accounts.register("zed@partner.test", "Zed")
    other = np.orgs.create(Actor.account(other_founder.id), "Other")
    mark_domain_verified(np, other.id, "other.example")
    for email in ("carol@other.example", "carol@sub.example.com", "carol@example.org"):
        with pytest.raises(Conflict) as err:
            _create(world, email)
        assert err.value.code == "managed.domain_unverified"
        assert np.accounts.find_by_email(email) is None


def test_subdomains_are_covered_only_when_the_domain_says_so(world: World) -> None:
    mark_domain_verified(world.np, world.org.id, "example.com", include_subdomains=True)
    account_id = _create(world, "carol@eu.example.com")
    assert world.np.accounts.get(account_id).managed_by == world.org.id


def test_only_admins_create_managed_accounts(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id, role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        np.members.create_managed(
            Actor.account(bob.id),
            world.org.id,
            team_id=world.team.id,
            email="carol@example.com",
            display_name="Carol",
        )


def test_unknown_team_and_bad_input_are_refused(world: World) -> None:
    with pytest.raises(NotFound) as nf:
        world.np.members.create_managed(
            world.admin, world.org.id, team_id="team_nope", email="c@example.com", display_name="C"
        )
    assert nf.value.code == "team.not_found"
    with pytest.raises(InvalidInput) as bad:
        world.np.members.create_managed(
            world.admin, world.org.id, team_id=world.team.id, email="c@", display_name="C"
        )
    assert bad.value.code == "email.invalid"


def test_invitation_flow_creates_team_membership_and_activates_on_accept(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    account_id = _create(world)
    account = np.accounts.get(account_id)
    assert account.status is AccountStatus.INVITED
    assert account.managed_by == world.org.id
    assert np.access.check(account_id).code == "access.invitation_pending"
    assert [m.account_id for m in np.teams.members(world.admin, world.org.id, world.team.id)] == [
        account_id
    ]
    report = np.outbox.dispatch_pending()
    assert report.delivered >= 1
    message = mailer.last_to("carol@example.com")
    assert "Acme" in message.subject
    token = mailer.tokens_for("carol@example.com")[-1]
    accepted = np.invitations.accept(token)
    assert accepted.status is AccountStatus.ACTIVE
    assert np.access.check(account_id).allowed
    assert world.events()[-2:] == [
        "managed_account.created",
        "managed_account.invitation_accepted",
    ]
    with pytest.raises(Conflict) as used:
        np.invitations.accept(token)
    assert used.value.code == "invitation.used"


def test_tampered_or_unknown_tokens_are_invalid(world: World, mailer: RecordingMailer) -> None:
    _create(world)
    world.np.outbox.dispatch_pending()
    token = mailer.tokens_for("carol@example.com")[-1]
    for bad in (token[:-2] + "xx", "inv_unknown.abc", "garbage", ""):
        with pytest.raises(NotFound) as err:
            world.np.invitations.accept(bad)
        assert err.value.code == "invitation.invalid"


def test_invitations_expire(world: World, mailer: RecordingMailer, clock: FrozenClock) -> None:
    account_id = _create(world)
    world.np.outbox.dispatch_pending()
    token = mailer.tokens_for("carol@example.com")[-1]
    clock.advance(world.np.config.invitation_ttl)
    with pytest.raises(Conflict) as err:
        world.np.invitations.accept(token)
    assert err.value.code == "invitation.expired"
    assert world.np.accounts.get(account_id).status is AccountStatus.INVITED


def test_resend_replaces_the_token(
    world: World, mailer: RecordingMailer, clock: FrozenClock
) -> None:
    np = world.np
    account_id = _create(world)
    np.outbox.dispatch_pending()
    old = mailer.tokens_for("carol@example.com")[-1]
    clock.advance(days=6)
    np.invitations.resend(world.admin, world.org.id, account_id)
    np.outbox.dispatch_pending()
    new = mailer.tokens_for("carol@example.com")[-1]
    assert new != old
    with pytest.raises(Conflict) as err:
        np.invitations.accept(old)
    assert err.value.code == "invitation.revoked"
    clock.advance(days=3)  # past the first invitation's expiry, within the new one's
    assert np.invitations.accept(new).status is AccountStatus.ACTIVE


def test_an_email_queued_before_a_resend_is_not_sent(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    account_id = _create(world)
    np.invitations.resend(world.admin, world.org.id, account_id)
    report = np.outbox.dispatch_pending()
    assert report.skipped == 1
    assert len(mailer.tokens_for("carol@example.com")) == 1


def test_revoke_removes_the_pending_account(world: World, mailer: RecordingMailer) -> None:
    np = world.np
    account_id = _create(world)
    np.outbox.dispatch_pending()
    token = mailer.tokens_for("carol@example.com")[-1]
    np.invitations.revoke(world.admin, world.org.id, account_id)
    with pytest.raises(NotFound):
        np.accounts.get(account_id)
    with pytest.raises(NotFound):
        np.invitations.accept(token)
    assert np.teams.members(world.admin, world.org.id, world.team.id) == []


def test_deactivate_reactivate_and_domain_events(world: World) -> None:
    np = world.np
    seen: list[DomainEvent] = []
    np.outbox.subscribe("account.deactivated", seen.append)
    account_id = world.managed("carol")
    np.members.deactivate(world.admin, world.org.id, account_id)
    decision = np.access.check(account_id)
    assert not decision
    assert decision.code == "access.deactivated"
    np.outbox.dispatch_pending()
    assert [e.payload["account_id"] for e in seen] == [account_id]
    with pytest.raises(Conflict) as err:
        np.members.deactivate(world.admin, world.org.id, account_id)
    assert err.value.code == "managed.wrong_status"
    np.members.reactivate(world.admin, world.org.id, account_id)
    assert np.access.check(account_id).allowed


def test_delete_removes_account_memberships_and_emits_event(world: World) -> None:
    np = world.np
    seen: list[DomainEvent] = []
    np.outbox.subscribe("*", seen.append)
    account_id = world.managed("carol")
    np.members.delete(world.admin, world.org.id, account_id)
    assert not np.access.check(account_id).allowed
    with pytest.raises(NotFound):
        np.members.get(world.org.id, account_id)
    np.outbox.dispatch_pending()
    assert "account.deleted" in [e.topic for e in seen]
    # The email is free again: the person can be provisioned anew.
    assert world.managed("carol") != account_id


def test_release_turns_a_managed_account_into_a_non_managed_member(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    account_id = world.managed("carol")
    released = np.members.release(world.admin, world.org.id, account_id)
    assert released.managed_by is None
    assert np.members.get(world.org.id, account_id).role is Role.MEMBER
    np.outbox.dispatch_pending()
    assert mailer.last_to("carol@example.com") is not None
    with pytest.raises(Conflict) as err:
        np.members.release(world.admin, world.org.id, account_id)
    assert err.value.code == "member.not_managed"


def test_managed_accounts_cannot_be_removed_or_leave(world: World) -> None:
    np = world.np
    account_id = world.managed("carol")
    with pytest.raises(Conflict) as removed:
        np.members.remove(world.admin, world.org.id, account_id)
    assert removed.value.code == "member.is_managed"
    with pytest.raises(Conflict) as left:
        np.members.leave(Actor.account(account_id), world.org.id)
    assert left.value.code == "member.is_managed"


def test_invited_account_cannot_act(world: World) -> None:
    account_id = _create(world)
    with pytest.raises(PermissionDenied) as err:
        world.np.orgs.create(Actor.account(account_id), "Nope")
    assert err.value.code == "permission.inactive_actor"


def test_access_check_for_unknown_account(np: NulabPass, clock: FrozenClock) -> None:
    decision = np.access.check("acc_missing", clock.now() + timedelta(days=1))
    assert not decision.allowed
    assert decision.code == "access.no_account"
