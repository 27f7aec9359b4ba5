"""The error tree of nulabpass.

Every failure a caller can see is a :class:`NulabPassError`. Each carries:

- ``code``: a stable dotted identifier (``member.break_glass``) that hosts map to their
  own messages and that never changes between releases;
- ``message``: text for the IT admin or integrator that says what is wrong and what to
  fix; it never contains a secret;
- ``public_message``: a short sentence safe to show an end user in a browser.

The children split by who is at fault, as h11 splits local from remote errors:
:class:`InvalidInput` (the caller sent something malformed), :class:`PermissionDenied`
and :class:`PlanRequired` (the actor or the organization may not do this now),
:class:`NotFound`, :class:`Conflict` (the state of the world forbids it, including stale
writes), :class:`ConfigurationError` (the integrator wired something wrong) and
:class:`TransientError` (try again later).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "BreakGlassViolation",
    "ConfigurationError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "NulabPassError",
    "PermissionDenied",
    "PlanRequired",
    "SeatLimitExceeded",
    "StaleWrite",
    "TransientError",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


class NulabPassError(Exception):
    """Root of every error raised by nulabpass."""

    #: Default code when a subclass is raised without one.
    default_code = "nulabpass.error"
    #: Default end-user text.
    default_public_message = (
        "Something went wrong. Please try again or contact your administrator."
    )
    #: HTTP status a web adapter should answer with.
    http_status = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        public_message: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code: str = code or self.default_code
        self.message: str = message
        self.public_message: str = public_message or self.default_public_message
        #: Non-secret structured facts (field names, expected vs received values).
        self.details: Mapping[str, str] = MappingProxyType(dict(details)) if details else _EMPTY

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidInput(NulabPassError):
    """The caller supplied a value that is malformed or out of range."""

    default_code = "input.invalid"
    default_public_message = "Some of the information entered is not valid."
    http_status = 400


class PermissionDenied(NulabPassError):
    """The actor is not allowed to perform this action."""

    default_code = "permission.denied"
    default_public_message = "You do not have permission to do this."
    http_status = 403


class PlanRequired(NulabPassError):
    """The organization's plan does not include this capability right now."""

    default_code = "plan.required"
    default_public_message = "This feature needs an active plan. Contact your administrator."
    http_status = 403


class SeatLimitExceeded(PlanRequired):
    """The organization has no free seat for another managed account."""

    default_code = "plan.seat_limit"
    default_public_message = "Your organization has no seats left. Contact your administrator."


class NotFound(NulabPassError):
    """The thing named does not exist (or is not visible to this actor)."""

    default_code = "not_found"
    default_public_message = "We could not find what you were looking for."
    http_status = 404


class Conflict(NulabPassError):
    """The current state forbids the change (duplicate, wrong state, broken invariant)."""

    default_code = "conflict"
    default_public_message = "This change conflicts with the current state. Please reload."
    http_status = 409


class StaleWrite(Conflict):
    """Another writer changed the resource since it was read (optimistic concurrency)."""

    default_code = "conflict.stale_write"
    http_status = 412


class BreakGlassViolation(Conflict):
    """The change would leave an organization without break-glass access.

    An organization must always keep at least one active non-managed account that is an
    admin or plan admin, so that someone can still sign in when SAML breaks.
    """

    default_code = "member.break_glass"


class ConfigurationError(NulabPassError):
    """The integrator configured nulabpass incorrectly."""

    default_code = "config.invalid"
    http_status = 500


class TransientError(NulabPassError):
    """A dependency failed for now (SMTP server, database); retrying may succeed."""

    default_code = "transient"
    default_public_message = "The service is temporarily unavailable. Please try again."
    http_status = 503
