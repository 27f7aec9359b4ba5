"""The whole RFC 7643 §4.1 User schema (but ``password``) through HTTP on every store:
``profileUrl`` and the multi-valued ``phoneNumbers``, ``ims``, ``photos``, ``addresses``,
``entitlements``, ``roles`` and ``x509Certificates`` are stored, returned, patched in the
shapes identity providers send, described by ``/Schemas``, and refused by filters."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import pytest

from nulabpass.org._model import Role
from nulabpass.web import ScimTestClient as ScimHttp

from .conftest import World

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CERT = base64.b64encode(b"0\x82\x01\x0a" + bytes(range(40))).decode()

FULL: dict[str, Any] = {
    "profileUrl": "https://profiles.example.com/ines",
    "phoneNumbers": [
        {"value": "+81 3 1234 5678", "type": "work", "primary": True},
        {"value": "+81 90 1111 2222", "type": "mobile", "display": "mobile"},
    ],
    "ims": [{"value": "ines@xmpp.example.com", "type": "xmpp"}],
    "photos": [{"value": "https://photos.example.com/ines.jpg", "type": "photo"}],
    "addresses": [
        {
            "streetAddress": "1-2-3 Shibuya",
            "locality": "Shibuya-ku",
            "region": "Tokyo",
            "postalCode": "150-0002",
            "country": "JP",
            "type": "work",
            "primary": True,
        }
    ],
    "entitlements": [{"value": "beta-features", "display": "Beta"}],
    "roles": [{"value": "auditor", "primary": True}],
    "x509Certificates": [{"value": CERT, "display": "laptop"}],
}


@pytest.fixture
def scim(world: World) -> ScimHttp:
    _token, secret = world.np.scim.tokens.create(world.admin, world.org.id, "Okta")
    return ScimHttp(world.np, secret)


def _subset(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> bool:
    return len(expected) == len(actual) and all(
        all(a.get(k) == v for k, v in e.items()) for e, a in zip(expected, actual, strict=True)
    )


def test_every_user_attribute_is_stored_and_returned(scim: ScimHttp) -> None:
    created = scim.create_user("ines", **FULL)
    assert created.status == 201
    fetched = scim.get(f"/Users/{created.json['id']}").json
    for doc in (created.json, fetched):
        assert doc["profileUrl"] == FULL["profileUrl"]
        for name, values in FULL.items():
            if name != "profileUrl":
                assert _subset(values, doc[name]), name
    query = {"filter": 'profileUrl sw "https://profiles"', "attributes": "phoneNumbers.value"}
    found = scim.get("/Users?" + urlencode(query)).json
    assert found["totalResults"] == 1
    assert found["Resources"][0]["phoneNumbers"] == [
        {"value": "+81 3 1234 5678"},
        {"value": "+81 90 1111 2222"},
    ]


def test_put_replaces_and_removes_the_multi_valued_attributes(scim: ScimHttp) -> None:
    created = scim.create_user("ines", **FULL).json
    path = f"/Users/{created['id']}"
    body = {k: v for k, v in created.items() if k not in {"id", "meta", "groups", *FULL}}
    body["phoneNumbers"] = [{"value": "+33 1 00 00 00 00", "type": "home"}]
    replaced = scim.put(path, body)
    assert replaced.status == 200
    assert replaced.json["phoneNumbers"] == [
        {"value": "+33 1 00 00 00 00", "type": "home", "primary": False}
    ]
    for name in FULL:
        if name != "phoneNumbers":
            assert name not in replaced.json
            assert name not in scim.get(path).json


def test_entra_patches_phone_numbers_and_addresses_through_value_filters(
    scim: ScimHttp,
) -> None:
    uid = scim.create_user("ines").json["id"]
    reply = scim.patch(
        f"/Users/{uid}",
        {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": "+81 3 0000 0001"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+81 90 0000"},
        {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Osaka"},
        {"op": "Add", "path": 'addresses[type eq "work"].country', "value": "JP"},
    )
    assert reply.status == 200, reply.json
    assert reply.json["phoneNumbers"] == [
        {"value": "+81 3 0000 0001", "type": "work", "primary": False},
        {"value": "+81 90 0000", "type": "mobile", "primary": False},
    ]
    assert reply.json["addresses"] == [
        {"locality": "Osaka", "country": "JP", "type": "work", "primary": False}
    ]
    again = scim.patch(
        f"/Users/{uid}",
        {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+81 3 9"},
        {"op": "Remove", "path": 'phoneNumbers[type eq "mobile"]'},
    )
    assert [p["value"] for p in again.json["phoneNumbers"]] == ["+81 3 9"]


def test_patch_adds_and_removes_roles_and_entitlements(scim: ScimHttp) -> None:
    uid = scim.create_user("ines").json["id"]
    added = scim.patch(
        f"/Users/{uid}",
        {"op": "add", "path": "roles", "value": [{"value": "auditor"}, {"value": "ops"}]},
        {"op": "add", "path": "entitlements", "value": [{"value": "beta"}]},
    )
    assert [r["value"] for r in added.json["roles"]] == ["auditor", "ops"]
    removed = scim.patch(
        f"/Users/{uid}",
        {"op": "remove", "path": 'roles[value eq "ops"]'},
        {"op": "remove", "path": "entitlements"},
    )
    assert [r["value"] for r in removed.json["roles"]] == ["auditor"]
    assert "entitlements" not in removed.json


@pytest.mark.parametrize(
    "text",
    [
        'phoneNumbers[type eq "work"]',
        'phoneNumbers.value eq "+81"',
        'phoneNumbers co "81"',
        "addresses.locality pr",
        'roles[value eq "admin"]',
        'entitlements.value eq "beta"',
        "ims pr",
        'photos.value sw "https"',
        "x509Certificates pr",
    ],
)
def test_filters_on_the_json_stored_attributes_are_invalid_filters(
    scim: ScimHttp, text: str
) -> None:
    scim.create_user("ines", **FULL)
    reply = scim.get("/Users?" + urlencode({"filter": text}))
    assert reply.status == 400
    assert reply.json["scimType"] == "invalidFilter"
    assert scim.get("/Users?sortBy=phoneNumbers.value").status == 400


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({"x509Certificates": [{"value": "not base64!"}]}, "base64"),
        ({"phoneNumbers": [{"type": "work"}]}, "needs a value"),
        (
            {"roles": [{"value": "a", "primary": True}, {"value": "b", "primary": "True"}]},
            "primary",
        ),
        ({"ims": [{"value": f"im{i}"} for i in range(21)]}, "more than 20"),
        (
            {"emails": [{"value": f"ines{i}@example.com", "type": "other"} for i in range(21)]},
            "more than 20",
        ),
        ({"photos": "https://photos.example.com/x.jpg"}, "list of objects"),
        ({"profileUrl": {"value": "x"}}, "string"),
    ],
)
def test_malformed_values_are_invalid_values_and_change_nothing(
    scim: ScimHttp, extra: dict[str, Any], detail: str
) -> None:
    reply = scim.create_user("ines", **extra)
    assert reply.status == 400
    assert reply.json["scimType"] == "invalidValue"
    assert detail in reply.json["detail"]
    assert scim.get("/Users").json["totalResults"] == 0


def test_schemas_describe_the_attributes_and_no_password(scim: ScimHttp) -> None:
    schema = scim.get(f"/Schemas/{USER}").json
    names = [a["name"] for a in schema["attributes"]]
    for name in (*FULL, "nickName", "userType", "emails", "groups"):
        assert name in names
    assert "password" not in names
    by_name = {a["name"]: a for a in schema["attributes"]}
    assert by_name["profileUrl"]["type"] == "reference"
    assert by_name["profileUrl"]["referenceTypes"] == ["external"]
    cert_value = by_name["x509Certificates"]["subAttributes"][0]
    assert (cert_value["name"], cert_value["type"]) == ("value", "binary")
    address_subs = [s["name"] for s in by_name["addresses"]["subAttributes"]]
    assert address_subs == [
        "formatted",
        "streetAddress",
        "locality",
        "region",
        "postalCode",
        "country",
        "type",
        "primary",
    ]


def test_a_password_sent_by_an_identity_provider_is_ignored_and_never_stored(
    world: World, scim: ScimHttp
) -> None:
    created = scim.create_user("ines", password="hunter2-secret")
    assert created.status == 201
    assert "password" not in created.json
    with world.np.store.transaction() as uow:
        row = uow.scim.get_user(world.org.id, created.json["id"])
    assert "hunter2" not in repr(row)


# -- role sync from roles -----------------------------------------------------------------


def test_with_role_sync_a_role_valued_admin_makes_an_admin(world: World, scim: ScimHttp) -> None:
    world.np.orgs.update_settings(world.admin, world.org.id, scim_role_sync=True)
    created = scim.create_user(
        "root", roles=[{"value": "Admin", "primary": True, "type": "nulabpass"}]
    ).json
    assert world.np.members.get(world.org.id, created["id"]).role is Role.ADMIN
    path = f"/Users/{created['id']}"
    demoted = scim.patch(path, {"op": "remove", "path": 'roles[value eq "Admin"]'})
    assert demoted.status == 200
    assert world.np.members.get(world.org.id, created["id"]).role is Role.MEMBER
    promoted = scim.patch(path, {"op": "add", "path": "roles", "value": [{"value": "admin"}]})
    assert promoted.status == 200
    membership = world.np.members.get(world.org.id, created["id"])
    assert membership.role is Role.ADMIN
    assert not membership.plan_admin
    assert not membership.audit_log_admin


def test_with_role_sync_other_roles_make_a_member(world: World, scim: ScimHttp) -> None:
    world.np.orgs.update_settings(world.admin, world.org.id, scim_role_sync=True)
    created = scim.create_user("plain", roles=[{"value": "administrator"}]).json
    assert world.np.members.get(world.org.id, created["id"]).role is Role.MEMBER


def test_without_role_sync_roles_grant_nothing(world: World, scim: ScimHttp) -> None:
    created = scim.create_user("root", roles=[{"value": "admin", "primary": True}]).json
    assert world.np.members.get(world.org.id, created["id"]).role is Role.MEMBER
    assert created["roles"] == [{"value": "admin", "primary": True}]
