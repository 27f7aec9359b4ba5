"""The PATCH engine (RFC 7644 §3.5.2) on User documents and Group plans, including the
request shapes Microsoft Entra ID and Okta send."""

from __future__ import annotations

from typing import Any

import pytest

from nulabpass.scim import (
    ENTERPRISE_USER,
    USER_RESOURCE,
    ScimError,
    apply_patch,
    parse_patch,
    parse_user,
    plan_group_patch,
)

OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user() -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "acc_1",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": True,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@home.test", "type": "home"},
        ],
        "meta": {"resourceType": "User"},
    }


def patch(doc: dict[str, Any], *ops: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(doc, parse_patch({"schemas": [OP], "Operations": list(ops)}), USER_RESOURCE)


def test_replace_with_a_path_sets_a_sub_attribute() -> None:
    out = patch(user(), {"op": "replace", "path": "name.givenName", "value": "Babs"})
    assert out["name"] == {"givenName": "Babs", "familyName": "Jensen"}


def test_the_original_document_is_not_changed() -> None:
    doc = user()
    patch(doc, {"op": "remove", "path": "emails"})
    assert len(doc["emails"]) == 2


def test_add_to_a_multi_valued_attribute_appends_and_keeps_one_primary() -> None:
    out = patch(
        user(),
        {"op": "add", "path": "emails", "value": [{"value": "b@x.test", "primary": True}]},
    )
    assert [e["value"] for e in out["emails"]] == [
        "bjensen@example.com",
        "babs@home.test",
        "b@x.test",
    ]
    assert [e.get("primary") for e in out["emails"]] == [None, None, True]


def test_replace_of_a_multi_valued_attribute_replaces_every_value() -> None:
    out = patch(user(), {"op": "replace", "path": "emails", "value": [{"value": "n@x.test"}]})
    assert out["emails"] == [{"value": "n@x.test"}]


def test_a_value_filter_path_with_a_sub_attribute_changes_only_matching_values() -> None:
    out = patch(
        user(),
        {"op": "replace", "path": 'emails[type eq "home"].value', "value": "new@home.test"},
    )
    assert [e["value"] for e in out["emails"]] == ["bjensen@example.com", "new@home.test"]


def test_a_filtered_replace_with_no_match_creates_the_value_its_equality_describes() -> None:
    doc = user()
    doc["emails"] = []
    out = patch(doc, {"op": "replace", "path": 'emails[type eq "work"].value', "value": "w@x.t"})
    assert out["emails"] == [{"type": "work", "value": "w@x.t"}]


def test_a_filtered_replace_with_no_match_and_no_equality_is_no_target() -> None:
    with pytest.raises(ScimError) as info:
        patch(user(), {"op": "replace", "path": 'emails[value co "zzz"]', "value": {"x": 1}})
    assert info.value.scim_type == "noTarget"


def test_remove_with_a_value_filter_drops_matching_values() -> None:
    out = patch(user(), {"op": "remove", "path": 'emails[type eq "home"]'})
    assert [e["type"] for e in out["emails"]] == ["work"]


def test_remove_without_a_path_is_no_target() -> None:
    with pytest.raises(ScimError) as info:
        parse_patch({"schemas": [OP], "Operations": [{"op": "remove"}]})
    assert info.value.scim_type == "noTarget"


def test_extension_paths_create_the_extension_object_and_list_its_schema() -> None:
    out = patch(
        user(), {"op": "add", "path": f"{ENTERPRISE_USER}:employeeNumber", "value": "701984"}
    )
    assert out[ENTERPRISE_USER] == {"employeeNumber": "701984"}
    assert ENTERPRISE_USER in out["schemas"]


def test_entra_capitalised_ops_string_booleans_and_dotted_pathless_keys_are_accepted() -> None:
    out = patch(
        user(),
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "value": {"name.familyName": "Smith", "title": "CTO"}},
    )
    parsed = parse_user(out)
    assert parsed.active is False
    assert parsed.profile.family_name == "Smith"
    assert parsed.profile.title == "CTO"


