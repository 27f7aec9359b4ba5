"""Deriving the state from a record and a time, and applying events through the table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import assert_never

import attrs

from nulabpass.errors import InvalidInput
from nulabpass.plans._errors import InvalidPlanTransition
from nulabpass.plans._model import (
    Cancel,
    ChangeSeats,
    EventKind,
    GiveUp,
    PaymentFailed,
    PaymentRecovered,
    PlanEvent,
    PlanPolicy,
    PlanRecord,
    PlanState,
    Renew,
    Resume,
    StartTrial,
    Transition,
    Upgrade,
    as_utc,
)
from nulabpass.plans._table import TRANSITIONS, Guard, Outcome

__all__ = ["allowed_events", "apply", "derive_state", "effective_time", "time_end"]


def effective_time(record: PlanRecord, now: datetime) -> datetime:
    """Return the instant the machine reasons about: ``now``, never before the last event.

    Clocks of different hosts disagree by a little; a record written by a host whose
    clock runs ahead must not look, to a host whose clock runs behind, as if its last
    event had not happened yet.
    """
    now = as_utc(now)
    if record.last_event_at is not None and now < record.last_event_at:
        return record.last_event_at
    return now


def derive_state(record: PlanRecord, now: datetime) -> PlanState:
    """Return the organization's plan state at ``now``, from the record's timestamps alone.

    No job needs to run for a trial to expire or a canceled plan to end: a later ``now``
    gives the later state. ``now`` must be aware; a ``now`` earlier than
    ``record.last_event_at`` is treated as ``last_event_at``.
    """
    t = effective_time(record, now)
    # An explicit end comes first: whatever else the record says, the plan is over.
    if record.ended_at is not None:
        return PlanState.ENDED
    if record.cancel_effective_at is not None:
        return PlanState.CANCELING if t < record.cancel_effective_at else PlanState.ENDED
    if record.grace_ends_at is None:
        if record.trial_ends_at is None:
            return PlanState.NONE
        return PlanState.TRIALING if t < record.trial_ends_at else PlanState.TRIAL_EXPIRED
    if record.suspended_at is not None:
        if record.suspended_until is None or t < record.suspended_until:
            return PlanState.SUSPENDED
        return PlanState.ENDED
    return PlanState.ACTIVE if t < record.grace_ends_at else PlanState.ENDED


def time_end(record: PlanRecord) -> datetime | None:
    """Return the instant at which the record's plan ends by time alone, if it ever does.

    ``None`` when an event ended it (``ended_at``) or nothing in the record ends it.
    A trial's expiry is not an end: it leads to ``trial_expired``.
    """
    if record.ended_at is not None:
        return None
    if record.cancel_effective_at is not None:
        return record.cancel_effective_at
    if record.grace_ends_at is None:
        return None
    if record.suspended_at is not None:
        return record.suspended_until
    return record.grace_ends_at


def allowed_events(state: PlanState) -> frozenset[EventKind]:
    """Return the events the table accepts in ``state`` (e.g. to show an admin's buttons)."""
    return frozenset(kind for (source, kind) in TRANSITIONS if source is state)


# -- guards ------------------------------------------------------------------------------

_GuardPredicate = Callable[[PlanRecord, datetime, PlanPolicy], bool]


def _trial_cancel_ends_at_once(_record: PlanRecord, _t: datetime, policy: PlanPolicy) -> bool:
    return policy.trial_cancel_ends_access_at_once


def _kept_trial_cancel_ends_at_once(record: PlanRecord, t: datetime, policy: PlanPolicy) -> bool:
    return (
        policy.trial_cancel_ends_access_at_once
        and record.paid_starts_at is not None
        and t < record.paid_starts_at
    )


def _paid_period_over(record: PlanRecord, t: datetime, _policy: PlanPolicy) -> bool:
    return record.period_ends_at is not None and t >= record.period_ends_at


def _no_paid_plan(record: PlanRecord, _t: datetime, _policy: PlanPolicy) -> bool:
    return record.paid_starts_at is None


_GUARDS: Mapping[Guard, _GuardPredicate] = MappingProxyType(
    {
        Guard.TRIAL_CANCEL_ENDS_AT_ONCE: _trial_cancel_ends_at_once,
        Guard.KEPT_TRIAL_CANCEL_ENDS_AT_ONCE: _kept_trial_cancel_ends_at_once,
        Guard.PAID_PERIOD_OVER: _paid_period_over,
        Guard.NO_PAID_PLAN: _no_paid_plan,
    }
)


def _choose(
    outcomes: tuple[Outcome, ...], record: PlanRecord, t: datetime, policy: PlanPolicy
) -> Outcome:
    for outcome in outcomes:
        if outcome.guard is None or _GUARDS[outcome.guard](record, t, policy):
            return outcome
    # The table's cells end with an unguarded outcome; a test checks every cell.
    raise RuntimeError("plan transition table cell has no unguarded outcome")


# -- record changes, one per event kind ----------------------------------------------------
#
# The table has already decided that the event is allowed and which state it leads to;
# these functions write the event's facts into the record and check the event's values
# against it (a period end must lie ahead).


@attrs.frozen(slots=True)
class _Step:
    record: PlanRecord
    t: datetime
    policy: PlanPolicy
    source: PlanState
    target: PlanState


def _period_end_error(message: str, value: datetime) -> InvalidInput:
    return InvalidInput(
        message,
        code="plan.invalid_period_end",
        details={"period_ends_at": value.isoformat()},
    )


def _start_trial(step: _Step) -> PlanRecord:
    return attrs.evolve(
        step.record,
        trial_started_at=step.t,
        trial_ends_at=step.t + step.policy.trial_length,
        seats=step.policy.trial_seats,
    )


def _upgrade(step: _Step, event: Upgrade) -> PlanRecord:
    record = step.record
    paid_starts_at = step.t
    if step.source is PlanState.TRIALING and not event.start_now and record.trial_ends_at:
        # The organization keeps the trial days it has left; billing starts after them.
        paid_starts_at = record.trial_ends_at
    if event.period_ends_at <= paid_starts_at:
        raise _period_end_error(
            f"the first paid period must end after it starts ({paid_starts_at.isoformat()}); "
            f"got period_ends_at {event.period_ends_at.isoformat()}",
            event.period_ends_at,
        )
    return attrs.evolve(
        record,
        plan_name=event.plan_name,
        seats=event.seats,
        paid_starts_at=paid_starts_at,
        period_ends_at=event.period_ends_at,
        grace_ends_at=event.period_ends_at + step.policy.renewal_grace,
        canceled_at=None,
        cancel_effective_at=None,
        suspended_at=None,
        suspended_until=None,
        ended_at=None,
    )


def _renew(step: _Step, event: Renew) -> PlanRecord:
    current = step.record.period_ends_at
    if current is not None and event.period_ends_at <= current:
        raise _period_end_error(
            f"a renewal must move the period end forward from {current.isoformat()}; "
            f"got {event.period_ends_at.isoformat()}",
            event.period_ends_at,
        )
    if event.period_ends_at <= step.t:
        raise _period_end_error(
            f"a renewed period must end in the future; got {event.period_ends_at.isoformat()}",
            event.period_ends_at,
        )
    return attrs.evolve(
        step.record,
        period_ends_at=event.period_ends_at,
        grace_ends_at=event.period_ends_at + step.policy.renewal_grace,
    )


def _cancel(step: _Step) -> PlanRecord:
    record, t = step.record, step.t
    if step.target is PlanState.ENDED:
        return attrs.evolve(record, canceled_at=t, cancel_effective_at=t, ended_at=t)
    # Access runs to the end of what the organization already has: its trial, its kept
    # trial days before the paid period, or the paid period.
    if record.paid_starts_at is None:
        effective = record.trial_ends_at
    elif t < record.paid_starts_at:
        effective = record.paid_starts_at
    else:
        effective = record.period_ends_at
    return attrs.evolve(record, canceled_at=t, cancel_effective_at=effective)


def _payment_failed(step: _Step) -> PlanRecord:
    if step.record.suspended_at is not None:
        # A repeated failure keeps the first suspension's times, so retries cannot
        # postpone the suspension limit.
        return step.record
    limit = step.policy.suspension_limit
    until = step.t + limit if limit is not None else None
    return attrs.evolve(step.record, suspended_at=step.t, suspended_until=until)


def _payment_recovered(step: _Step, event: PaymentRecovered) -> PlanRecord:
    record, t = step.record, step.t
    period_ends_at, grace_ends_at = record.period_ends_at, record.grace_ends_at
    if event.period_ends_at is not None:
        if event.period_ends_at <= t:
            raise _period_end_error(
                "a recovered payment's period must end in the future; got "
                f"{event.period_ends_at.isoformat()}",
                event.period_ends_at,
            )
        if record.paid_starts_at is not None and event.period_ends_at <= record.paid_starts_at:
            raise _period_end_error(
                "a recovered payment's period must end after the paid period starts "
                f"({record.paid_starts_at.isoformat()}); got {event.period_ends_at.isoformat()}",
                event.period_ends_at,
            )
        period_ends_at = event.period_ends_at
        grace_ends_at = event.period_ends_at + step.policy.renewal_grace
    elif grace_ends_at is not None and t >= grace_ends_at:
        # Without a new period end the plan would be reactivated straight into "ended".
        ended_on = period_ends_at.isoformat() if period_ends_at else "an earlier date"
        raise InvalidInput(
            f"the paid period ended on {ended_on}; pass the new period end that the "
            "recovered payment paid for",
            code="plan.period_end_required",
        )
    return attrs.evolve(
        record,
        period_ends_at=period_ends_at,
        grace_ends_at=grace_ends_at,
        suspended_at=None,
        suspended_until=None,
    )


def _write(step: _Step, event: PlanEvent) -> PlanRecord:
    match event:
        case StartTrial():
            return _start_trial(step)
        case Upgrade():
            return _upgrade(step, event)
        case Renew():
            return _renew(step, event)
        case ChangeSeats():
            return attrs.evolve(step.record, seats=event.seats)
        case Cancel():
            return _cancel(step)
        case Resume():
            return attrs.evolve(step.record, canceled_at=None, cancel_effective_at=None)
        case PaymentFailed():
            return _payment_failed(step)
        case PaymentRecovered():
            return _payment_recovered(step, event)
        case GiveUp():
            return attrs.evolve(step.record, ended_at=step.t)
        case _:  # pragma: no cover - mypy proves the match exhaustive
            assert_never(event)


def apply(record: PlanRecord, event: PlanEvent, now: datetime, policy: PlanPolicy) -> Transition:
    """Apply ``event`` at ``now`` under ``policy`` and return the resulting transition.

    The state is derived at ``now`` (never earlier than ``record.last_event_at``), the
    pair (state, event) is looked up in :data:`TRANSITIONS`, and the first outcome whose
    guard holds decides the new state and the effects. The returned record carries the
    event's facts and ``last_event_at``; storing it is the caller's job.

    Raises :class:`InvalidPlanTransition` when the table has no row for the pair, and
    :class:`~nulabpass.errors.InvalidInput` when a naive datetime is given or an event's
    values do not fit the record (a period end that is not ahead, for example).
    """
    t = effective_time(record, now)
    source = derive_state(record, t)
    outcomes = TRANSITIONS.get((source, event.kind))
    if outcomes is None:
        raise InvalidPlanTransition(source, event.kind)
    outcome = _choose(outcomes, record, t, policy)
    # last_event_at moves first, so that every fact the event writes is not after it.
    stamped = attrs.evolve(record, last_event_at=t)
    step = _Step(record=stamped, t=t, policy=policy, source=source, target=outcome.target)
    changed = _write(step, event)
    reached = derive_state(changed, t)
    if reached is not outcome.target:
        # The record changes and the derivation must agree with the table; a mismatch is a
        # bug in this package, never a caller error.
        raise RuntimeError(
            f"plan machine inconsistency: {source} + {event.kind} derived {reached}, "
            f"the table says {outcome.target}"
        )
    return Transition(
        record=changed,
        event=event,
        from_state=source,
        to_state=outcome.target,
        effects=outcome.effects,
        at=t,
    )
