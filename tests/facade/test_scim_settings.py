"""Organization settings that shape SCIM provisioning: admin role sync from ``userType``
(the ``roles`` source is tested with the other User attributes) and the default team of
provisioned users, through HTTP on every store."""

from __future__ import annotations

import pytest

from nulabpass import Actor
from nulabpass.errors import InvalidInput, NotFound, PermissionDenied
from nulabpass.org._model import Role
from nulabpass.web import ScimTestClient as ScimHttp

from .conftest import World


@pytest.fixture
def scim(world: World) -> ScimHttp:
    _token, secret = world.np.scim.tokens.create(world.admin, world.org.id, "Okta")
    return ScimHttp(world.np, secret)


def _team_members(world: World, team_id: str) -> set[str]:
    return {m.account_id for m in world.np.teams.members(world.admin, world.org.id, team_id)}


# -- the settings use case -----------------------------------------------------------------


def test_scim_settings_are_off_and_unset_by_default(world: World) -> None:
    settings = world.np.orgs.get(world.org.id).settings
    assert settings.scim_role_sync is False
    assert settings.scim_default_team_id is None


def test_admins_change_scim_settings_and_the_change_is_audited(world: World) -> None:
    org = world.np.orgs.update_settings(
        world.admin, world.org.id, scim_role_sync=True, scim_default_team_id=world.team.id
    )
    assert org.settings.scim_role_sync is True
    assert org.settings.scim_default_team_id == world.team.id
    assert org.settings.break_glass_requires_admin is False
    stored = world.np.orgs.get(world.org.id).settings
    assert stored == org.settings
    assert world.events("organization.settings_updated") == ["organization.settings_updated"]


def test_a_setting_not_passed_keeps_its_value(world: World) -> None:
    world.np.orgs.update_settings(
        world.admin, world.org.id, scim_role_sync=True, scim_default_team_id=world.team.id
    )
    world.np.orgs.update_settings(world.admin, world.org.id, break_glass_requires_admin=False)
    settings = world.np.orgs.get(world.org.id).settings
    assert settings.scim_role_sync is True
    assert settings.scim_default_team_id == world.team.id
    cleared = world.np.orgs.update_settings(world.admin, world.org.id, scim_default_team_id=None)
    assert cleared.settings.scim_default_team_id is None
    assert cleared.settings.scim_role_sync is True


def test_the_default_team_must_belong_to_the_organization(world: World) -> None:
    other_org = world.np.orgs.create(world.admin, "Other")
    world.np.plans.start_trial(world.admin, other_org.id)
    foreign = world.np.teams.create(world.admin, other_org.id, "Sales")
    with pytest.raises(NotFound, match="no team"):
        world.np.orgs.update_settings(world.admin, world.org.id, scim_default_team_id=foreign.id)
    with pytest.raises(NotFound):
        world.np.orgs.update_settings(world.admin, world.org.id, scim_default_team_id="team_x")
    assert world.np.orgs.get(world.org.id).settings.scim_default_team_id is None


def test_scim_settings_refuse_non_booleans_and_non_admins(world: World) -> None:
    with pytest.raises(InvalidInput, match="scim_role_sync"):
        world.np.orgs.update_settings(
            world.admin,
            world.org.id,
            scim_role_sync="yes",  # type: ignore[arg-type]
        )
    member = Actor.account(world.managed("dora"))
    with pytest.raises(PermissionDenied):
        world.np.orgs.update_settings(member, world.org.id, scim_role_sync=True)
    assert world.np.orgs.get(world.org.id).settings.scim_role_sync is False


# -- default team ---------------------------------------------------------------------------


def test_users_created_through_scim_join_no_team_without_a_default(
    world: World, scim: ScimHttp
) -> None:
    created = scim.create_user("erin").json
    assert created["id"] not in _team_members(world, world.team.id)
    assert "groups" not in created


def test_users_created_through_scim_join_the_default_team(world: World, scim: ScimHttp) -> None:
    world.np.orgs.update_settings(world.admin, world.org.id, scim_default_team_id=world.team.id)
    created = scim.create_user("erin").json
    assert created["id"] in _team_members(world, world.team.id)
    assert [g["value"] for g in created["groups"]] == [world.team.id]


def test_a_deleted_default_team_is_skipped(world: World, scim: ScimHttp) -> None:
    spare = world.np.teams.create(world.admin, world.org.id, "Spare")
    world.np.orgs.update_settings(world.admin, world.org.id, scim_default_team_id=spare.id)
    world.np.teams.delete(world.admin, world.org.id, spare.id)
    reply = scim.create_user("erin")
    assert reply.status == 201
    assert "groups" not in reply.json


