"""Fixtures for the plan machine tests: a fixed origin of time and records in each state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from nulabpass.plans import (
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
    Upgrade,
    apply,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)

StateBuilder = Callable[[PlanState], tuple[PlanRecord, datetime]]
EventBuilder = Callable[[EventKind, datetime], PlanEvent]


def build_record_in(state: PlanState, policy: PlanPolicy) -> tuple[PlanRecord, datetime]:
    """Return a record that derives ``state`` at the returned instant, reached by events."""
    empty = PlanRecord()
    if state is PlanState.NONE:
        return empty, T0
    trial = apply(empty, StartTrial(), T0, policy).record
    if state is PlanState.TRIALING:
        return trial, T0 + DAY
    if state is PlanState.TRIAL_EXPIRED:
        return trial, T0 + policy.trial_length + DAY
    active = apply(empty, Upgrade("pro", T0 + 30 * DAY, seats=10), T0, policy).record
    if state is PlanState.ACTIVE:
        return active, T0 + DAY
    if state is PlanState.CANCELING:
        return apply(active, Cancel(), T0 + DAY, policy).record, T0 + 2 * DAY
    suspended = apply(active, PaymentFailed(), T0 + DAY, policy).record
    if state is PlanState.SUSPENDED:
        return suspended, T0 + 2 * DAY
    assert state is PlanState.ENDED
    return apply(suspended, GiveUp(), T0 + 2 * DAY, policy).record, T0 + 3 * DAY


def build_event(kind: EventKind, now: datetime) -> PlanEvent:
    """Return an event of ``kind`` whose values fit any record built above at ``now``."""
    events: dict[EventKind, PlanEvent] = {
        EventKind.START_TRIAL: StartTrial(),
        EventKind.UPGRADE: Upgrade("business", now + 60 * DAY, seats=20),
        EventKind.RENEW: Renew(now + 90 * DAY),
        EventKind.CHANGE_SEATS: ChangeSeats(25),
        EventKind.CANCEL: Cancel(),
        EventKind.RESUME: Resume(),
        EventKind.PAYMENT_FAILED: PaymentFailed(),
        EventKind.PAYMENT_RECOVERED: PaymentRecovered(),
        EventKind.GIVE_UP: GiveUp(),
    }
    return events[kind]


@pytest.fixture
def policy() -> PlanPolicy:
    """The default policy: 30-day trial, canceled trials end at once, 3 days of grace."""
    return PlanPolicy()


@pytest.fixture
def record_in(policy: PlanPolicy) -> StateBuilder:
    """Build a record in a given state under the default policy."""

    def build(state: PlanState) -> tuple[PlanRecord, datetime]:
        return build_record_in(state, policy)

    return build
