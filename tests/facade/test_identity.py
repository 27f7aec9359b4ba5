"""Accounts, organizations, members and the permission table, through the facade."""

from __future__ import annotations

import pytest

from nulabpass import (
    AccountStatus,
    Actor,
    Conflict,
    InvalidInput,
    NotFound,
    NulabPass,
    Outcome,
    PermissionDenied,
    RequestContext,
    Role,
)
from nulabpass.testing import FrozenClock

from .conftest import World, chain_actions


def test_register_normalises_email_and_refuses_a_second_account_for_it(np: NulabPass) -> None:
    account = np.accounts.register(
        "  Alice@Example.COM ", "Alice", language="ja", timezone="Asia/Tokyo"
    )
    assert account.email == "alice@example.com"
    assert account.status is AccountStatus.ACTIVE
    assert not account.is_managed
    with pytest.raises(Conflict) as err:
        np.accounts.register("ALICE@example.com", "Alice again")
    assert err.value.code == "account.email_taken"
    assert np.accounts.find_by_email("alice@EXAMPLE.com") == account


@pytest.mark.parametrize(
    ("email", "name", "language", "timezone", "code"),
    [
        ("no-at-sign", "A", None, None, "email.invalid"),
        ("a@b", "A", None, None, "email.invalid"),
        ("a@127.0.0.1", "A", None, None, "email.invalid"),
        ("a..b@example.com", "A", None, None, "email.invalid"),
        ("a@example.com", "   ", None, None, "account.invalid_name"),
        ("a@example.com", "x" * 101, None, None, "account.invalid_name"),
        ("a@example.com", "bad\u202ename", None, None, "account.invalid_name"),
        ("a@example.com", "A", "english!", None, "account.invalid_language"),
        ("a@example.com", "A", None, "Mars/Olympus", "account.invalid_timezone"),
    ],
)
def test_bad_registration_input_gets_a_stable_code_and_creates_nothing(
    np: NulabPass, email: str, name: str, language: str | None, timezone: str | None, code: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        np.accounts.register(email, name, language=language, timezone=timezone)
    assert err.value.code == code
    assert err.value.message
    assert np.accounts.find_by_email("a@example.com") is None


def test_internationalised_domain_is_stored_as_its_a_label(np: NulabPass) -> None:
    account = np.accounts.register("user@bücher.example", "Reader")
    assert account.email == "user@xn--bcher-kva.example"


def test_founder_becomes_admin_plan_admin_and_audit_log_admin(world: World) -> None:
    membership = world.np.members.get(world.org.id, world.founder.id)
    assert membership.role is Role.ADMIN
    assert membership.plan_admin
    assert membership.audit_log_admin
    assert world.events()[0] == "organization.created"


def test_a_managed_account_cannot_found_an_organization(world: World) -> None:
    managed = world.managed("carol")
    with pytest.raises(Conflict) as err:
        world.np.orgs.create(Actor.account(managed), "Side project")
    assert err.value.code == "organization.founder_managed"


def test_rename_and_settings_need_an_admin(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id)
    with pytest.raises(PermissionDenied) as err:
        np.orgs.rename(Actor.account(bob.id), world.org.id, "Bob's org")
    assert err.value.code == "permission.manage_organization"
    assert np.orgs.get(world.org.id).name == "Acme"
    renamed = np.orgs.rename(world.admin, world.org.id, "Acme Corp")
    assert renamed.name == "Acme Corp"
    assert renamed.version == np.orgs.get(world.org.id).version


def test_outsiders_cannot_act_on_an_organization(world: World) -> None:
    outsider = world.np.accounts.register("eve@partner.test", "Eve")
    with pytest.raises(PermissionDenied) as err:
        world.np.teams.create(Actor.account(outsider.id), world.org.id, "Eve's team")
    assert err.value.code == "permission.not_a_member"
    with pytest.raises(PermissionDenied):
        world.np.members.list(Actor.account(outsider.id), world.org.id)


def test_unknown_organization_is_not_found(np: NulabPass) -> None:
    founder = np.accounts.register("f@partner.test", "F")
    with pytest.raises(NotFound) as err:
        np.orgs.rename(Actor.account(founder.id), "org_missing", "X")
    assert err.value.code == "organization.not_found"


def test_permission_failures_are_recorded_once_then_aggregated(
    world: World, clock: FrozenClock
) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id)
    ctx = RequestContext(ip="203.0.113.9", product="tracker")
    for _ in range(5):
        with pytest.raises(PermissionDenied):
            np.teams.create(Actor.account(bob.id), world.org.id, "Shadow", ctx=ctx)
    failures = [a for a in world.events() if a == "team.created"]
    # One success (the world's team) and a single recorded failure for five attempts.
    assert len(failures) == 2
    clock.advance(minutes=2)
    with pytest.raises(PermissionDenied):
        np.teams.create(Actor.account(bob.id), world.org.id, "Shadow", ctx=ctx)
    page = np.audit.query(
        world.admin, world.org.id, actions=["team.created"], outcome=Outcome.FAILURE
    )
    assert [e.metadata.get("repeats_not_recorded") for e in page.entries] == [4, None]
    assert all(e.metadata["error_code"] == "permission.manage_teams" for e in page.entries)
    assert page.entries[0].ip == "203.0.113.9"


def test_unknown_product_in_context_is_refused(world: World) -> None:
    with pytest.raises(InvalidInput) as err:
        world.np.teams.create(
            world.admin, world.org.id, "Ops", ctx=RequestContext(product="spreadsheets")
        )
    assert err.value.code == "context.unknown_product"


