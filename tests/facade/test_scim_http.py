"""The SCIM service through its WSGI adapter, on every store: authentication, scope
rules, resources, filters, PATCH forms, ETags and errors (RFC 7644)."""

from __future__ import annotations

import json

import pytest

from nulabpass import Actor, NulabPass
from nulabpass.org._model import AccountStatus, Role
from nulabpass.scim._service import ScimRequest
from nulabpass.testing import RecordingMailer, scim_ready_org
from nulabpass.web import ScimTestClient as ScimHttp

from .conftest import World

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def scim(world: World) -> ScimHttp:
    _token, secret = world.np.scim.tokens.create(world.admin, world.org.id, "Okta")
    return ScimHttp(world.np, secret)


def _outbox_topics(np: NulabPass) -> list[str]:
    with np.store.transaction() as uow:
        return [m.topic for m in uow.outbox.claim_due(np.clock.now(), 1000)]


# -- authentication ---------------------------------------------------------------------


def test_a_request_without_a_token_is_401_with_a_bearer_challenge(scim: ScimHttp) -> None:
    reply = scim.get("/Users", token=None)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert reply.json["status"] == "401"


@pytest.mark.parametrize("bad", ["nonsense", "sct_x.y", "Basic abc"])
def test_a_wrong_token_is_401(scim: ScimHttp, bad: str) -> None:
    assert scim.get("/Users", token=bad).status == 401


def test_repeated_failed_authentication_is_rate_limited(scim: ScimHttp) -> None:
    statuses = [scim.get("/Users", token="sct_x.wrong").status for _ in range(25)]
    assert statuses[:20] == [401] * 20
    assert statuses[-1] == 429
    assert scim.get("/Users").status == 200


def test_a_revoked_token_stops_working_at_once(world: World, scim: ScimHttp) -> None:
    token = world.np.scim.tokens.list(world.admin, world.org.id)[0]
    assert scim.get("/Users").status == 200
    world.np.scim.tokens.revoke(world.admin, world.org.id, token.id)
    assert scim.get("/Users").status == 401


def test_rotating_a_token_replaces_its_secret(world: World, scim: ScimHttp) -> None:
    token = world.np.scim.tokens.list(world.admin, world.org.id)[0]
    _new, secret = world.np.scim.tokens.rotate(world.admin, world.org.id, token.id)
    assert scim.get("/Users").status == 401
    assert scim.get("/Users", token=secret).status == 200
    assert "scim.token_rotated" in world.events()


def test_only_admins_manage_tokens_and_secrets_are_stored_as_hashes(world: World) -> None:
    member_id = world.managed("dora")
    with pytest.raises(Exception, match="admin"):
        world.np.scim.tokens.create(Actor.account(member_id), world.org.id, "x")
    token, secret = world.np.scim.tokens.create(world.admin, world.org.id, "Entra")
    assert secret.startswith(token.id + ".")
    assert secret not in repr(world.np.scim.tokens.list(world.admin, world.org.id))


# -- preconditions ----------------------------------------------------------------------


def test_provisioning_needs_an_active_plan(world: World, scim: ScimHttp) -> None:
    world.np.plans.cancel(world.admin, world.org.id)
    world.np.clock.advance(days=40)
    reply = scim.create_user("eve")
    assert reply.status == 403
    assert "plan" in reply.json["detail"].lower()


def test_discovery_describes_users_groups_and_no_bulk(scim: ScimHttp) -> None:
    config = scim.get("/ServiceProviderConfig").json
    assert config["bulk"]["supported"] is False
    assert config["patch"]["supported"] is True
    assert config["etag"]["supported"] is True
    types = scim.get("/ResourceTypes").json
    assert [r["name"] for r in types["Resources"]] == ["User", "Group"]
    schemas = scim.get("/Schemas").json
    assert {s["id"] for s in schemas["Resources"]} == {USER, ENTERPRISE, GROUP}
    assert scim.get(f"/Schemas/{ENTERPRISE}").json["name"] == "EnterpriseUser"
    assert scim.post("/Bulk", {}).status == 501


# -- users ------------------------------------------------------------------------------


