"""User and Group mapping: validation, identity-provider tolerance, rendering,
projection and the filter checks made against the schemas."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nulabpass.scim import (
    ENTERPRISE_USER,
    USER_RESOURCE,
    ScimError,
    UserView,
    check_filter,
    check_sort,
    matches,
    parse_filter,
    parse_group,
    parse_user,
    project,
    render_user,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_user_document_maps_core_and_enterprise_attributes() -> None:
    parsed = parse_user(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
            "UserName": "Bjensen@Example.com",
            "externalId": "00u1",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": {"value": "bjensen@example.com", "type": "work", "primary": "True"},
            "active": "false",
            ENTERPRISE_USER: {"employeeNumber": 42, "manager": {"value": "acc_2"}},
        }
    )
    assert parsed.profile.user_name == "Bjensen@Example.com"
    assert parsed.profile.given_name == "Barbara"
    assert parsed.profile.emails[0].primary is True
    assert parsed.profile.employee_number == "42"
    assert parsed.profile.manager_id == "acc_2"
    assert parsed.active is False
    assert parsed.profile.active is False


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {},
        {"userName": ""},
        {"userName": 5},
        {"userName": "a@b.c", "active": "maybe"},
        {"userName": "a@b.c", "name": "Barbara"},
        {"userName": "a@b.c", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]},
    ],
)
def test_invalid_user_documents_are_refused_with_a_scim_type(doc: object) -> None:
    with pytest.raises(ScimError) as info:
        parse_user(doc)
    assert info.value.scim_type in {"invalidValue", "invalidSyntax"}


def test_a_group_requires_a_display_name_and_collects_member_ids() -> None:
    group = parse_group({"displayName": " Eng ", "members": [{"value": "a"}, {"value": "a"}]})
    assert group.display_name == "Eng"
    assert group.members == ("a",)
    with pytest.raises(ScimError):
        parse_group({"members": []})


def rendered() -> dict[str, object]:
    profile = parse_user(
        {
            "userName": "bjensen@example.com",
            "title": "CEO",
            "displayName": "Barbara",
            "emails": [{"value": "bjensen@example.com", "type": "work"}],
            ENTERPRISE_USER: {"department": "Sales"},
        }
    ).profile
    view = UserView("acc_1", True, T0, T0, 'W/"1"')
    return render_user(view, profile, "https://sp.test/scim/v2", [("team_1", "Eng")])


def test_a_rendered_user_carries_meta_groups_and_the_extension() -> None:
    doc = rendered()
    assert doc["meta"] == {
        "resourceType": "User",
        "created": "2026-01-01T00:00:00.000000Z",
        "lastModified": "2026-01-01T00:00:00.000000Z",
        "location": "https://sp.test/scim/v2/Users/acc_1",
        "version": 'W/"1"',
    }
    assert doc["groups"] == [
        {
            "value": "team_1",
            "$ref": "https://sp.test/scim/v2/Groups/team_1",
            "display": "Eng",
            "type": "direct",
        }
    ]
    assert doc[ENTERPRISE_USER] == {"department": "Sales"}


def test_attributes_keep_only_what_is_asked_plus_what_is_always_returned() -> None:
    doc = project(
        rendered(), USER_RESOURCE, attributes=["userName", f"{ENTERPRISE_USER}:department"]
    )
    assert set(doc) == {"schemas", "id", "userName", ENTERPRISE_USER}


def test_excluded_attributes_drop_what_is_named_but_never_the_id() -> None:
    doc = project(rendered(), USER_RESOURCE, excluded=["groups", "id", "emails.type"])
    assert "groups" not in doc
    assert doc["id"] == "acc_1"
    assert doc["emails"] == [{"value": "bjensen@example.com", "primary": False}]


def test_filters_compare_case_insensitively_unless_the_attribute_is_case_exact() -> None:
    doc = rendered()
    assert matches(
        check_filter(parse_filter('USERNAME eq "BJENSEN@example.com"'), USER_RESOURCE),
        doc,
        USER_RESOURCE,
    )
    assert not matches(
        check_filter(parse_filter('id eq "ACC_1"'), USER_RESOURCE), doc, USER_RESOURCE
    )
    assert matches(check_filter(parse_filter('id eq "acc_1"'), USER_RESOURCE), doc, USER_RESOURCE)


def test_filters_on_attributes_that_cannot_be_filtered_are_invalid_filter() -> None:
    for text in ('groups.value eq "x"', 'shoeSize eq "9"', 'name eq "x"', 'active eq "x"'):
        with pytest.raises(ScimError) as info:
            check_filter(parse_filter(text), USER_RESOURCE)
        assert info.value.scim_type == "invalidFilter"


def test_sort_by_names_a_single_valued_attribute() -> None:
    assert check_sort("userName", USER_RESOURCE).attr == "userName"
    with pytest.raises(ScimError):
        check_sort("emails", USER_RESOURCE)
