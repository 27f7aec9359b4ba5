"""Domain values of SCIM provisioning: what is stored beside accounts and teams."""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = [
    "ScimAddress",
    "ScimEmail",
    "ScimGroupRow",
    "ScimProfile",
    "ScimToken",
    "ScimTombstone",
    "ScimUserRow",
    "ScimValue",
]


@attrs.frozen(slots=True)
class ScimEmail:
    """One value of a user's ``emails``."""

    value: str
    type: str | None = None
    primary: bool = False
    display: str | None = None


@attrs.frozen(slots=True)
class ScimValue:
    """One value of a multi-valued attribute whose values have the sub-attributes
    ``value``, ``display``, ``type`` and ``primary`` (RFC 7643 §2.4): ``phoneNumbers``,
    ``ims``, ``photos``, ``entitlements``, ``roles`` and ``x509Certificates``."""

    value: str | None = None
    display: str | None = None
    type: str | None = None
    primary: bool = False


@attrs.frozen(slots=True)
class ScimAddress:
    """One value of a user's ``addresses`` (RFC 7643 §4.1.2)."""

    formatted: str | None = None
    street_address: str | None = None
    locality: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    type: str | None = None
    primary: bool = False


@attrs.frozen(slots=True)
class ScimProfile:
    """The SCIM attributes of a user that accounts do not hold.

    ``user_name`` keeps the spelling the client sent; the account's email is its
    normalised form. ``manager_id`` is the id of another user of the organization.
    """

    user_name: str
    external_id: str | None = None
    formatted: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    middle_name: str | None = None
    honorific_prefix: str | None = None
    honorific_suffix: str | None = None
    nick_name: str | None = None
    title: str | None = None
    user_type: str | None = None
    locale: str | None = None
    emails: tuple[ScimEmail, ...] = ()
    employee_number: str | None = None
    cost_center: str | None = None
    organization: str | None = None
    division: str | None = None
    department: str | None = None
    manager_id: str | None = None
    display_name: str | None = None
    preferred_language: str | None = None
    timezone: str | None = None
    #: ``None``: the client never assigned ``active`` (the account is active).
    active: bool | None = None
    profile_url: str | None = None
    phone_numbers: tuple[ScimValue, ...] = ()
    ims: tuple[ScimValue, ...] = ()
    photos: tuple[ScimValue, ...] = ()
    addresses: tuple[ScimAddress, ...] = ()
    entitlements: tuple[ScimValue, ...] = ()
    roles: tuple[ScimValue, ...] = ()
    x509_certificates: tuple[ScimValue, ...] = ()


@attrs.frozen(slots=True)
class ScimUserRow:
    """A managed account's SCIM attributes, stored per organization."""

    org_id: str
    account_id: str
    profile: ScimProfile
    created_at: datetime
    updated_at: datetime
    version: int = 1


@attrs.frozen(slots=True)
class ScimGroupRow:
    """The SCIM attributes of a team that teams do not hold."""

    org_id: str
    team_id: str
    external_id: str | None
    created_at: datetime


@attrs.frozen(slots=True)
class ScimTombstone:
    """What remains of a user deleted through SCIM: later requests answer 404."""

    org_id: str
    account_id: str
    user_name: str
    external_id: str | None
    deleted_at: datetime


@attrs.frozen(slots=True)
class ScimToken:
    """A per-organization SCIM bearer token; only the SHA-256 of its secret is stored."""

    id: str
    org_id: str
    name: str
    secret_hash: str
    created_at: datetime
    created_by: str
    #: The latest successful authentication, to within a minute; ``None``: never used.
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    version: int = 1

    @property
    def active(self) -> bool:
        """Whether the token still authenticates."""
        return self.revoked_at is None