def test_creating_a_user_makes_an_active_managed_member_audited_as_provisioning(
    world: World, scim: ScimHttp
) -> None:
    reply = scim.create_user("erin", title="Engineer", **{ENTERPRISE: {"department": "R&D"}})
    assert reply.status == 201
    doc = reply.json
    assert reply.headers["location"] == f"http://sp.test/scim/v2/Users/{doc['id']}"
    assert reply.headers["etag"] == doc["meta"]["version"]
    assert doc["userName"] == "erin@example.com"
    assert doc[ENTERPRISE] == {"department": "R&D"}
    account = world.np.accounts.get(doc["id"])
    assert account.managed_by == world.org.id
    assert account.status is AccountStatus.ACTIVE
    membership = world.np.members.get(world.org.id, doc["id"])
    assert membership.role is Role.MEMBER
    assert not membership.plan_admin
    assert not membership.audit_log_admin
    assert world.np.access.check(doc["id"]).allowed
    with world.np.store.transaction() as uow:
        event = next(
            e for e in uow.audit.iter_chain(world.org.id) if e.action == "scim.user_created"
        )
    assert event.actor_type == "scim_token"
    assert event.context["actor_display"] == "User provisioning"


def test_scim_cannot_grant_roles_or_privileges(world: World, scim: ScimHttp) -> None:
    reply = scim.create_user(
        "root", roles=[{"value": "admin"}], entitlements=[{"value": "plan_admin"}]
    )
    membership = world.np.members.get(world.org.id, reply.json["id"])
    assert membership.role is Role.MEMBER
    assert not membership.plan_admin


def test_user_name_must_be_on_a_verified_domain(scim: ScimHttp) -> None:
    reply = scim.post("/Users", {"schemas": [USER], "userName": "x@elsewhere.test"})
    assert reply.status == 400
    assert reply.json["scimType"] == "invalidValue"
    assert "verified domain" in reply.json["detail"]
    reply = scim.post("/Users", {"schemas": [USER], "userName": "not-an-email"})
    assert reply.json["scimType"] == "invalidValue"


def test_user_name_uniqueness_ignores_case(scim: ScimHttp) -> None:
    assert scim.create_user("fred").status == 201
    reply = scim.post("/Users", {"schemas": [USER], "userName": "FRED@Example.com"})
    assert reply.status == 409
    assert reply.json["scimType"] == "uniqueness"


def test_creating_a_user_for_a_non_managed_account_starts_the_consent_conversion(
    world: World, scim: ScimHttp, mailer: RecordingMailer
) -> None:
    owner = world.np.accounts.register("gina@example.com", "Gina")
    reply = scim.create_user("gina")
    assert reply.status == 409
    assert reply.json["scimType"] == "uniqueness"
    assert "asked by email" in reply.json["detail"]
    assert world.np.accounts.get(owner.id).managed_by is None
    assert world.events("conversion.requested") == ["conversion.requested"]
    assert scim.get('/Users?filter=userName eq "gina@example.com"').json["totalResults"] == 0
    again = scim.create_user("gina")
    assert "already been asked" in again.json["detail"]
    world.np.outbox.dispatch_pending()
    world.np.conversions.accept(mailer.tokens_for("gina@example.com")[-1])
    adopted = scim.create_user("gina")
    assert adopted.status == 201
    assert adopted.json["id"] == owner.id


def test_a_managed_account_created_by_an_admin_is_adopted_on_create(
    world: World, scim: ScimHttp
) -> None:
    account_id = world.managed("hank")
    reply = scim.create_user("hank")
    assert reply.status == 201
    assert reply.json["id"] == account_id
    assert scim.create_user("hank").status == 409


def test_get_by_id_answers_404_for_unknown_and_non_managed_accounts(
    world: World, scim: ScimHttp
) -> None:
    assert scim.get("/Users/acc_nope").status == 404
    assert scim.get(f"/Users/{world.founder.id}").status == 404


def test_etags_guard_writes_and_answer_not_modified(scim: ScimHttp) -> None:
    created = scim.create_user("ivan").json
    etag = created["meta"]["version"]
    url = f"/Users/{created['id']}"
    assert scim.get(url, headers={"If-None-Match": etag}).status == 304
    changed = scim.patch(
        url, {"op": "replace", "path": "title", "value": "Lead"}, headers={"If-Match": etag}
    )
    assert changed.status == 200
    assert changed.json["meta"]["version"] != etag
    stale = scim.patch(
        url, {"op": "replace", "path": "title", "value": "X"}, headers={"If-Match": etag}
    )
    assert stale.status == 412
    assert scim.delete(url, headers={"If-Match": etag}).status == 412


