"""Provisioning sequences as Okta and Microsoft Entra ID send them, request by request,
in the shapes their SCIM documentation shows (capitalised ops, string booleans, bare
manager ids, path-less replaces, filtered member removal...)."""

from __future__ import annotations

from nulabpass import NulabPass
from nulabpass.testing import scim_ready_org
from nulabpass.web import ScimTestClient

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_okta_provisioning_sequence(np: NulabPass) -> None:
    _org, token = scim_ready_org(np)
    okta = ScimTestClient(np, token)
    lookup = okta.get(
        "/Users?filter=userName%20eq%20%22isabel%40example.com%22&startIndex=1&count=100"
    )
    assert lookup.status == 200
    assert lookup.json["totalResults"] == 0
    created = okta.post(
        "/Users",
        {
            "schemas": [USER],
            "userName": "isabel@example.com",
            "name": {"givenName": "Isabel", "familyName": "Ramos"},
            "emails": [{"primary": True, "value": "isabel@example.com", "type": "work"}],
            "displayName": "Isabel Ramos",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": True,
        },
    )
    assert created.status == 201
    uid = created.json["id"]
    found = okta.get("/Users?filter=userName%20eq%20%22isabel%40example.com%22").json
    assert [r["id"] for r in found["Resources"]] == [uid]
    assert "password" not in okta.get(f"/Users/{uid}").json
    updated = okta.put(
        f"/Users/{uid}",
        {
            "schemas": [USER],
            "id": uid,
            "userName": "isabel@example.com",
            "name": {"givenName": "Isabel", "familyName": "Ramos-Lee"},
            "emails": [{"primary": True, "value": "isabel@example.com", "type": "work"}],
            "active": True,
        },
    )
    assert updated.json["name"]["familyName"] == "Ramos-Lee"
    off = okta.patch(f"/Users/{uid}", {"op": "replace", "value": {"active": False}})
    assert off.json["active"] is False
    assert not np.access.check(uid).allowed
    on = okta.patch(f"/Users/{uid}", {"op": "replace", "value": {"active": True}})
    assert on.json["active"] is True
    assert np.access.check(uid).allowed
    group = okta.post("/Groups", {"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []})
    gid = group.json["id"]
    renamed = okta.patch(
        f"/Groups/{gid}", {"op": "replace", "value": {"id": gid, "displayName": "Renamed"}}
    )
    assert renamed.status == 204
    okta.patch(
        f"/Groups/{gid}",
        {
            "op": "add",
            "path": "members",
            "value": [{"value": uid, "display": "isabel@example.com"}],
        },
    )
    assert [m["value"] for m in okta.get(f"/Groups/{gid}").json["members"]] == [uid]
    okta.patch(f"/Groups/{gid}", {"op": "remove", "path": f'members[value eq "{uid}"]'})
    assert "members" not in okta.get(f"/Groups/{gid}").json
    assert okta.get(f"/Groups/{gid}").json["displayName"] == "Renamed"
    assert okta.delete(f"/Groups/{gid}").status == 204


def test_entra_provisioning_sequence(np: NulabPass) -> None:
    _org, token = scim_ready_org(np)
    entra = ScimTestClient(np, token)
    boss = entra.create_user("boss").json["id"]
    query = "/Users?filter=userName+eq+%22Test_User_dfeef4c5%40example.com%22"
    assert entra.get(query).json["totalResults"] == 0
    created = entra.post(
        "/Users",
        {
            "schemas": [USER, ENT],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_dfeef4c5@example.com",
            "active": True,
            "emails": [
                {"primary": True, "type": "work", "value": "Test_User_dfeef4c5@example.com"}
            ],
            "meta": {"resourceType": "User"},
            "name": {
                "formatted": "givenName familyName",
                "familyName": "familyName",
                "givenName": "givenName",
            },
            "roles": [],
            ENT: {"employeeNumber": "1234", "department": "Sales"},
        },
    )
    assert created.status == 201
    uid = created.json["id"]
    listed = entra.get(query).json
    assert listed["Resources"][0]["userName"] == "Test_User_dfeef4c5@example.com"
    by_external = entra.get(
        "/Users?filter=externalId+eq+%220a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef%22"
    )
    assert by_external.json["totalResults"] == 1
    changed = entra.patch(
        f"/Users/{uid}",
        {"op": "Replace", "path": "displayName", "value": "Test User"},
        {
            "op": "Add",
            "path": 'emails[type eq "work"].value',
            "value": "test_user_dfeef4c5@example.com",
        },
        {"op": "Replace", "path": "name.familyName", "value": "Updated"},
        {"op": "Add", "path": f"{ENT}:manager", "value": boss},
        {"op": "Replace", "path": f"{ENT}:employeeNumber", "value": "5678"},
        {"op": "replace", "value": {"name.givenName": "Given", "title": "Engineer"}},
    )
    assert changed.status == 200
    doc = changed.json
    assert doc["displayName"] == "Test User"
    assert doc["name"]["familyName"] == "Updated"
    assert doc["name"]["givenName"] == "Given"
    assert doc["title"] == "Engineer"
    assert doc[ENT]["manager"]["value"] == boss
    assert doc[ENT]["employeeNumber"] == "5678"
    assert doc["emails"] == [
        {"value": "test_user_dfeef4c5@example.com", "type": "work", "primary": True}
    ]
    off = entra.patch(f"/Users/{uid}", {"op": "Replace", "path": "active", "value": "False"})
    assert off.json["active"] is False
    assert not np.access.check(uid).allowed
    group = entra.post(
        "/Groups",
        {
            "schemas": [GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Group1DisplayName",
            "meta": {"resourceType": "Group"},
        },
    )
    gid = group.json["id"]
    assert group.json["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    by_name = entra.get(
        "/Groups?filter=displayName+eq+%22Group1DisplayName%22&excludedAttributes=members"
    )
    assert [r["id"] for r in by_name.json["Resources"]] == [gid]
    entra.patch(f"/Groups/{gid}", {"op": "Add", "path": "members", "value": [{"value": uid}]})
    member_check = entra.get(f"/Groups?filter=id+eq+%22{gid}%22+and+members[value+eq+%22{uid}%22]")
    assert member_check.json["totalResults"] == 1
    entra.patch(f"/Groups/{gid}", {"op": "Remove", "path": "members", "value": [{"value": uid}]})
    assert entra.get(member_check_path(gid, uid)).json["totalResults"] == 0
    entra.patch(f"/Groups/{gid}", {"op": "Replace", "path": "displayName", "value": "Renamed"})
    assert entra.get(f"/Groups/{gid}").json["displayName"] == "Renamed"
    assert entra.delete(f"/Users/{uid}").status == 204
    assert entra.get(f"/Users/{uid}").status == 404


def member_check_path(gid: str, uid: str) -> str:
    return f"/Groups?filter=id+eq+%22{gid}%22+and+members[value+eq+%22{uid}%22]"