def test_audit_events_carry_the_product(world: World) -> None:
    world.np.teams.create(world.admin, world.org.id, "Ops", ctx=RequestContext(product="diagrams"))
    page = world.np.audit.query(world.admin, world.org.id, actions=["team.created"])
    assert page.entries[0].product == "diagrams"


def test_member_add_role_and_privileges(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id, role=Role.MEMBER)
    with pytest.raises(Conflict) as err:
        np.members.add(world.admin, world.org.id, bob.id)
    assert err.value.code == "membership.exists"
    np.members.set_role(world.admin, world.org.id, bob.id, Role.ADMIN)
    m = np.members.set_privileges(world.admin, world.org.id, bob.id, audit_log_admin=True)
    assert m.role is Role.ADMIN
    assert m.audit_log_admin
    assert not m.plan_admin
    with pytest.raises(InvalidInput) as bad:
        np.members.set_role(world.admin, world.org.id, bob.id, "owner")  # type: ignore[arg-type]
    assert bad.value.code == "member.invalid_role"
    assert world.events()[-2:] == ["member.role_changed", "member.privileges_changed"]


def test_a_member_cannot_grant_themselves_privileges(world: World) -> None:
    np = world.np
    bob = np.accounts.register("bob@partner.test", "Bob")
    np.members.add(world.admin, world.org.id, bob.id)
    with pytest.raises(PermissionDenied):
        np.members.set_privileges(Actor.account(bob.id), world.org.id, bob.id, plan_admin=True)
    assert not np.members.get(world.org.id, bob.id).plan_admin


def test_account_managed_elsewhere_cannot_join(world: World) -> None:
    np = world.np
    carol = world.managed("carol")
    other_founder = np.accounts.register("zed@partner.test", "Zed")
    other = np.orgs.create(Actor.account(other_founder.id), "Other")
    with pytest.raises(Conflict) as err:
        np.members.add(Actor.account(other_founder.id), other.id, carol)
    assert err.value.code == "member.managed_elsewhere"


def test_non_managed_account_may_belong_to_several_organizations(world: World) -> None:
    np = world.np
    other = np.orgs.create(world.admin, "Second org")
    assert {o.id for o in np.orgs.for_account(world.founder.id)} == {world.org.id, other.id}


def test_profile_updates_by_owner_and_by_managing_admin(world: World) -> None:
    np = world.np
    me = np.accounts.update_profile(
        world.admin, world.founder.id, language="ja", timezone="Asia/Tokyo"
    )
    assert (me.language, me.timezone) == ("ja", "Asia/Tokyo")
    carol = world.managed("carol")
    updated = np.accounts.update_profile(world.admin, carol, display_name="Carol C.")
    assert updated.display_name == "Carol C."
    assert world.events()[-1] == "account.profile_updated"
    with pytest.raises(PermissionDenied):
        np.accounts.update_profile(Actor.account(carol), world.founder.id, display_name="Hacked")
    assert chain_actions(np, "host")[-1] == "account.profile_updated"


def test_teams_lifecycle_and_unique_names(world: World) -> None:
    np = world.np
    with pytest.raises(Conflict) as err:
        np.teams.create(world.admin, world.org.id, "ENGINEERING")
    assert err.value.code == "team.name_taken"
    bob = np.accounts.register("bob@partner.test", "Bob")
    with pytest.raises(NotFound) as nf:
        np.teams.add_member(world.admin, world.org.id, world.team.id, bob.id)
    assert nf.value.code == "member.not_found"
    np.members.add(world.admin, world.org.id, bob.id)
    np.teams.add_member(world.admin, world.org.id, world.team.id, bob.id)
    assert [m.account_id for m in np.teams.members(world.admin, world.org.id, world.team.id)] == [
        bob.id
    ]
    renamed = np.teams.rename(world.admin, world.org.id, world.team.id, "Platform")
    assert renamed.name == "Platform"
    np.teams.remove_member(world.admin, world.org.id, world.team.id, bob.id)
    with pytest.raises(NotFound):
        np.teams.remove_member(world.admin, world.org.id, world.team.id, bob.id)
    np.teams.delete(world.admin, world.org.id, world.team.id)
    assert np.teams.list(world.admin, world.org.id) == []
    assert np.members.get(world.org.id, bob.id).account_id == bob.id


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda np, w: np.teams.create(None, w.org.id, "Ops"), "input.invalid_actor"),
        (lambda np, w: np.teams.create(w.admin, w.org.id, "Ops", ctx="ip"), "context.invalid"),
        (lambda np, w: np.teams.create(w.admin, 42, "Ops"), "input.invalid_id"),
        (lambda np, w: np.teams.create(w.admin, w.org.id, 42), "team.invalid_name"),
        (
            lambda np, w: np.audit.query(w.admin, w.org.id, outcome="maybe"),
            "audit.invalid_outcome",
        ),
        (lambda np, w: np.audit.query(w.admin, w.org.id, cursor=7), "audit.invalid_cursor"),
        (
            lambda np, w: np.members.set_privileges(w.admin, w.org.id, w.founder.id),
            "member.invalid_privilege",
        ),
        (
            lambda np, w: np.members.set_privileges(
                w.admin, w.org.id, w.founder.id, plan_admin="yes"
            ),
            "member.invalid_privilege",
        ),
    ],
)
def test_malformed_arguments_get_invalid_input_with_a_code(
    world: World, call: object, code: str
) -> None:
    events = len(world.events())
    with pytest.raises(InvalidInput) as err:
        call(world.np, world)  # type: ignore[operator]
    assert err.value.code == code
    assert err.value.message
    assert len(world.events()) == events