def test_put_replaces_the_user_and_keeps_read_only_attributes(scim: ScimHttp) -> None:
    created = scim.create_user("jane", title="Dev").json
    body = {
        "schemas": [USER],
        "id": "ignored",
        "userName": "jane@example.com",
        "displayName": "Jane Q",
        "preferredLanguage": "ja",
        "timezone": "Asia/Tokyo",
        "active": True,
    }
    reply = scim.put(f"/Users/{created['id']}", body)
    assert reply.status == 200
    doc = reply.json
    assert doc["id"] == created["id"]
    assert "title" not in doc
    assert doc["displayName"] == "Jane Q"
    assert doc["preferredLanguage"] == "ja"


def test_put_refuses_a_user_name_on_an_unverified_domain(scim: ScimHttp) -> None:
    created = scim.create_user("kim").json
    reply = scim.put(f"/Users/{created['id']}", {"userName": "kim@elsewhere.test"})
    assert reply.status == 400
    patched = scim.patch(
        f"/Users/{created['id']}",
        {"op": "replace", "path": "userName", "value": "kim@elsewhere.test"},
    )
    assert patched.status == 400


def test_deactivation_ends_access_at_once_and_tells_the_host(world: World, scim: ScimHttp) -> None:
    created = scim.create_user("lena").json
    reply = scim.patch(f"/Users/{created['id']}", {"op": "replace", "value": {"active": False}})
    assert reply.status == 200
    assert reply.json["active"] is False
    decision = world.np.access.check(created["id"])
    assert not decision.allowed
    assert decision.code == "access.deactivated"
    assert "account.deactivated" in _outbox_topics(world.np)
    assert "scim.user_deactivated" in world.events()
    back = scim.patch(
        f"/Users/{created['id']}", {"op": "Replace", "path": "active", "value": "True"}
    )
    assert back.json["active"] is True
    assert world.np.access.check(created["id"]).allowed
    assert "scim.user_reactivated" in world.events()


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "active", "value": False},
        {"op": "Replace", "value": {"active": "False"}},
        {"op": "add", "path": "Active", "value": False},
    ],
)
def test_setting_active_alone_changes_nothing_else(
    scim: ScimHttp, operation: dict[str, object]
) -> None:
    """Deactivating through any plain form (taken without rendering and validating the
    stored user again) leaves every other attribute exactly as stored, and reactivating
    restores the very document, on every store."""
    created = scim.create_user(
        "sven",
        title="Eng",
        displayName="Sven S",
        phoneNumbers=[{"value": "+81 3 0000 0000", "type": "work", "primary": True}],
        addresses=[{"locality": "Fukuoka", "country": "JP", "type": "work"}],
        x509Certificates=[{"value": "MIIB"}],
        **{ENTERPRISE: {"department": "R&D", "manager": "acc_boss"}},
        schemas=[USER, ENTERPRISE],
    ).json
    path = f"/Users/{created['id']}"
    before = scim.get(path).json
    off = scim.patch(path, operation)
    assert off.status == 200
    assert off.json["active"] is False
    after = scim.get(path).json
    assert after["active"] is False

    def without_volatile(doc: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in doc.items() if k not in {"active", "meta"}}

    assert without_volatile(after) == without_volatile(before)
    assert after["meta"]["version"] != before["meta"]["version"]
    on = scim.patch(path, {"op": "replace", "path": "active", "value": True}).json
    assert without_volatile(on) == without_volatile(before)
    assert on["active"] is True


def test_delete_leaves_a_tombstone_and_the_user_name_can_return(
    world: World, scim: ScimHttp
) -> None:
    created = scim.create_user("mona").json
    assert scim.delete(f"/Users/{created['id']}").status == 204
    assert scim.get(f"/Users/{created['id']}").status == 404
    assert scim.delete(f"/Users/{created['id']}").status == 404
    assert "account.deleted" in _outbox_topics(world.np)
    with world.np.store.transaction() as uow:
        tomb = uow.scim.get_tombstone(world.org.id, created["id"])
    assert tomb is not None
    assert tomb.user_name == "mona@example.com"
    again = scim.create_user("mona")
    assert again.status == 201
    assert again.json["id"] != created["id"]


# -- queries ----------------------------------------------------------------------------


