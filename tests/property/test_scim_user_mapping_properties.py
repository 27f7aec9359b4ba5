"""A User rendered from what nulabpass stored validates back to the very same profile,
and a PATCH that only sets ``active`` gives the same user on the short path as on the
general one (render, patch, validate).

The short path (``only_active``) leans on the first property, so it is checked over
every attribute the mapping knows, with the edge values clients send: integers for
strings, empty strings, manager as a bare string, ``primary`` as a string, addresses
with parts missing, base64 certificates.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import attrs
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nulabpass.scim._errors import ScimError
from nulabpass.scim._mapping import UserInput, UserView, parse_user, render_user
from nulabpass.scim._patch import apply_patch, only_active, parse_patch
from nulabpass.scim._schema import USER_RESOURCE

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "Ünïcode 名前", "a@example.com", "  padded  "]),
    st.integers(min_value=-5, max_value=10**6),
)
maybe_text = st.one_of(st.none(), text)
flag = st.one_of(st.none(), st.booleans(), st.sampled_from(["true", "False", " TRUE "]))


def _entry(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


emails = st.lists(
    _entry(
        {
            "value": st.one_of(st.emails(), st.just("")),
            "type": maybe_text,
            "display": maybe_text,
            "primary": st.just(False),
        }
    ),
    max_size=3,
)
values = st.lists(
    _entry({"value": st.text(min_size=1, max_size=8), "type": maybe_text, "display": text}),
    max_size=3,
)
certificates = st.lists(
    st.fixed_dictionaries(
        {"value": st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode())}
    ),
    max_size=2,
)
addresses = st.lists(
    _entry(
        {
            "formatted": maybe_text,
            "streetAddress": text,
            "locality": text,
            "region": text,
            "postalCode": text,
            "country": text,
            "type": text,
            "primary": st.just(False),
        }
    ),
    max_size=3,
)
name = _entry(
    {
        "formatted": maybe_text,
        "familyName": text,
        "givenName": text,
        "middleName": text,
        "honorificPrefix": text,
        "honorificSuffix": text,
    }
)
enterprise = _entry(
    {
        "employeeNumber": text,
        "costCenter": text,
        "organization": text,
        "division": text,
        "department": maybe_text,
        "manager": st.one_of(
            st.text(max_size=10), st.fixed_dictionaries({"value": st.text(max_size=10)})
        ),
    }
)
documents = st.fixed_dictionaries(
    {"userName": st.emails()},
    optional={
        "schemas": st.just([USER, ENT]),
        "externalId": maybe_text,
        "name": name,
        "displayName": text,
        "nickName": text,
        "profileUrl": text,
        "title": maybe_text,
        "userType": text,
        "preferredLanguage": text,
        "locale": text,
        "timezone": text,
        "active": flag,
        "emails": emails,
        "phoneNumbers": values,
        "ims": values,
        "photos": values,
        "addresses": addresses,
        "entitlements": values,
        "roles": values,
        "x509Certificates": certificates,
        ENT: enterprise,
    },
)


def _parsed(doc: dict[str, Any]) -> UserInput:
    try:
        return parse_user(doc)
    except ScimError:
        assume(False)
        raise


def _render(inp: UserInput, *, deactivated: bool = False) -> dict[str, Any]:
    active = False if deactivated else inp.profile.active
    view = UserView(id="acc_1", active=active, created_at=T, updated_at=T, version='W/"1.1"')
    return render_user(view, inp.profile, "https://sp.test/scim/v2", [("team_1", "Eng")])


@settings(max_examples=300)
@given(documents)
def test_a_stored_user_rendered_validates_back_to_the_same_profile(doc: dict[str, Any]) -> None:
    stored = _parsed(doc)
    assert parse_user(_render(stored)) == stored


active_value = st.one_of(st.booleans(), st.sampled_from(["true", "False", " TRUE ", "fAlSe"]))
active_op = st.one_of(
    st.builds(
        lambda op, attr, v: {"op": op, "path": attr, "value": v},
        st.sampled_from(["add", "replace", "Replace", "ADD"]),
        st.sampled_from(["active", "Active", "ACTIVE"]),
        active_value,
    ),
    st.builds(
        lambda op, key, v: {"op": op, "value": {key: v}},
        st.sampled_from(["replace", "Replace", "add"]),
        st.sampled_from(["active", "Active"]),
        active_value,
    ),
)


@settings(max_examples=300)
@given(documents, st.lists(active_op, min_size=1, max_size=3), st.booleans())
def test_setting_active_alone_takes_the_short_path_to_the_same_user(
    doc: dict[str, Any], operations: list[dict[str, Any]], deactivated: bool
) -> None:
    stored = _parsed(doc)
    ops = parse_patch({"schemas": [PATCH_OP], "Operations": operations})
    active = only_active(ops)
    assert active is not None
    general = parse_user(apply_patch(_render(stored, deactivated=deactivated), ops, USER_RESOURCE))
    assert UserInput(attrs.evolve(stored.profile, active=active)) == general


def test_other_patches_take_the_general_path() -> None:
    """Anything but a plain ``active`` set is left to the general path, which also
    gives the errors (a value that is not a boolean, say)."""
    declined = [
        [{"op": "replace", "path": "active", "value": "yes"}],
        [{"op": "replace", "path": "active", "value": 0}],
        [{"op": "remove", "path": "active"}],
        [{"op": "replace", "value": {"active": False, "title": "x"}}],
        [{"op": "replace", "value": {USER: {"active": False}}}],
        [{"op": "replace", "path": f"{USER}:active", "value": False}],
        [
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": "title", "value": "x"},
        ],
        [{"op": "replace", "path": "title", "value": "x"}],
    ]
    for operations in declined:
        ops = parse_patch({"schemas": [PATCH_OP], "Operations": operations})
        assert only_active(ops) is None, operations
    ops = parse_patch(
        {
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "path": "active", "value": False},
                {"op": "Replace", "value": {"active": "True"}},
            ],
        }
    )
    assert only_active(ops) is True
