"""What a check means for a domain's verification: the grace-period state machine.

Theory of operation
-------------------
A pending domain becomes verified when a check of its unexpired challenge is verified.
A verified domain is re-checked on a schedule:

- verified: nothing changes, except that a record reported missing is now restored;
- absent or wrong value: the first such answer starts the grace period
  (``missing_since``); once ``grace_period`` has passed since then, the domain lapses
  (becomes unverified) and needs a fresh challenge;
- indeterminate (SERVFAIL, REFUSED, timeout): never changes the state by itself. Only a
  run of indeterminate answers longer than ``grace_period`` counts as one absent answer,
  which then follows the rule above: a flaky network cannot unverify a domain quickly,
  and a domain whose DNS stays broken does not stay verified forever.

Every function here is pure: the previous state, the verdict, ``now`` and the policy go
in; the next state and what changed come out.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from nulabpass.domains._model import DomainChallenge, DomainPolicy, Outcome

__all__ = ["Change", "grace_ends_at", "reassess"]


class Change(enum.StrEnum):
    """What a re-check changed."""

    #: Routine: nothing worth an audit event.
    NONE = "none"
    #: The record went missing: the grace period started.
    RECORD_MISSING = "record_missing"
    #: The record came back within the grace period.
    RESTORED = "restored"
    #: The grace period ran out: the domain is no longer verified.
    LAPSED = "lapsed"


def _grace_end(challenge: DomainChallenge, policy: DomainPolicy) -> datetime | None:
    if challenge.missing_since is None:
        return None
    return challenge.missing_since + policy.grace_period


def grace_ends_at(challenge: DomainChallenge, policy: DomainPolicy) -> datetime | None:
    """When the grace period of a missing record ends (``None`` when not missing)."""
    return _grace_end(challenge, policy)


def reassess(
    challenge: DomainChallenge, verdict: Outcome, now: datetime, policy: DomainPolicy
) -> tuple[DomainChallenge, Change]:
    """Apply one re-check's verdict to a verified domain's challenge."""
    base = attrs.evolve(challenge, last_checked_at=now, last_outcome=verdict.value)
    if verdict is Outcome.VERIFIED:
        change = Change.RESTORED if challenge.missing_since is not None else Change.NONE
        return (
            attrs.evolve(
                base,
                missing_since=None,
                indeterminate_since=None,
                next_check_at=now + policy.recheck_interval,
            ),
            change,
        )
    if verdict is Outcome.INDETERMINATE:
        since = challenge.indeterminate_since or now
        base = attrs.evolve(base, indeterminate_since=since)
        if now - since < policy.grace_period:
            return attrs.evolve(base, next_check_at=_next_missing(base, now, policy)), Change.NONE
        # Indeterminate for longer than the grace period: count it as absent.
    else:
        base = attrs.evolve(base, indeterminate_since=None)
    if base.missing_since is None:
        started = attrs.evolve(base, missing_since=now)
        return attrs.evolve(
            started, next_check_at=_next_missing(started, now, policy)
        ), Change.RECORD_MISSING
    end = base.missing_since + policy.grace_period
    if now >= end:
        return (
            attrs.evolve(base, next_check_at=None, verified_at=None, missing_since=None),
            Change.LAPSED,
        )
    return attrs.evolve(base, next_check_at=_next_missing(base, now, policy)), Change.NONE


def _next_missing(challenge: DomainChallenge, now: datetime, policy: DomainPolicy) -> datetime:
    """The next re-check while something is wrong: sooner than the routine interval,
    and never later than the moment the grace period ends."""
    interval = (
        policy.indeterminate_recheck_interval
        if challenge.indeterminate_since is not None
        else policy.missing_recheck_interval
    )
    candidate = now + interval
    ends: list[datetime] = []
    if challenge.missing_since is not None:
        ends.append(challenge.missing_since + policy.grace_period)
    if challenge.indeterminate_since is not None:
        ends.append(challenge.indeterminate_since + policy.grace_period)
    later = [e for e in ends if e > now]
    return min([candidate, *later])
