"""Who acts and from where: the two values every mutating call takes."""

from __future__ import annotations

import enum

import attrs

__all__ = ["Actor", "ActorType", "RequestContext"]


class ActorType(enum.StrEnum):
    """The kinds of actor that can change state."""

    ACCOUNT = "account"
    SCIM_TOKEN = "scim_token"  # noqa: S105 - an actor type, not a secret
    IDP = "idp"
    SYSTEM = "system"


@attrs.frozen(slots=True)
class Actor:
    """Who performs an action.

    Build one with :meth:`account`, :meth:`system`, :meth:`scim_token` or :meth:`idp`.
    ``display`` is a non-secret label for audit logs ("User provisioning", "System").
    """

    type: ActorType
    id: str
    display: str = ""

    @classmethod
    def account(cls, account_id: str) -> Actor:
        """An account acting through the host's UI or API."""
        return cls(ActorType.ACCOUNT, account_id)

    @classmethod
    def system(cls, display: str = "System") -> Actor:
        """The host or nulabpass itself (schedules, time-driven effects)."""
        return cls(ActorType.SYSTEM, "system", display)

    @classmethod
    def scim_token(cls, token_id: str) -> Actor:
        """A SCIM bearer token, shown in audit logs as "User provisioning"."""
        return cls(ActorType.SCIM_TOKEN, token_id, "User provisioning")

    @classmethod
    def idp(cls, entity_id: str) -> Actor:
        """An identity provider (SAML sign-in)."""
        return cls(ActorType.IDP, entity_id, entity_id)


@attrs.frozen(slots=True)
class RequestContext:
    """Where a request came from; recorded with its audit event.

    ``product`` names which of the host's products (from configuration) the request came
    through. ``ip`` and ``user_agent`` are personal data and erasable.
    """

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    product: str | None = None
