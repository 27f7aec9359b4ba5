"""Judging DNS answers: one resolver's answer, then all resolvers together.

A domain is proved only when every resolver found the exact expected value. Any
resolver that could not answer makes the whole check indeterminate, because an
unanswered question proves nothing either way: a state must never flip on it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from nulabpass.domains._model import (
    CheckResult,
    LookupStatus,
    Outcome,
    ResolverResult,
    TxtLookup,
)
from nulabpass.errors import ConfigurationError

__all__ = ["combine", "display", "judge", "new_token"]

#: Bytes of randomness in a token: 160 bits, above the 128 the proof needs.
TOKEN_BYTES = 20

_DEFINITE_ABSENCE = frozenset({LookupStatus.NXDOMAIN, LookupStatus.NODATA})


def new_token() -> str:
    """A fresh random token: 160 bits as 32 lower-case base32 characters, which every
    DNS host's form accepts and which survives case-insensitive copying."""
    raw = secrets.token_bytes(TOKEN_BYTES)
    return base64.b32encode(raw).decode("ascii").lower()


def display(value: bytes) -> str:
    """A TXT value as text for reports; bytes that are not UTF-8 appear as escapes."""
    return value.decode("utf-8", errors="backslashreplace")


def judge(lookup: TxtLookup, expected: bytes) -> ResolverResult:
    """The outcome of one resolver's answer.

    The comparison is exact and byte for byte, whatever the value's length: a record
    split into several 255-byte strings has already been joined by the resolver.
    """
    found = tuple(display(r) for r in lookup.records)
    if lookup.status is LookupStatus.ANSWER:
        if any(record == expected for record in lookup.records):
            outcome = Outcome.VERIFIED
        elif lookup.records:
            outcome = Outcome.WRONG_VALUE
        else:
            outcome = Outcome.ABSENT
    elif lookup.status in _DEFINITE_ABSENCE:
        outcome = Outcome.ABSENT
    else:
        outcome = Outcome.INDETERMINATE
    return ResolverResult(
        resolver=lookup.resolver,
        outcome=outcome,
        status=lookup.status,
        found=found,
        chain=lookup.chain,
        detail=lookup.detail,
    )


def combine(name: str, expected: str, results: Sequence[ResolverResult]) -> CheckResult:
    """The verdict across resolvers: indeterminate if any is, verified only if all are,
    otherwise wrong value if any resolver saw another value, otherwise absent."""
    if not results:
        raise ConfigurationError(
            "A domain check needs at least one DNS resolver.", code="domain.no_resolver"
        )
    outcomes = {r.outcome for r in results}
    if Outcome.INDETERMINATE in outcomes:
        verdict = Outcome.INDETERMINATE
    elif outcomes == {Outcome.VERIFIED}:
        verdict = Outcome.VERIFIED
    elif Outcome.WRONG_VALUE in outcomes:
        verdict = Outcome.WRONG_VALUE
    else:
        # Absent everywhere, or resolvers disagreeing (one sees the record, another
        # says it is not there): either way the domain is not proved.
        verdict = Outcome.ABSENT
    return CheckResult(name=name, expected=expected, verdict=verdict, results=tuple(results))
