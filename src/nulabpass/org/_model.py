"""Domain entities of the identity model: accounts, organizations, memberships, teams.

Entities are frozen attrs classes: a change produces a new value (``attrs.evolve``) that
a repository writes with an optimistic version check. Times are aware UTC datetimes.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

__all__ = [
    "Account",
    "AccountStatus",
    "ConversionRequest",
    "ConversionStatus",
    "Domain",
    "DomainStatus",
    "Invitation",
    "InvitationStatus",
    "Membership",
    "OrgSettings",
    "Organization",
    "Role",
    "Team",
    "TeamMember",
]


class Role(enum.StrEnum):
    """A member's role in an organization."""

    ADMIN = "admin"
    MEMBER = "member"


class AccountStatus(enum.StrEnum):
    """Lifecycle of an account.

    ``invited`` exists only for managed accounts whose invitation has not been accepted;
    such an account cannot sign in yet.
    """

    INVITED = "invited"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


@attrs.frozen(slots=True)
class Account:
    """One person, global to the host: one account, one email.

    ``managed_by`` names the organization that manages the account, or is ``None`` for a
    non-managed account. ``email`` is normalised (see :func:`normalize_email`).
    """

    id: str
    email: str
    display_name: str
    language: str
    timezone: str
    status: AccountStatus
    managed_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @property
    def is_managed(self) -> bool:
        """Whether an organization manages this account."""
        return self.managed_by is not None


@attrs.frozen(slots=True)
class OrgSettings:
    """Per-organization settings.

    ``break_glass_requires_admin``: when true, only an admin (not a mere plan admin)
    counts as the organization's break-glass account.

    ``scim_role_sync``: when true, SCIM provisioning sets a managed member's role (admin or
    member) from the SCIM User; it never touches plan admin or audit log admin.
    ``scim_default_team_id``: the team that users created through SCIM join, if any.
    """

    break_glass_requires_admin: bool = False
    scim_role_sync: bool = False
    scim_default_team_id: str | None = None


@attrs.frozen(slots=True)
class Organization:
    """A customer organization.

    ``saml_configured_at`` records when SAML SSO became usable; it is one half of the
    precondition for managed accounts (the other is a verified email domain).
    """

    id: str
    name: str
    settings: OrgSettings
    created_at: datetime
    updated_at: datetime
    saml_configured_at: datetime | None = None
    version: int = 1


@attrs.frozen(slots=True)
class Membership:
    """Joins an account to an organization with a role and privileges."""

    org_id: str
    account_id: str
    role: Role
    plan_admin: bool
    audit_log_admin: bool
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @property
    def can_break_glass(self) -> bool:
        """Whether this membership's privileges could let its holder fix SSO."""
        return self.role is Role.ADMIN or self.plan_admin


@attrs.frozen(slots=True)
class Team:
    """A named group of members inside one organization."""

    id: str
    org_id: str
    name: str
    created_at: datetime
    updated_at: datetime
    version: int = 1


@attrs.frozen(slots=True)
class TeamMember:
    """One account in one team."""

    team_id: str
    account_id: str
    added_at: datetime


class InvitationStatus(enum.StrEnum):
    """Lifecycle of an invitation to a managed account."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"


@attrs.frozen(slots=True)
class Invitation:
    """An email invitation to activate a managed account.

    Only ``token_hash`` (SHA-256 of the token) is stored; the token itself is derived
    when the email is sent and shown to nobody else.
    """

    id: str
    org_id: str
    account_id: str
    team_id: str | None
    token_hash: str
    nonce: str
    status: InvitationStatus
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    version: int = 1


class ConversionStatus(enum.StrEnum):
    """Lifecycle of a request to turn a non-managed account into a managed one."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"


@attrs.frozen(slots=True)
class ConversionRequest:
    """An organization's request, sent by email, to manage an existing account."""

    id: str
    org_id: str
    account_id: str
    token_hash: str
    nonce: str
    status: ConversionStatus
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    version: int = 1


class DomainStatus(enum.StrEnum):
    """Verification state of an organization's email domain."""

    PENDING = "pending"
    VERIFIED = "verified"
    UNVERIFIED = "unverified"


@attrs.frozen(slots=True)
class Domain:
    """An email domain claimed by an organization.

    Several organizations may verify the same domain; an account is still managed by one
    organization only.
    """

    id: str
    org_id: str
    name: str
    status: DomainStatus
    include_subdomains: bool
    created_at: datetime
    updated_at: datetime
    verified_at: datetime | None = None
    version: int = 1

    def covers(self, email_domain: str) -> bool:
        """Whether a verified record of this domain covers ``email_domain``."""
        if self.status is not DomainStatus.VERIFIED:
            return False
        if email_domain == self.name:
            return True
        return self.include_subdomains and email_domain.endswith("." + self.name)
