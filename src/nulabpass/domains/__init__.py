"""Verified email domains: DNS TXT proofs, agreement across resolvers, re-verification.

The pure core normalises names and refuses unclaimable ones (:func:`check_claimable`),
makes tokens (:func:`new_token`), judges answers (:func:`judge`, :func:`combine`) and
decides what a re-check changes (:func:`reassess`). Adapters of the
:class:`~nulabpass.ports.TxtResolver` port: :class:`DnsPythonTxtResolver` for real DNS
(imported on first use, so dnspython loads only when needed) and
:class:`StaticTxtResolver` for tests. The use cases are ``NulabPass.domains``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nulabpass.domains._errors import DomainVerificationError, RateLimited
from nulabpass.domains._freemail import FREE_MAIL_DOMAINS
from nulabpass.domains._judge import combine, display, judge, new_token
from nulabpass.domains._lifecycle import Change, grace_ends_at, reassess
from nulabpass.domains._model import (
    CheckResult,
    DomainChallenge,
    DomainPolicy,
    LookupStatus,
    Outcome,
    ResolverResult,
    TxtLookup,
)
from nulabpass.domains._names import (
    check_claimable,
    is_free_mail,
    normalize_domain,
    registrable_part,
)
from nulabpass.domains._static import StaticTxtResolver

if TYPE_CHECKING:
    from nulabpass.domains._dnspython import DnsPythonTxtResolver


def __getattr__(name: str) -> object:
    if name == "DnsPythonTxtResolver":
        from nulabpass.domains._dnspython import DnsPythonTxtResolver

        return DnsPythonTxtResolver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FREE_MAIL_DOMAINS",
    "Change",
    "CheckResult",
    "DnsPythonTxtResolver",
    "DomainChallenge",
    "DomainPolicy",
    "DomainVerificationError",
    "LookupStatus",
    "Outcome",
    "RateLimited",
    "ResolverResult",
    "StaticTxtResolver",
    "TxtLookup",
    "check_claimable",
    "combine",
    "display",
    "grace_ends_at",
    "is_free_mail",
    "judge",
    "new_token",
    "normalize_domain",
    "reassess",
    "registrable_part",
]
