"""derive_state: the state follows from the record and now, exactly at every boundary."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from nulabpass.errors import InvalidInput
from nulabpass.plans import (
    Cancel,
    Capability,
    PaymentFailed,
    PlanPolicy,
    PlanRecord,
    PlanState,
    StartTrial,
    Upgrade,
    apply,
    derive_state,
    entitled,
)

from .conftest import DAY, T0, US

S = PlanState


def _trial(policy: PlanPolicy) -> PlanRecord:
    return apply(PlanRecord(), StartTrial(), T0, policy).record


def test_an_empty_record_is_none_at_any_time() -> None:
    """An organization that never did anything has no plan."""
    assert derive_state(PlanRecord(), T0) is S.NONE
    assert derive_state(PlanRecord(), T0 + 1000 * DAY) is S.NONE


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-US, S.TRIALING), (timedelta(0), S.TRIAL_EXPIRED), (US, S.TRIAL_EXPIRED)],
    ids=["1us-before", "at", "1us-after"],
)
def test_the_trial_expires_exactly_at_trial_ends_at(offset: timedelta, expected: S) -> None:
    """No job is needed: trialing turns into trial_expired the instant the end passes."""
    policy = PlanPolicy()
    record = _trial(policy)
    assert record.trial_ends_at == T0 + 30 * DAY
    assert derive_state(record, T0 + 30 * DAY + offset) is expected
    signs_in = entitled(
        derive_state(record, T0 + 30 * DAY + offset),
        Capability.SIGN_IN,
        managed_count=0,
        seats=None,
    )
    assert signs_in is (expected is S.TRIALING)


def test_the_trial_length_comes_from_the_policy() -> None:
    """A host may configure a shorter trial; the record keeps the end it was given."""
    record = _trial(PlanPolicy(trial_length=timedelta(days=14)))
    assert record.trial_ends_at == T0 + 14 * DAY
    assert derive_state(record, T0 + 14 * DAY - US) is S.TRIALING
    assert derive_state(record, T0 + 14 * DAY) is S.TRIAL_EXPIRED


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-US, S.CANCELING), (timedelta(0), S.ENDED), (US, S.ENDED)],
    ids=["1us-before", "at", "1us-after"],
)
def test_a_canceled_paid_plan_ends_exactly_at_its_period_end(
    offset: timedelta, expected: S
) -> None:
    """Canceling keeps access until the paid period ends, and not a microsecond longer."""
    policy = PlanPolicy()
    period_end = T0 + 30 * DAY
    active = apply(PlanRecord(), Upgrade("pro", period_end), T0, policy).record
    canceled = apply(active, Cancel(), T0 + DAY, policy).record
    assert canceled.cancel_effective_at == period_end
    assert derive_state(canceled, period_end + offset) is expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-US, S.ACTIVE), (timedelta(0), S.ENDED), (US, S.ENDED)],
    ids=["1us-before", "at", "1us-after"],
)
def test_an_unrenewed_plan_ends_when_its_grace_after_the_period_end_passes(
    offset: timedelta, expected: S
) -> None:
    """Without a renewal the plan stays active through the grace, then ends by itself."""
    policy = PlanPolicy(renewal_grace=timedelta(days=3))
    period_end = T0 + 30 * DAY
    active = apply(PlanRecord(), Upgrade("pro", period_end), T0, policy).record
    assert active.grace_ends_at == period_end + 3 * DAY
    assert derive_state(active, period_end) is S.ACTIVE
    assert derive_state(active, period_end + 3 * DAY + offset) is expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-US, S.ACTIVE), (timedelta(0), S.ENDED), (US, S.ENDED)],
    ids=["1us-before", "at", "1us-after"],
)
def test_without_grace_an_unrenewed_plan_ends_exactly_at_the_period_end(
    offset: timedelta, expected: S
) -> None:
    """A zero renewal grace makes the period end the plan's end."""
    policy = PlanPolicy(renewal_grace=timedelta(0))
    period_end = T0 + 30 * DAY
    active = apply(PlanRecord(), Upgrade("pro", period_end), T0, policy).record
    assert derive_state(active, period_end + offset) is expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-US, S.SUSPENDED), (timedelta(0), S.ENDED), (US, S.ENDED)],
    ids=["1us-before", "at", "1us-after"],
)
def test_a_suspension_with_a_policy_limit_ends_the_plan_at_the_limit(
    offset: timedelta, expected: S
) -> None:
    """When the policy caps suspensions, the plan ends by itself when the cap passes."""
    policy = PlanPolicy(suspension_limit=timedelta(days=14))
    active = apply(PlanRecord(), Upgrade("pro", T0 + 30 * DAY), T0, policy).record
    suspended = apply(active, PaymentFailed(), T0 + DAY, policy).record
    assert suspended.suspended_until == T0 + 15 * DAY
    assert derive_state(suspended, T0 + 15 * DAY + offset) is expected


def test_a_suspension_without_a_limit_lasts_until_an_event() -> None:
    """By default billing decides when to give up; time alone never ends a suspension."""
    policy = PlanPolicy()
    active = apply(PlanRecord(), Upgrade("pro", T0 + 30 * DAY), T0, policy).record
    suspended = apply(active, PaymentFailed(), T0 + DAY, policy).record
    assert suspended.suspended_until is None
    assert derive_state(suspended, T0 + 400 * DAY) is S.SUSPENDED


def test_a_time_before_the_last_event_is_read_as_the_last_event() -> None:
    """A host whose clock lags still sees the record's latest facts, not an older state."""
    policy = PlanPolicy()
    trial = apply(PlanRecord(), StartTrial(), T0, policy).record
    ended = apply(trial, Cancel(), T0 + DAY, policy).record
    assert derive_state(ended, T0 + DAY - timedelta(seconds=2)) is S.ENDED
    assert derive_state(trial, T0 - DAY) is S.TRIALING


def test_an_aware_time_in_another_zone_means_the_same_instant() -> None:
    """Zones are converted, not ignored: 18:00 at UTC+9 is 09:00 UTC."""
    record = _trial(PlanPolicy())
    tokyo = timezone(timedelta(hours=9))
    end_in_tokyo = datetime(2024, 3, 31, 18, 0, tzinfo=tokyo)
    assert derive_state(record, end_in_tokyo - US) is S.TRIALING
    assert derive_state(record, end_in_tokyo) is S.TRIAL_EXPIRED


def test_a_naive_now_is_refused() -> None:
    """A naive datetime could be any zone; derive_state will not guess."""
    with pytest.raises(InvalidInput) as err:
        derive_state(PlanRecord(), datetime(2024, 3, 1, 9, 0))
    assert err.value.code == "plan.naive_datetime"
    assert err.value.details["field"] == "now"
