"""The filter grammar of RFC 7644 §3.4.2.2 and PATCH paths of §3.5.2."""

from __future__ import annotations

import pytest

from nulabpass.scim import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    AttrPath,
    Compare,
    Not,
    Or,
    PatchPath,
    Present,
    ScimError,
    ValuePath,
    format_filter,
    format_path,
    parse_filter,
    parse_path,
)

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

# Examples of RFC 7644 §3.4.2.2, Figure 3 ("Filter Examples") and §3.5.2.
RFC_EXAMPLES = [
    'userName eq "bjensen"',
    'name.familyName co "O\'Malley"',
    'userName sw "J"',
    'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"',
    "title pr",
    'meta.lastModified gt "2011-05-13T04:42:34Z"',
    'meta.lastModified ge "2011-05-13T04:42:34Z"',
    'meta.lastModified lt "2011-05-13T04:42:34Z"',
    'meta.lastModified le "2011-05-13T04:42:34Z"',
    'title pr and userType eq "Employee"',
    'title pr or userType eq "Intern"',
    'schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"',
    'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
    'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
    'userType eq "Employee" and (emails.type eq "work")',
    'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
    'emails[type eq "work" and value co "@example.com"] or '
    'ims[type eq "xmpp" and value co "@foo.com"]',
]


@pytest.mark.parametrize("text", RFC_EXAMPLES)
def test_every_filter_example_of_the_rfc_parses_and_round_trips(text: str) -> None:
    node = parse_filter(text)
    assert parse_filter(format_filter(node)) == node


def test_a_comparison_keeps_path_operator_and_value() -> None:
    assert parse_filter('userName EQ "bjensen"') == Compare(AttrPath("userName"), "eq", "bjensen")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a eq true", True),
        ("a eq False", False),
        ("a eq null", None),
        ("a gt 10", 10),
        ("a le -2.5", -2.5),
        ("a lt 1e3", 1000.0),
        (r'a eq "quote \" and \u00e9"', 'quote " and é'),
    ],
)
def test_values_are_json_literals(text: str, value: object) -> None:
    node = parse_filter(text)
    assert isinstance(node, Compare)
    assert node.value == value
    assert type(node.value) is type(value)


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    a, b, c = (Present(AttrPath(n)) for n in "abc")
    assert parse_filter("a pr or b pr and c pr") == Or(a, And(b, c))
    assert parse_filter("(a pr or b pr) and c pr") == And(Or(a, b), c)
    assert parse_filter("not (a pr) and b pr") == And(Not(a), b)


def test_a_value_path_filters_the_values_of_a_multi_valued_attribute() -> None:
    node = parse_filter('emails[type eq "work" and value co "@example.com"]')
    assert node == ValuePath(
        AttrPath("emails"),
        And(
            Compare(AttrPath("type"), "eq", "work"),
            Compare(AttrPath("value"), "co", "@example.com"),
        ),
    )


def test_an_extension_urn_prefixes_the_attribute_and_keeps_its_sub_attribute() -> None:
    node = parse_filter(f'{ENT}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"')
    assert isinstance(node, Compare)
    assert node.path == AttrPath("manager", "value", ENT)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "userName",
        "userName eq",
        'userName xx "a"',
        'userName eq "unterminated',
        "(userName pr",
        "userName pr)",
        'emails[type eq "work"',
        'emails[type eq "work" and other[value pr]]',
        'name.givenName[value eq "x"]',
        "a co true",
        "a gt null",
        "a sw 5",
        "a eq 1e999",
        r'a eq "\q"',
        "not a pr",
        "1abc pr",
        "urn:bad pr",
        "a..b pr",
        'userName eq "x" extra',
        "a pr and",
        "and pr pr",
    ],
)
def test_malformed_filters_raise_invalid_filter(text: str) -> None:
    with pytest.raises(ScimError) as info:
        parse_filter(text)
    assert info.value.status == 400
    assert info.value.scim_type == "invalidFilter"


def test_a_filter_longer_than_the_limit_is_refused_before_parsing() -> None:
    text = "a pr or " * (MAX_FILTER_LENGTH // 8) + "a pr"
    with pytest.raises(ScimError, match="characters long"):
        parse_filter(text)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    ok = "(" * MAX_FILTER_DEPTH + "a pr" + ")" * MAX_FILTER_DEPTH
    assert parse_filter(ok) == Present(AttrPath("a"))
    deep = "(" * (MAX_FILTER_DEPTH + 1) + "a pr" + ")" * (MAX_FILTER_DEPTH + 1)
    with pytest.raises(ScimError, match="deeper"):
        parse_filter(deep)


def test_a_long_chain_of_conjunctions_is_not_a_nesting_problem() -> None:
    text = " and ".join(f"a{i} pr" for i in range(150))
    assert parse_filter(format_filter(parse_filter(text))) == parse_filter(text)


def test_patch_paths_cover_attributes_sub_attributes_filters_and_extensions() -> None:
    assert parse_path("name.givenName") == PatchPath(AttrPath("name", "givenName"))
    assert parse_path('members[value eq "2819c223"]') == PatchPath(
        AttrPath("members"), Compare(AttrPath("value"), "eq", "2819c223")
    )
    assert parse_path('emails[type eq "work"].value') == PatchPath(
        AttrPath("emails"), Compare(AttrPath("type"), "eq", "work"), "value"
    )
    assert parse_path(f"{ENT}:employeeNumber") == PatchPath(AttrPath("employeeNumber", None, ENT))
    for text in ("name.givenName", 'emails[type eq "work"].value', f"{ENT}:manager"):
        assert format_path(parse_path(text)) == text


@pytest.mark.parametrize(
    "text", ["", "[x]", 'emails[type eq "work"]value', "emails[type eq]", "a.b.c", "a[b pr].c d"]
)
def test_malformed_patch_paths_raise_invalid_path(text: str) -> None:
    with pytest.raises(ScimError) as info:
        parse_path(text)
    assert info.value.scim_type == "invalidPath"
