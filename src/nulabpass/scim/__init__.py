"""SCIM 2.0 provisioning (RFC 7643 / RFC 7644): the pure core.

- :func:`parse_filter` / :func:`format_filter` / :func:`parse_path`: the filter grammar
  of RFC 7644 §3.4.2.2 and PATCH paths, to and from a tree of frozen nodes;
- :func:`check_filter` / :func:`matches`: filters resolved against a resource type and
  evaluated against documents;
- :func:`parse_patch` / :func:`apply_patch` / :func:`plan_group_patch`: the PATCH engine;
- :func:`parse_user` / :func:`render_user` / :func:`parse_group` / :func:`render_group`:
  resource mapping;
- :class:`ScimError`: every refusal, with ``status`` and ``scimType``.
"""

from __future__ import annotations

from nulabpass.scim._errors import ScimError
from nulabpass.scim._evaluate import check_filter, check_sort, matches
from nulabpass.scim._filter import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
    format_filter,
    format_path,
    parse_filter,
    parse_path,
)
from nulabpass.scim._mapping import (
    GroupInput,
    UserInput,
    UserView,
    parse_group,
    parse_user,
    project,
    render_group,
    render_user,
)
from nulabpass.scim._model import (
    ScimAddress,
    ScimEmail,
    ScimGroupRow,
    ScimProfile,
    ScimToken,
    ScimTombstone,
    ScimUserRow,
    ScimValue,
)
from nulabpass.scim._patch import (
    GroupPlan,
    PatchOperation,
    apply_patch,
    parse_patch,
    plan_group_patch,
)
from nulabpass.scim._schema import (
    ENTERPRISE_USER,
    GROUP,
    GROUP_RESOURCE,
    USER,
    USER_RESOURCE,
    Attribute,
    ResourceSchema,
    Schema,
)

__all__ = [
    "ENTERPRISE_USER",
    "GROUP",
    "GROUP_RESOURCE",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "USER",
    "USER_RESOURCE",
    "And",
    "AttrPath",
    "Attribute",
    "Compare",
    "Filter",
    "GroupInput",
    "GroupPlan",
    "Not",
    "Or",
    "PatchOperation",
    "PatchPath",
    "Present",
    "ResourceSchema",
    "Schema",
    "ScimAddress",
    "ScimEmail",
    "ScimError",
    "ScimGroupRow",
    "ScimProfile",
    "ScimToken",
    "ScimTombstone",
    "ScimUserRow",
    "ScimValue",
    "UserInput",
    "UserView",
    "ValuePath",
    "apply_patch",
    "check_filter",
    "check_sort",
    "format_filter",
    "format_path",
    "matches",
    "parse_filter",
    "parse_group",
    "parse_patch",
    "parse_path",
    "parse_user",
    "plan_group_patch",
    "project",
    "render_group",
    "render_user",
]