def test_filters_sorting_and_paging(scim: ScimHttp) -> None:
    for name in ("nia", "omar", "pia", "quinn", "rae"):
        scim.create_user(name, title="Eng" if name < "q" else "Ops")
    listed = scim.get("/Users?sortBy=userName&sortOrder=descending&startIndex=2&count=2").json
    assert listed["totalResults"] == 5
    assert listed["startIndex"] == 2
    assert [r["userName"] for r in listed["Resources"]] == ["quinn@example.com", "pia@example.com"]
    found = scim.get(
        '/Users?filter=emails[type eq "work" and value co "@EXAMPLE.com"] and title eq "ops"'
    ).json
    assert sorted(r["userName"] for r in found["Resources"]) == [
        "quinn@example.com",
        "rae@example.com",
    ]
    only = scim.get('/Users?filter=userName eq "Omar@example.com"&attributes=userName').json
    assert only["Resources"] == [
        {"schemas": [USER], "id": only["Resources"][0]["id"], "userName": "omar@example.com"}
    ]
    search = scim.post(
        "/Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'name.givenName sw "n"',
            "excludedAttributes": ["emails", "groups"],
        },
    ).json
    assert [r["userName"] for r in search["Resources"]] == ["nia@example.com"]
    assert "emails" not in search["Resources"][0]


@pytest.mark.parametrize(
    "query",
    [
        "filter=userName eq",
        'filter=groups.value eq "x"',
        'filter=shoeSize eq "9"',
        "filter=" + "a pr or " * 400 + "a pr",
        "filter=" + "(" * 40 + "userName pr" + ")" * 40,
    ],
)
def test_bad_filters_are_invalid_filter(scim: ScimHttp, query: str) -> None:
    reply = scim.get("/Users?" + query.replace(" ", "%20").replace('"', "%22"))
    assert reply.status == 400
    assert reply.json["scimType"] == "invalidFilter"


def test_bad_bodies_are_refused(scim: ScimHttp) -> None:
    assert scim.request("POST", "/Users", raw=b"{nope").json["scimType"] == "invalidSyntax"
    big = b'{"userName": "' + b"a" * 1_100_000 + b'"}'
    assert scim.request("POST", "/Users", raw=big).status == 413
    assert scim.get("/Nothing").status == 404
    assert scim.request("DELETE", "/Users").status == 405


# -- groups -----------------------------------------------------------------------------


def test_groups_change_membership_row_by_row_and_never_touch_non_managed_members(
    world: World, scim: ScimHttp
) -> None:
    a = scim.create_user("sam").json["id"]
    b = scim.create_user("tia").json["id"]
    group = scim.post(
        "/Groups", {"schemas": [GROUP], "displayName": "Ops", "members": [{"value": a}]}
    ).json
    gid = group["id"]
    world.np.teams.add_member(world.admin, world.org.id, gid, world.founder.id)
    assert (
        scim.patch(
            f"/Groups/{gid}", {"op": "add", "path": "members", "value": [{"value": b}]}
        ).status
        == 204
    )
    members = {m["value"] for m in scim.get(f"/Groups/{gid}").json["members"]}
    assert members == {a, b}
    # Entra: removal with a value array; Okta: filtered removal.
    scim.patch(f"/Groups/{gid}", {"op": "Remove", "path": "members", "value": [{"value": a}]})
    scim.patch(f"/Groups/{gid}", {"op": "remove", "path": f'members[value eq "{b}"]'})
    assert "members" not in scim.get(f"/Groups/{gid}").json
    scim.put(f"/Groups/{gid}", {"schemas": [GROUP], "displayName": "Ops", "members": []})
    founders = [m.account_id for m in world.np.teams.members(world.admin, world.org.id, gid)]
    assert founders == [world.founder.id]
    # Okta renames with the id in the value.
    renamed = scim.patch(
        f"/Groups/{gid}", {"op": "replace", "value": {"id": gid, "displayName": "Ops 2"}}
    )
    assert renamed.status == 204
    assert scim.get(f"/Groups/{gid}").json["displayName"] == "Ops 2"
    assert scim.delete(f"/Groups/{gid}").status == 204
    assert scim.get(f"/Groups/{gid}").status == 404
    assert world.np.accounts.get(a).managed_by == world.org.id


def test_group_names_are_unique_and_members_must_be_managed_users(
    world: World, scim: ScimHttp
) -> None:
    dup = scim.post("/Groups", {"schemas": [GROUP], "displayName": "engineering"})
    assert dup.status == 409
    assert dup.json["scimType"] == "uniqueness"
    stranger = scim.post(
        "/Groups",
        {"schemas": [GROUP], "displayName": "X", "members": [{"value": world.founder.id}]},
    )
    assert stranger.status == 400
    assert stranger.json["scimType"] == "invalidValue"