# -- role sync ------------------------------------------------------------------------------


def test_without_role_sync_user_type_admin_grants_nothing(world: World, scim: ScimHttp) -> None:
    created = scim.create_user("root", userType="admin", roles=[{"value": "admin"}]).json
    assert world.np.members.get(world.org.id, created["id"]).role is Role.MEMBER


def test_with_role_sync_user_type_admin_makes_an_admin_and_never_grants_privileges(
    world: World, scim: ScimHttp
) -> None:
    world.np.orgs.update_settings(world.admin, world.org.id, scim_role_sync=True)
    created = scim.create_user("root", userType="Admin").json
    membership = world.np.members.get(world.org.id, created["id"])
    assert membership.role is Role.ADMIN
    assert not membership.plan_admin
    assert not membership.audit_log_admin
    plain = scim.create_user("plain", userType="Employee").json
    assert world.np.members.get(world.org.id, plain["id"]).role is Role.MEMBER


def test_with_role_sync_patch_and_put_promote_and_demote(world: World, scim: ScimHttp) -> None:
    world.np.orgs.update_settings(world.admin, world.org.id, scim_role_sync=True)
    created = scim.create_user("erin").json
    path = f"/Users/{created['id']}"
    promoted = scim.patch(path, {"op": "replace", "path": "userType", "value": "admin"})
    assert promoted.status == 200
    assert world.np.members.get(world.org.id, created["id"]).role is Role.ADMIN
    assert "scim.user_updated" in world.events()
    demoted = scim.patch(path, {"op": "remove", "path": "userType"})
    assert demoted.status == 200
    assert world.np.members.get(world.org.id, created["id"]).role is Role.MEMBER
    body = {k: v for k, v in created.items() if k not in {"id", "meta", "groups"}}
    assert scim.put(path, {**body, "userType": "admin"}).status == 200
    assert world.np.members.get(world.org.id, created["id"]).role is Role.ADMIN


def test_with_role_sync_off_an_admin_set_by_hand_keeps_the_role(
    world: World, scim: ScimHttp
) -> None:
    created = scim.create_user("erin").json
    world.np.members.set_role(world.admin, world.org.id, created["id"], Role.ADMIN)
    scim.patch(f"/Users/{created['id']}", {"op": "replace", "path": "title", "value": "CTO"})
    assert world.np.members.get(world.org.id, created["id"]).role is Role.ADMIN


def test_role_sync_keeps_plan_admin_and_audit_log_admin_granted_by_hand(
    world: World, scim: ScimHttp
) -> None:
    world.np.orgs.update_settings(world.admin, world.org.id, scim_role_sync=True)
    created = scim.create_user("erin", userType="admin").json
    assert world.np.members.get(world.org.id, created["id"]).role is Role.ADMIN
    world.np.members.set_privileges(
        world.admin, world.org.id, created["id"], plan_admin=True, audit_log_admin=True
    )
    scim.patch(f"/Users/{created['id']}", {"op": "replace", "path": "userType", "value": "x"})
    membership = world.np.members.get(world.org.id, created["id"])
    assert membership.role is Role.MEMBER
    assert membership.plan_admin
    assert membership.audit_log_admin


def test_demoting_through_scim_cannot_reach_a_non_managed_admin(
    world: World, scim: ScimHttp
) -> None:
    world.np.orgs.update_settings(
        world.admin, world.org.id, scim_role_sync=True, break_glass_requires_admin=True
    )
    founder = world.founder.id
    path = f"/Users/{founder}"
    assert scim.patch(path, {"op": "replace", "path": "userType", "value": "x"}).status == 404
    put = scim.put(
        path, {"userName": "founder@partner.test", "userType": "member", "active": True}
    )
    assert put.status == 404
    assert scim.delete(path).status == 404
    membership = world.np.members.get(world.org.id, founder)
    assert membership.role is Role.ADMIN
    assert membership.plan_admin


def test_an_organization_row_stored_before_the_scim_settings_reads_with_defaults(
    world: World,
) -> None:
    from nulabpass.stores.sql import SqlStore
    from nulabpass.stores.sql import schema as sql_schema

    if not isinstance(world.np.store, SqlStore):
        pytest.skip("only SQL stores keep settings as JSON")
    table = sql_schema.organizations
    with world.np.store.transaction() as uow:
        db = uow.organizations._db  # type: ignore[attr-defined]
        db.execute(
            table.update()
            .where(table.c.id == world.org.id)
            .values(settings={"break_glass_requires_admin": True}),
            "organization",
        )
    settings = world.np.orgs.get(world.org.id).settings
    assert settings.break_glass_requires_admin is True
    assert settings.scim_role_sync is False
    assert settings.scim_default_team_id is None
