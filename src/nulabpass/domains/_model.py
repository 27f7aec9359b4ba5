"""Values of domain verification: DNS answers, outcomes, challenges and the policy.

Everything here is plain data (frozen attrs classes and enumerations); the functions
that judge answers and decide state changes live beside it and take these values and
``now`` as arguments.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta

import attrs

__all__ = [
    "CheckResult",
    "DomainChallenge",
    "DomainPolicy",
    "LookupStatus",
    "Outcome",
    "ResolverResult",
    "TxtLookup",
]


class LookupStatus(enum.StrEnum):
    """What one resolver said about one name, before judging the value."""

    #: The name has TXT records (``records`` holds them, possibly none matching).
    ANSWER = "answer"
    #: The name does not exist (RCODE NXDOMAIN).
    NXDOMAIN = "nxdomain"
    #: The name exists but has no TXT record (NOERROR with an empty answer).
    NODATA = "nodata"
    #: The server failed to answer (RCODE SERVFAIL), e.g. a zone that did not load.
    SERVFAIL = "servfail"
    #: The server refused to answer (RCODE REFUSED), e.g. a zone it does not serve.
    REFUSED = "refused"
    #: No answer arrived in time.
    TIMEOUT = "timeout"
    #: Anything else that leaves the answer unknown: a CNAME loop or a chain too long,
    #: a malformed response, an unexpected RCODE, a network error.
    ERROR = "error"


@attrs.frozen(slots=True)
class TxtLookup:
    """The TXT records one resolver returned for one name.

    ``records`` holds each TXT record's character-strings joined (RFC 7208 section
    3.3 joins them the same way), as bytes. ``chain`` lists the CNAME targets followed
    on the way, in order. ``resolver`` names the resolver for reports; ``detail`` says
    in words what went wrong when ``status`` is not an answer.
    """

    name: str
    status: LookupStatus
    records: tuple[bytes, ...] = ()
    chain: tuple[str, ...] = ()
    resolver: str = ""
    detail: str = ""


class Outcome(enum.StrEnum):
    """The verdict on one resolver's answer, or on all of them together."""

    VERIFIED = "verified"
    ABSENT = "absent"
    WRONG_VALUE = "wrong_value"
    INDETERMINATE = "indeterminate"


@attrs.frozen(slots=True)
class ResolverResult:
    """One resolver's outcome and what it found (TXT values as text, for people)."""

    resolver: str
    outcome: Outcome
    status: LookupStatus
    found: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    detail: str = ""


@attrs.frozen(slots=True)
class CheckResult:
    """The verdict of one check across every configured resolver."""

    name: str
    expected: str
    verdict: Outcome
    results: tuple[ResolverResult, ...]

    @property
    def verified(self) -> bool:
        """Whether every resolver found the expected value."""
        return self.verdict is Outcome.VERIFIED


@attrs.frozen(slots=True)
class DomainChallenge:
    """The proof an organization publishes for one of its domains, and its upkeep.

    One row per domain record (``domain_id``). ``token`` is random (160 bits) and
    belongs to this organization and domain only. Until ``verified_at`` is set the
    challenge is pending and expires at ``expires_at``; once verified, the same record
    is re-checked whenever ``next_check_at`` comes. ``missing_since`` is when re-checks
    started finding the record absent or wrong (the grace period runs from then);
    ``indeterminate_since`` is when re-checks started getting no usable answer.
    """

    domain_id: str
    org_id: str
    domain: str
    token: str
    issued_at: datetime
    expires_at: datetime
    verified_at: datetime | None = None
    next_check_at: datetime | None = None
    last_checked_at: datetime | None = None
    last_outcome: str | None = None
    missing_since: datetime | None = None
    indeterminate_since: datetime | None = None
    version: int = 1


_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*$")
_PREFIX_RE = re.compile(r"^[!#-~]{1,100}$")


def _record_label(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not _LABEL_RE.match(value):
        raise ValueError(
            "record_label must be one or more DNS labels of letters, digits, '-' or '_'"
        )


def _value_prefix(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not _PREFIX_RE.match(value):
        raise ValueError(
            "value_prefix must be 1 to 100 printable ASCII characters without spaces or '\"'"
        )


def _positive(_instance: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if value <= timedelta(0):
        raise ValueError(f"{attribute.name} must be positive")


def _at_least_one(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1")


@attrs.frozen(slots=True)
class DomainPolicy:
    """How domains are proved and kept proved; hosts may change any of it.

    The record is TXT at ``<record_label>.<domain>`` with the value
    ``<value_prefix><token>``. Pending challenges expire after ``challenge_ttl``.
    Verified domains are re-checked every ``recheck_interval``; while the record is
    missing, every ``missing_recheck_interval``; while answers are indeterminate, every
    ``indeterminate_recheck_interval``. A record missing for ``grace_period`` (or
    answers indeterminate that long) ends the verification. Admin-triggered checks are
    limited to ``check_limit`` per ``check_window`` per organization and domain.
    ``reverify_due`` reads ``batch_size`` due domains at a time and runs at most
    ``concurrency`` DNS lookups at once. ``extra_free_mail_domains`` adds domains to the
    shipped free-mail list.
    """

    record_label: str = attrs.field(default="_nulabpass-challenge", validator=_record_label)
    value_prefix: str = attrs.field(default="nulabpass-verification=", validator=_value_prefix)
    challenge_ttl: timedelta = attrs.field(default=timedelta(days=7), validator=_positive)
    grace_period: timedelta = attrs.field(default=timedelta(days=14), validator=_positive)
    recheck_interval: timedelta = attrs.field(default=timedelta(hours=24), validator=_positive)
    missing_recheck_interval: timedelta = attrs.field(
        default=timedelta(hours=6), validator=_positive
    )
    indeterminate_recheck_interval: timedelta = attrs.field(
        default=timedelta(hours=1), validator=_positive
    )
    check_limit: int = attrs.field(default=20, validator=_at_least_one)
    check_window: timedelta = attrs.field(default=timedelta(hours=1), validator=_positive)
    batch_size: int = attrs.field(default=500, validator=_at_least_one)
    concurrency: int = attrs.field(default=32, validator=_at_least_one)
    extra_free_mail_domains: frozenset[str] = frozenset()

    def record_name(self, domain: str) -> str:
        """Where the TXT record lives for ``domain``."""
        return f"{self.record_label}.{domain}"

    def record_value(self, token: str) -> str:
        """The TXT value that proves ``token``."""
        return f"{self.value_prefix}{token}"
