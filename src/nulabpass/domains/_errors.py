"""Errors of domain verification."""

from __future__ import annotations

from nulabpass.errors import Conflict, TransientError

__all__ = ["DomainVerificationError", "RateLimited"]


class DomainVerificationError(Conflict):
    """The domain's state forbids the step (expired challenge, no challenge...)."""

    default_code = "domain.verification"
    default_public_message = "The domain could not be verified. Contact your administrator."


class RateLimited(TransientError):
    """Too many attempts in a short time; the message says when to try again."""

    default_code = "rate_limit.exceeded"
    default_public_message = "Too many attempts. Please wait a little and try again."
    http_status = 429
