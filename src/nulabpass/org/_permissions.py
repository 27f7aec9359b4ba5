"""Who may do what: the one permission table, enforced on every call.

``docs/permissions.md`` is generated from :data:`PERMISSIONS` (a test keeps them equal).
"""

from __future__ import annotations

import enum

from nulabpass.errors import PermissionDenied
from nulabpass.org._model import Membership, Role

__all__ = ["PERMISSIONS", "Grant", "Permission", "permission_table_markdown", "require"]


class Grant(enum.StrEnum):
    """What a membership can hold."""

    ADMIN = "admin"
    PLAN_ADMIN = "plan admin"
    AUDIT_LOG_ADMIN = "audit log admin"
    MEMBER = "member"


class Permission(enum.StrEnum):
    """Protected operations."""

    VIEW_ORGANIZATION = "view the organization, its members and teams"
    MANAGE_ORGANIZATION = "rename the organization, change its settings"
    MANAGE_MEMBERS = "add and remove members, change roles and privileges"
    MANAGE_MANAGED_ACCOUNTS = "create, invite, deactivate, delete and release managed accounts"
    REQUEST_CONVERSIONS = "ask an account's owner to let the organization manage it"
    MANAGE_TEAMS = "create, rename and delete teams, change team members"
    MANAGE_DOMAINS = "add, verify and remove email domains"
    CONFIGURE_SSO = "configure SAML single sign-on: the identity provider and its metadata"
    CHANGE_PLAN = "start a trial, upgrade, cancel or resume the plan"
    READ_AUDIT_LOG = "read and export the audit log"
    MANAGE_SCIM_TOKENS = "create, list, rotate and revoke SCIM provisioning tokens"


PERMISSIONS: dict[Permission, frozenset[Grant]] = {
    Permission.VIEW_ORGANIZATION: frozenset(Grant),
    Permission.MANAGE_ORGANIZATION: frozenset({Grant.ADMIN}),
    Permission.MANAGE_MEMBERS: frozenset({Grant.ADMIN}),
    Permission.MANAGE_MANAGED_ACCOUNTS: frozenset({Grant.ADMIN}),
    Permission.REQUEST_CONVERSIONS: frozenset({Grant.ADMIN}),
    Permission.MANAGE_TEAMS: frozenset({Grant.ADMIN}),
    Permission.MANAGE_DOMAINS: frozenset({Grant.ADMIN}),
    Permission.CONFIGURE_SSO: frozenset({Grant.ADMIN}),
    Permission.CHANGE_PLAN: frozenset({Grant.ADMIN, Grant.PLAN_ADMIN}),
    Permission.READ_AUDIT_LOG: frozenset({Grant.ADMIN, Grant.AUDIT_LOG_ADMIN}),
    Permission.MANAGE_SCIM_TOKENS: frozenset({Grant.ADMIN}),
}


def grants_of(membership: Membership) -> frozenset[Grant]:
    """Everything a membership holds."""
    held = {Grant.MEMBER}
    if membership.role is Role.ADMIN:
        held.add(Grant.ADMIN)
    if membership.plan_admin:
        held.add(Grant.PLAN_ADMIN)
    if membership.audit_log_admin:
        held.add(Grant.AUDIT_LOG_ADMIN)
    return frozenset(held)


def require(membership: Membership | None, permission: Permission, org_id: str) -> None:
    """Raise :class:`PermissionDenied` unless ``membership`` may do ``permission``."""
    allowed = PERMISSIONS[permission]
    if membership is None:
        raise PermissionDenied(
            f"The actor is not a member of organization {org_id}, so it cannot "
            f"{permission.value}.",
            code="permission.not_a_member",
        )
    if not grants_of(membership) & allowed:
        needed = " or ".join(sorted(g.value for g in allowed))
        raise PermissionDenied(
            f"Only a member who is {needed} may {permission.value}; ask one of the "
            "organization's admins.",
            code=f"permission.{permission.name.lower()}",
            details={"needed": needed},
        )


def permission_table_markdown() -> str:
    """The permission table as Markdown, generated for the docs."""
    grants = [Grant.ADMIN, Grant.PLAN_ADMIN, Grant.AUDIT_LOG_ADMIN, Grant.MEMBER]
    lines = [
        "| operation | " + " | ".join(g.value for g in grants) + " |",
        "|---|" + "---|" * len(grants),
    ]
    for permission, allowed in PERMISSIONS.items():
        cells = ["yes" if g in allowed else "no" for g in grants]
        lines.append(f"| {permission.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
