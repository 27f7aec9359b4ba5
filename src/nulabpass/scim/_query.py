"""The neutral query object stores compile, and the documents they filter.

A :class:`ScimQuery` carries a canonical filter (see :func:`check_filter`), the sort
attribute and the page. The SQL store compiles it into one indexed statement; the memory
store evaluates it over the organization's rows with :func:`matches`, on the documents
:func:`user_document` and :func:`group_document` build, so both stores answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from nulabpass.org._model import Account, AccountStatus, Team
from nulabpass.scim._filter import AttrPath, Filter
from nulabpass.scim._mapping import UserView, render_group, render_user
from nulabpass.scim._model import ScimGroupRow, ScimUserRow
from nulabpass.scim._schema import ResourceSchema

__all__ = [
    "ScimPage",
    "ScimQuery",
    "group_document",
    "group_etag",
    "sort_value",
    "user_document",
    "user_etag",
]

#: Documents filtered by the memory store carry this base URL; filters never see it.
_INTERNAL_BASE = "scim:"


@attrs.frozen(slots=True)
class ScimQuery:
    """One page of a filtered, sorted list of an organization's resources.

    ``start_index`` is 1-based as in SCIM; ``count`` 0 asks only for the total.
    """

    org_id: str
    filter: Filter | None = None
    sort_by: AttrPath | None = None
    descending: bool = False
    start_index: int = 1
    count: int = 100


@attrs.frozen(slots=True)
class ScimPage:
    """``total`` matches, and the ids of the requested page in order."""

    total: int
    ids: tuple[str, ...]


def user_etag(account: Account, row: ScimUserRow) -> str:
    """The weak ETag of a User: both row versions, so any change moves it."""
    return f'W/"{account.version}.{row.version}"'


def group_etag(team: Team) -> str:
    """The weak ETag of a Group."""
    return f'W/"{team.version}"'


def user_view(account: Account, row: ScimUserRow) -> UserView:
    """The account fields a User document shows."""
    return UserView(
        id=account.id,
        active=False if account.status is AccountStatus.DEACTIVATED else row.profile.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=user_etag(account, row),
    )


def user_document(account: Account, row: ScimUserRow) -> dict[str, Any]:
    """A User document without groups, as filters see it: ``active`` is always the
    account's state (an unassigned ``active`` means active)."""
    doc = render_user(user_view(account, row), row.profile, _INTERNAL_BASE)
    doc["active"] = account.status is not AccountStatus.DEACTIVATED
    return doc


def group_document(team: Team, row: ScimGroupRow | None) -> dict[str, Any]:
    """A Group document without members, as filters see it (member filters are
    evaluated by the store against its membership index)."""
    return render_group(
        group_id=team.id,
        display_name=team.name,
        external_id=row.external_id if row else None,
        members=None,
        created_at=team.created_at,
        updated_at=team.updated_at,
        version=group_etag(team),
        base_url=_INTERNAL_BASE,
    )


def sort_value(doc: Mapping[str, Any], path: AttrPath, resource: ResourceSchema) -> Any:
    """The value ``doc`` sorts by; case-insensitive strings sort by their folded form."""
    scope: Any = doc
    if path.urn is not None:
        scope = doc.get(path.urn) or {}
    schema_attr = resource.resolve(path.urn, path.attr)[1]
    value = scope.get(path.attr) if isinstance(scope, Mapping) else None
    leaf = schema_attr
    if path.sub is not None:
        value = value.get(path.sub) if isinstance(value, Mapping) else None
        leaf = schema_attr.sub(path.sub) if schema_attr else None
    if isinstance(value, str) and leaf is not None and leaf.type == "dateTime":
        from nulabpass.scim._evaluate import parse_time

        return parse_time(value)
    if isinstance(value, str) and leaf is not None and not leaf.case_exact:
        return value.casefold()
    return value