def test_a_users_groups_are_listed_on_the_user(world: World, scim: ScimHttp) -> None:
    uid = scim.create_user("uma").json["id"]
    gid = scim.post("/Groups", {"displayName": "Design", "members": [{"value": uid}]}).json["id"]
    groups = scim.get(f"/Users/{uid}").json["groups"]
    assert [(g["value"], g["display"]) for g in groups] == [(gid, "Design")]
    found = scim.get(f'/Groups?filter=members[value eq "{uid}"]').json
    assert [r["id"] for r in found["Resources"]] == [gid]


def test_the_seat_limit_is_a_403_that_names_the_seats() -> None:
    from nulabpass.testing import make_nulabpass, scim_ready_org

    np = make_nulabpass(trial_seats=1)
    _org, token = scim_ready_org(np)
    client = ScimHttp(np, token)
    assert client.create_user("first").status == 201
    refused = client.create_user("second")
    assert refused.status == 403
    assert "seat" in refused.json["detail"].lower()


def test_a_root_search_spans_users_and_groups(scim: ScimHttp) -> None:
    scim.create_user("vera")
    reply = scim.post(
        "/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'displayName sw "Eng"',
        },
    )
    assert reply.status == 200
    assert [r["displayName"] for r in reply.json["Resources"]] == ["Engineering"]
    users_only = scim.post("/.search", {"filter": 'userName eq "vera@example.com"'}).json
    assert users_only["totalResults"] == 1


def test_every_change_is_exactly_one_audit_event(world: World, scim: ScimHttp) -> None:
    before = len(world.events())
    uid = scim.create_user("walt").json["id"]
    scim.patch(f"/Users/{uid}", {"op": "replace", "path": "title", "value": "X"})
    scim.delete(f"/Users/{uid}")
    actions = world.events()[before:]
    assert actions == ["scim.user_created", "scim.user_updated", "scim.user_deleted"]


def test_each_user_change_is_audited_once_under_the_action_its_stored_status_decides(
    world: World, scim: ScimHttp
) -> None:
    created = scim.create_user("erin").json
    path = f"/Users/{created['id']}"
    body = {k: v for k, v in created.items() if k not in {"id", "meta", "groups"}}
    steps = [
        (lambda: scim.patch(path, {"op": "replace", "path": "active", "value": "False"})),
        (lambda: scim.patch(path, {"op": "replace", "value": {"active": False}})),
        (lambda: scim.put(path, {**body, "active": True})),
        (lambda: scim.put(path, {**body, "active": True, "title": "Lead"})),
        (lambda: scim.put(path, {**body, "active": False})),
        (lambda: scim.patch(path, {"op": "replace", "path": "active", "value": True})),
    ]
    for step in steps:
        assert step().status == 200
    user_events = [a for a in world.events() if a.startswith("scim.user_")]
    assert user_events == [
        "scim.user_created",
        "scim.user_deactivated",
        "scim.user_updated",
        "scim.user_reactivated",
        "scim.user_updated",
        "scim.user_deactivated",
        "scim.user_reactivated",
    ]
    assert scim.get(path).json["active"] is True


def test_an_account_deleted_or_released_by_an_admin_leaves_no_scim_attributes(
    np: NulabPass,
) -> None:
    """Provisioned names and emails go with the account, whoever removes it."""
    org, token = scim_ready_org(np)
    admin = next(m for m in np.members.list(Actor.system(), org.id))
    created = []
    for name in ("zoe", "yan"):
        reply = np.scim.handle(
            ScimRequest(
                method="POST",
                path="/Users",
                headers={"Authorization": f"Bearer {token}"},
                body=json.dumps(
                    {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": f"{name}@example.com",
                        "name": {"givenName": name.title(), "familyName": "Doe"},
                    }
                ).encode(),
            )
        )
        assert reply.status == 201
        created.append(json.loads(reply.body)["id"])
    actor = Actor.account(admin.account_id)
    np.members.delete(actor, org.id, created[0])
    np.members.release(actor, org.id, created[1])
    with np.store.transaction() as uow:
        assert uow.scim.get_user(org.id, created[0]) is None
        assert uow.scim.get_user(org.id, created[1]) is None