def test_entra_manager_as_a_bare_string_becomes_the_manager_id() -> None:
    out = patch(user(), {"op": "Add", "path": f"{ENTERPRISE_USER}:manager", "value": "acc_boss"})
    assert parse_user(out).profile.manager_id == "acc_boss"


def test_a_pathless_value_may_carry_the_extension_as_an_object() -> None:
    out = patch(user(), {"op": "replace", "value": {ENTERPRISE_USER: {"department": "R&D"}}})
    assert parse_user(out).profile.department == "R&D"


def test_okta_pathless_active_false_deactivates() -> None:
    out = patch(user(), {"op": "replace", "value": {"active": False}})
    assert parse_user(out).active is False


def test_an_explicit_path_to_a_read_only_attribute_is_a_mutability_error() -> None:
    with pytest.raises(ScimError) as info:
        patch(user(), {"op": "replace", "path": "id", "value": "other"})
    assert info.value.scim_type == "mutability"


def test_read_only_attributes_in_a_pathless_value_are_ignored() -> None:
    out = patch(user(), {"op": "replace", "value": {"id": "acc_1", "title": "Boss"}})
    assert out["id"] == "acc_1"
    assert out["title"] == "Boss"


def test_an_unknown_explicit_path_is_invalid_path() -> None:
    with pytest.raises(ScimError) as info:
        patch(user(), {"op": "add", "path": "shoeSize", "value": "9"})
    assert info.value.scim_type == "invalidPath"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"Operations": []},
        {"schemas": ["urn:other"], "Operations": [{"op": "add", "value": {}}]},
        {"Operations": [{"op": "move", "value": {}}]},
        {"Operations": [{"op": "add"}]},
        {"Operations": ["add"]},
    ],
)
def test_malformed_patch_bodies_are_invalid_syntax_or_value(body: object) -> None:
    with pytest.raises(ScimError) as info:
        parse_patch(body)
    assert info.value.scim_type in {"invalidSyntax", "invalidValue"}


def plan(*ops: dict[str, Any]):  # type: ignore[no-untyped-def]
    return plan_group_patch(parse_patch({"schemas": [OP], "Operations": list(ops)}))


def test_adding_members_to_a_group_plans_only_the_new_ids() -> None:
    p = plan({"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]})
    assert p.add == ("a", "b")
    assert not p.remove_all


def test_entra_member_removal_with_a_value_array_plans_removals() -> None:
    p = plan({"op": "Remove", "path": "members", "value": [{"value": "a"}]})
    assert p.remove == ("a",)


def test_okta_filtered_member_removal_plans_removals() -> None:
    p = plan({"op": "remove", "path": 'members[value eq "a" or value eq "b"]'})
    assert p.remove == ("a", "b")


def test_removing_members_without_a_value_removes_all() -> None:
    assert plan({"op": "remove", "path": "members"}).remove_all


def test_okta_rename_carrying_the_id_changes_only_the_name() -> None:
    p = plan({"op": "replace", "value": {"id": "team_1", "displayName": "New name"}})
    assert p.display_name == "New name"
    assert p.add == ()
    assert p.remove == ()


def test_replacing_members_removes_all_then_adds() -> None:
    p = plan({"op": "replace", "path": "members", "value": [{"value": "z"}]})
    assert p.remove_all
    assert p.add == ("z",)


def test_a_member_filter_that_does_not_select_by_id_is_invalid_path() -> None:
    with pytest.raises(ScimError) as info:
        plan({"op": "remove", "path": 'members[display eq "x"]'})
    assert info.value.scim_type == "invalidPath"


def test_the_document_is_copied_unless_patched_in_place() -> None:
    """By default the input is left as it was; ``in_place`` patches the document it is
    given (the service's freshly rendered user) and returns it."""
    given = {"op": "replace", "path": "name.givenName", "value": "B"}
    ops = parse_patch({"schemas": [OP], "Operations": [given]})
    original = user()
    out = apply_patch(original, ops, USER_RESOURCE)
    assert original == user()
    assert out["name"]["givenName"] == "B"
    assert out["name"] is not original["name"]
    same = apply_patch(original, ops, USER_RESOURCE, in_place=True)
    assert same is original
    assert original["name"]["givenName"] == "B"
