"""Consent conversion: a non-managed account becomes managed only if its owner agrees."""

from __future__ import annotations

import pytest

from nulabpass import Actor, Conflict, ConversionStatus, NotFound, NulabPass, Role
from nulabpass.testing import FrozenClock, RecordingMailer, mark_domain_verified

from .conftest import World, chain_actions


def _request(world: World, email: str = "dave@example.com") -> tuple[str, str]:
    np = world.np
    dave = np.accounts.register(email, "Dave")
    np.conversions.request(world.admin, world.org.id, dave.id)
    np.outbox.dispatch_pending()
    return dave.id, world.mailer.tokens_for(email)[-1]


def test_accepting_makes_the_account_managed_and_a_member(world: World) -> None:
    np = world.np
    dave, token = _request(world)
    request, org = np.conversions.inspect(token)
    assert request.status is ConversionStatus.PENDING
    assert org.id == world.org.id
    account = np.conversions.accept(token)
    assert account.managed_by == world.org.id
    assert np.members.get(world.org.id, dave).role is Role.MEMBER
    assert world.events()[-2:] == ["conversion.requested", "conversion.accepted"]
    with pytest.raises(Conflict) as again:
        np.conversions.accept(token)
    assert again.value.code == "conversion.used"


def test_declining_changes_nothing_but_the_request(world: World) -> None:
    np = world.np
    dave, token = _request(world)
    np.conversions.decline(token)
    assert np.accounts.get(dave).managed_by is None
    with pytest.raises(NotFound):
        np.members.get(world.org.id, dave)
    with pytest.raises(Conflict) as err:
        np.conversions.accept(token)
    assert err.value.code == "conversion.declined"


def test_accepting_leaves_every_other_organization_with_an_event_in_each(world: World) -> None:
    np = world.np
    dave, token = _request(world)
    # Dave belongs to another organization, where someone else is break-glass.
    other_founder = np.accounts.register("olga@partner.test", "Olga")
    other = np.orgs.create(Actor.account(other_founder.id), "Other")
    np.members.add(Actor.account(other_founder.id), other.id, dave)
    np.conversions.accept(token)
    with pytest.raises(NotFound):
        np.members.get(other.id, dave)
    assert chain_actions(np, other.id)[-1] == "member.removed_by_conversion"
    assert np.audit.verify(other.id).ok


def test_request_needs_preconditions_and_a_non_managed_active_account(world: World) -> None:
    np = world.np
    outsider = np.accounts.register("erin@elsewhere.example", "Erin")
    with pytest.raises(Conflict) as domain:
        np.conversions.request(world.admin, world.org.id, outsider.id)
    assert domain.value.code == "managed.domain_unverified"
    carol = world.managed("carol")
    with pytest.raises(Conflict) as managed:
        np.conversions.request(world.admin, world.org.id, carol)
    assert managed.value.code == "conversion.already_managed"


def test_a_second_pending_request_is_refused_and_cancel_withdraws(world: World) -> None:
    np = world.np
    dave, token = _request(world)
    with pytest.raises(Conflict) as err:
        np.conversions.request(world.admin, world.org.id, dave)
    assert err.value.code == "conversion.pending"
    np.conversions.cancel(world.admin, world.org.id, dave)
    with pytest.raises(Conflict) as cancelled:
        np.conversions.accept(token)
    assert cancelled.value.code == "conversion.revoked"


def test_conversion_requests_expire(world: World, clock: FrozenClock) -> None:
    _, token = _request(world)
    clock.advance(world.np.config.conversion_ttl)
    with pytest.raises(Conflict) as err:
        world.np.conversions.accept(token)
    assert err.value.code == "conversion.expired"


def test_two_organizations_may_verify_a_domain_but_only_one_manages_an_account(
    world: World, mailer: RecordingMailer
) -> None:
    np = world.np
    rival_founder = np.accounts.register("rita@partner.test", "Rita")
    rival = np.orgs.create(Actor.account(rival_founder.id), "Rival")
    np.plans.start_trial(Actor.account(rival_founder.id), rival.id)
    from nulabpass.testing import mark_saml_configured

    mark_saml_configured(np, rival.id)
    mark_domain_verified(np, rival.id, "example.com")
    carol = world.managed("carol")
    # Verifying the same domain does not hand the rival Carol's account.
    with pytest.raises(Conflict) as err:
        np.conversions.request(Actor.account(rival_founder.id), rival.id, carol)
    assert err.value.code == "conversion.already_managed"
    assert np.accounts.get(carol).managed_by == world.org.id


def test_pending_requests_of_other_organizations_are_cancelled_on_accept(
    world: World, np: NulabPass, mailer: RecordingMailer
) -> None:
    dave, token = _request(world)
    rival_founder = np.accounts.register("rita@partner.test", "Rita")
    rival = np.orgs.create(Actor.account(rival_founder.id), "Rival")
    np.plans.start_trial(Actor.account(rival_founder.id), rival.id)
    from nulabpass.testing import mark_saml_configured

    mark_saml_configured(np, rival.id)
    mark_domain_verified(np, rival.id, "example.com")
    np.members.add(Actor.account(rival_founder.id), rival.id, dave)
    np.conversions.request(Actor.account(rival_founder.id), rival.id, dave)
    np.outbox.dispatch_pending()
    rival_token = mailer.tokens_for("dave@example.com")[-1]
    np.conversions.accept(token)
    with pytest.raises(Conflict) as err:
        np.conversions.accept(rival_token)
    assert err.value.code == "conversion.revoked"
