"""The issue's rules, one by one: trials, upgrades, cancel and resume, payments, values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from nulabpass.errors import ConfigurationError, InvalidInput
from nulabpass.plans import (
    DEFAULT_POLICY,
    Cancel,
    ChangeSeats,
    Effect,
    GiveUp,
    InvalidPlanTransition,
    PaymentFailed,
    PaymentRecovered,
    PlanPolicy,
    PlanRecord,
    PlanState,
    Renew,
    Resume,
    StartTrial,
    Upgrade,
    apply,
    derive_state,
)

from .conftest import DAY, T0, US

S = PlanState
KEEP_TRIAL_ON_CANCEL = PlanPolicy(trial_cancel_ends_access_at_once=False)


def _trial(policy: PlanPolicy = DEFAULT_POLICY) -> PlanRecord:
    return apply(PlanRecord(), StartTrial(), T0, policy).record


def _active(
    policy: PlanPolicy = DEFAULT_POLICY, period_end: datetime = T0 + 30 * DAY
) -> PlanRecord:
    return apply(PlanRecord(), Upgrade("pro", period_end, seats=10), T0, policy).record


# -- trials ------------------------------------------------------------------------------


def test_starting_the_trial_records_its_window_and_the_policy_seats() -> None:
    """The trial's start and end are written once, with the policy's trial seats."""
    policy = PlanPolicy(trial_seats=5)
    transition = apply(PlanRecord(), StartTrial(), T0, policy)
    assert transition.effects == (Effect.TRIAL_STARTED,)
    record = transition.record
    assert (record.trial_started_at, record.trial_ends_at) == (T0, T0 + 30 * DAY)
    assert record.seats == 5
    assert record.trial_used
    assert not record.has_paid_plan


def test_the_trial_is_unlimited_in_seats_by_default() -> None:
    """Unless the policy says otherwise, a trial has no seat limit."""
    assert _trial().seats is None


# -- upgrades ------------------------------------------------------------------------------


def test_upgrading_during_the_trial_keeps_the_remaining_trial_days() -> None:
    """The paid period starts when the trial would have ended, not at the upgrade."""
    trial = _trial()
    upgrade_at = T0 + 10 * DAY
    transition = apply(trial, Upgrade("pro", T0 + 61 * DAY, seats=10), upgrade_at, DEFAULT_POLICY)
    record = transition.record
    assert transition.to_state is S.ACTIVE
    assert record.paid_starts_at == T0 + 30 * DAY
    assert record.paid_starts_at - upgrade_at == 20 * DAY
    assert record.trial_started_at == T0
    assert record.trial_ends_at == T0 + 30 * DAY
    assert (record.plan_name, record.seats) == ("pro", 10)
    # Access is continuous across the moment the kept trial days run out.
    assert derive_state(record, T0 + 30 * DAY - US) is S.ACTIVE
    assert derive_state(record, T0 + 30 * DAY) is S.ACTIVE


def test_upgrading_during_the_trial_with_start_now_starts_paying_at_once() -> None:
    """When the admin chooses, the paid period starts at the upgrade."""
    upgrade_at = T0 + 10 * DAY
    record = apply(
        _trial(), Upgrade("pro", T0 + 40 * DAY, start_now=True), upgrade_at, DEFAULT_POLICY
    ).record
    assert record.paid_starts_at == upgrade_at
    assert derive_state(record, upgrade_at) is S.ACTIVE


def test_a_first_period_that_ends_before_the_kept_trial_days_is_refused() -> None:
    """The period end must come after the paid period's start, the trial's end here."""
    with pytest.raises(InvalidInput) as err:
        apply(_trial(), Upgrade("pro", T0 + 30 * DAY), T0 + 10 * DAY, DEFAULT_POLICY)
    assert err.value.code == "plan.invalid_period_end"
    # The same period end is fine when paying starts at once.
    apply(_trial(), Upgrade("pro", T0 + 30 * DAY, start_now=True), T0 + 10 * DAY, DEFAULT_POLICY)


def test_upgrading_after_the_trial_expired_restores_access_at_once() -> None:
    """After expiry there are no days to keep: paying and access start at the upgrade."""
    at = T0 + 45 * DAY
    transition = apply(_trial(), Upgrade("pro", at + 30 * DAY), at, DEFAULT_POLICY)
    assert transition.from_state is S.TRIAL_EXPIRED
    assert transition.effects == (Effect.PLAN_UPGRADED, Effect.ACCESS_RESTORED)
    assert transition.record.paid_starts_at == at
    assert derive_state(transition.record, at) is S.ACTIVE


def test_upgrading_after_the_end_restores_access_and_clears_the_old_end() -> None:
    """An ended plan comes back at once; the cancel and suspension facts are cleared."""
    suspended = apply(_active(), PaymentFailed(), T0 + DAY, DEFAULT_POLICY).record
    ended = apply(suspended, Cancel(), T0 + 2 * DAY, DEFAULT_POLICY).record
    at = T0 + 100 * DAY
    transition = apply(ended, Upgrade("team", at + 365 * DAY, seats=3), at, DEFAULT_POLICY)
    record = transition.record
    assert transition.from_state is S.ENDED
    assert transition.effects == (Effect.PLAN_UPGRADED, Effect.ACCESS_RESTORED)
    assert record.paid_starts_at == at
    assert (record.canceled_at, record.cancel_effective_at, record.ended_at) == (None,) * 3
    assert (record.suspended_at, record.suspended_until) == (None, None)
    assert derive_state(record, at) is S.ACTIVE


def test_an_upgrade_after_a_canceled_trial_does_not_give_back_its_days() -> None:
    """A trial canceled at once is over: a later upgrade pays from the upgrade."""
    ended = apply(_trial(), Cancel(), T0 + DAY, DEFAULT_POLICY).record
    record = apply(ended, Upgrade("pro", T0 + 40 * DAY), T0 + 2 * DAY, DEFAULT_POLICY).record
    assert record.paid_starts_at == T0 + 2 * DAY
    assert record.trial_started_at == T0


# -- cancel and resume ----------------------------------------------------------------------


def test_canceling_a_trial_ends_access_at_once_by_default() -> None:
    """With the default policy a canceled trial is over the moment it is canceled."""
    at = T0 + 5 * DAY
    transition = apply(_trial(), Cancel(), at, DEFAULT_POLICY)
    assert transition.to_state is S.ENDED
    assert transition.effects == (Effect.ACCESS_ENDED,)
    assert transition.record.ended_at == at
    with pytest.raises(InvalidPlanTransition) as err:
        apply(transition.record, Resume(), at, DEFAULT_POLICY)
    assert err.value.code == "plan.invalid_transition.ended.resume"


def test_with_the_policy_flag_off_a_canceled_trial_runs_to_its_end() -> None:
    """The host may let a canceled trial keep its days; it then ends, not expires."""
    transition = apply(_trial(KEEP_TRIAL_ON_CANCEL), Cancel(), T0 + 5 * DAY, KEEP_TRIAL_ON_CANCEL)
    record = transition.record
    assert transition.to_state is S.CANCELING
    assert transition.effects == (Effect.CANCEL_SCHEDULED,)
    assert record.cancel_effective_at == T0 + 30 * DAY
    assert derive_state(record, T0 + 30 * DAY - US) is S.CANCELING
    assert derive_state(record, T0 + 30 * DAY) is S.ENDED


def test_resuming_a_canceled_trial_brings_the_trial_back() -> None:
    """Resume before the end undoes the cancel; the trial still ends when it would have."""
    canceled = apply(
        _trial(KEEP_TRIAL_ON_CANCEL), Cancel(), T0 + 5 * DAY, KEEP_TRIAL_ON_CANCEL
    ).record
    transition = apply(canceled, Resume(), T0 + 6 * DAY, KEEP_TRIAL_ON_CANCEL)
    assert transition.to_state is S.TRIALING
    assert transition.effects == (Effect.CANCEL_UNDONE,)
    assert derive_state(transition.record, T0 + 30 * DAY) is S.TRIAL_EXPIRED


def test_canceling_a_paid_plan_keeps_access_until_the_period_ends() -> None:
    """A paid plan runs to the end of what was paid for."""
    transition = apply(_active(), Cancel(), T0 + DAY, DEFAULT_POLICY)
    assert transition.to_state is S.CANCELING
    assert transition.record.canceled_at == T0 + DAY
    assert transition.record.cancel_effective_at == T0 + 30 * DAY


def test_resume_before_the_period_ends_undoes_the_cancel() -> None:
    """The plan is active again and renews as before."""
    canceled = apply(_active(), Cancel(), T0 + DAY, DEFAULT_POLICY).record
    transition = apply(canceled, Resume(), T0 + 30 * DAY - US, DEFAULT_POLICY)
    assert transition.to_state is S.ACTIVE
    assert (transition.record.canceled_at, transition.record.cancel_effective_at) == (None, None)
    assert derive_state(transition.record, T0 + 30 * DAY + DAY) is S.ACTIVE


def test_resume_at_the_period_end_is_too_late() -> None:
    """At the period end the canceled plan has ended; only an upgrade brings it back."""
    canceled = apply(_active(), Cancel(), T0 + DAY, DEFAULT_POLICY).record
    with pytest.raises(InvalidPlanTransition) as err:
        apply(canceled, Resume(), T0 + 30 * DAY, DEFAULT_POLICY)
    assert err.value.code == "plan.invalid_transition.ended.resume"


def test_canceling_the_kept_trial_days_before_paying_ends_at_once_by_default() -> None:
    """Before the paid period starts nothing is paid, so the trial policy applies."""
    upgraded = apply(_trial(), Upgrade("pro", T0 + 61 * DAY), T0 + 10 * DAY, DEFAULT_POLICY)
    transition = apply(upgraded.record, Cancel(), T0 + 11 * DAY, DEFAULT_POLICY)
    assert transition.to_state is S.ENDED
    assert transition.effects == (Effect.ACCESS_ENDED,)


def test_with_the_flag_off_canceling_the_kept_trial_days_runs_to_the_trial_end() -> None:
    """The kept days stay usable, and the paid period never starts."""
    policy = KEEP_TRIAL_ON_CANCEL
    upgraded = apply(_trial(policy), Upgrade("pro", T0 + 61 * DAY), T0 + 10 * DAY, policy)
    transition = apply(upgraded.record, Cancel(), T0 + 11 * DAY, policy)
    assert transition.to_state is S.CANCELING
    assert transition.record.cancel_effective_at == T0 + 30 * DAY
    assert derive_state(transition.record, T0 + 30 * DAY) is S.ENDED


def test_canceling_during_the_renewal_grace_ends_at_once() -> None:
    """Once the paid period is over, a cancel has nothing left to run to."""
    transition = apply(_active(), Cancel(), T0 + 31 * DAY, DEFAULT_POLICY)
    assert transition.to_state is S.ENDED
    assert transition.effects == (Effect.ACCESS_ENDED,)


def test_canceling_twice_is_refused() -> None:
    """A canceled plan cannot be canceled again; the message says so."""
    canceled = apply(_active(), Cancel(), T0 + DAY, DEFAULT_POLICY).record
    with pytest.raises(InvalidPlanTransition) as err:
        apply(canceled, Cancel(), T0 + 2 * DAY, DEFAULT_POLICY)
    assert "already canceled" in err.value.message


# -- renewals and seats --------------------------------------------------------------------


def test_a_renewal_moves_the_period_end_and_its_grace() -> None:
    """The billing provider's renewal keeps the plan active past the old end."""
    policy = PlanPolicy(renewal_grace=timedelta(days=2))
    record = apply(_active(policy), Renew(T0 + 60 * DAY), T0 + 29 * DAY, policy).record
    assert (record.period_ends_at, record.grace_ends_at) == (T0 + 60 * DAY, T0 + 62 * DAY)
    assert derive_state(record, T0 + 61 * DAY) is S.ACTIVE


def test_a_late_renewal_inside_the_grace_keeps_the_plan() -> None:
    """A webhook that arrives after the period end but within the grace still renews."""
    record = apply(_active(), Renew(T0 + 60 * DAY), T0 + 31 * DAY, DEFAULT_POLICY).record
    assert derive_state(record, T0 + 31 * DAY) is S.ACTIVE


@pytest.mark.parametrize("end", [T0 + 30 * DAY, T0 + 20 * DAY], ids=["same", "earlier"])
def test_a_renewal_that_does_not_move_the_end_forward_is_refused(end: datetime) -> None:
    """A renewal shortening or repeating the period is an integration bug."""
    with pytest.raises(InvalidInput) as err:
        apply(_active(), Renew(end), T0 + DAY, DEFAULT_POLICY)
    assert err.value.code == "plan.invalid_period_end"


def test_seats_change_on_an_active_plan() -> None:
    """A seat change writes the new count and nothing else."""
    before = _active()
    transition = apply(before, ChangeSeats(None), T0 + DAY, DEFAULT_POLICY)
    assert transition.effects == (Effect.SEATS_CHANGED,)
    assert transition.record.seats is None
    assert attrs.evolve(transition.record, seats=10, last_event_at=None) == attrs.evolve(
        before, last_event_at=None
    )


# -- payments --------------------------------------------------------------------------------


def test_a_failed_payment_suspends_and_its_retries_change_nothing() -> None:
    """Only the first failure suspends; retries keep its time and its limit."""
    policy = PlanPolicy(suspension_limit=timedelta(days=10))
    first = apply(_active(policy), PaymentFailed(), T0 + DAY, policy)
    assert first.to_state is S.SUSPENDED
    assert first.effects == (Effect.PLAN_SUSPENDED,)
    again = apply(first.record, PaymentFailed(), T0 + 5 * DAY, policy)
    assert again.to_state is S.SUSPENDED
    assert again.effects == ()
    assert again.record.suspended_at == T0 + DAY
    assert again.record.suspended_until == T0 + 11 * DAY


def test_a_recovered_payment_reactivates_the_plan() -> None:
    """Recovery clears the suspension and the plan is active again."""
    suspended = apply(_active(), PaymentFailed(), T0 + DAY, DEFAULT_POLICY).record
    transition = apply(suspended, PaymentRecovered(), T0 + 2 * DAY, DEFAULT_POLICY)
    assert transition.to_state is S.ACTIVE
    assert transition.effects == (Effect.PLAN_REACTIVATED,)
    assert (transition.record.suspended_at, transition.record.suspended_until) == (None, None)


def test_a_recovery_after_the_period_needs_the_new_period_end() -> None:
    """Without a new period end the plan would come back already ended."""
    suspended = apply(_active(), PaymentFailed(), T0 + 30 * DAY, DEFAULT_POLICY).record
    late = T0 + 40 * DAY
    with pytest.raises(InvalidInput) as err:
        apply(suspended, PaymentRecovered(), late, DEFAULT_POLICY)
    assert err.value.code == "plan.period_end_required"
    record = apply(suspended, PaymentRecovered(T0 + 70 * DAY), late, DEFAULT_POLICY).record
    assert record.period_ends_at == T0 + 70 * DAY
    assert derive_state(record, late) is S.ACTIVE


def test_a_recovered_period_in_the_past_is_refused() -> None:
    """A period end that already passed cannot be what the payment paid for."""
    suspended = apply(_active(), PaymentFailed(), T0 + DAY, DEFAULT_POLICY).record
    with pytest.raises(InvalidInput) as err:
        apply(suspended, PaymentRecovered(T0 + DAY), T0 + 2 * DAY, DEFAULT_POLICY)
    assert err.value.code == "plan.invalid_period_end"


def test_when_billing_gives_up_the_plan_ends_at_once() -> None:
    """The host's give-up ends the plan and its access now."""
    suspended = apply(_active(), PaymentFailed(), T0 + DAY, DEFAULT_POLICY).record
    transition = apply(suspended, GiveUp(), T0 + 9 * DAY, DEFAULT_POLICY)
    assert transition.to_state is S.ENDED
    assert transition.effects == (Effect.ACCESS_ENDED,)
    assert transition.record.ended_at == T0 + 9 * DAY


# -- time and values ----------------------------------------------------------------------


def test_an_event_before_the_last_event_is_applied_at_the_last_event() -> None:
    """Clock skew between hosts never writes a fact earlier than the record's latest."""
    trial = _trial()
    transition = apply(trial, Cancel(), T0 - timedelta(seconds=1), DEFAULT_POLICY)
    assert transition.at == T0
    assert transition.record.ended_at == T0


def test_a_naive_now_is_refused_by_apply() -> None:
    """apply will not guess the zone of a naive datetime."""
    with pytest.raises(InvalidInput) as err:
        apply(PlanRecord(), StartTrial(), datetime(2024, 3, 1), DEFAULT_POLICY)
    assert err.value.code == "plan.naive_datetime"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Upgrade("pro", datetime(2024, 4, 1)),
        lambda: Renew(datetime(2024, 4, 1)),
        lambda: PaymentRecovered(datetime(2024, 4, 1)),
        lambda: PlanRecord(trial_started_at=datetime(2024, 4, 1)),
    ],
    ids=["upgrade", "renew", "payment_recovered", "record"],
)
def test_naive_datetimes_in_events_and_records_are_refused(build: object) -> None:
    """Every timestamp that enters the machine must be aware."""
    with pytest.raises(InvalidInput) as err:
        build()  # type: ignore[operator]
    assert err.value.code == "plan.naive_datetime"


def test_aware_datetimes_are_stored_in_utc() -> None:
    """Stored times are UTC whatever zone the caller used, so keys built from them agree."""
    tokyo = timezone(timedelta(hours=9))
    event = Upgrade("pro", datetime(2024, 4, 1, 9, 0, tzinfo=tokyo))
    assert event.period_ends_at == datetime(2024, 4, 1, 0, 0, tzinfo=UTC)
    assert event.period_ends_at.tzinfo is UTC


@pytest.mark.parametrize("seats", [0, -1, True, 2.5])
def test_seat_counts_must_be_positive_whole_numbers(seats: object) -> None:
    """Zero, negative, boolean and fractional seat counts are refused."""
    with pytest.raises(InvalidInput) as err:
        ChangeSeats(seats)  # type: ignore[arg-type]
    assert err.value.code == "plan.invalid_seats"


def test_an_empty_plan_name_is_refused() -> None:
    """A paid plan needs the host's name for it."""
    with pytest.raises(InvalidInput):
        Upgrade(" ", T0 + DAY)


@pytest.mark.parametrize(
    "fields",
    [
        {"trial_started_at": T0, "last_event_at": T0},
        {"trial_started_at": T0, "trial_ends_at": T0, "last_event_at": T0},
        {"paid_starts_at": T0, "period_ends_at": T0 + DAY},
        {"canceled_at": T0, "last_event_at": T0},
        {"ended_at": T0 + DAY, "last_event_at": T0},
        {"suspended_until": T0 + DAY},
    ],
    ids=["trial-half", "trial-empty", "paid-no-grace", "cancel-half", "future-end", "until"],
)
def test_inconsistent_records_are_refused(fields: dict[str, datetime]) -> None:
    """A record whose facts contradict each other cannot be built, e.g. from bad storage."""
    with pytest.raises(InvalidInput) as err:
        PlanRecord(**fields)  # type: ignore[arg-type]
    assert err.value.code == "plan.invalid_record"


@pytest.mark.parametrize(
    "fields",
    [
        {"trial_length": timedelta(0)},
        {"trial_seats": 0},
        {"trial_reminder_before": timedelta(days=-1)},
        {"renewal_grace": timedelta(seconds=-1)},
        {"suspension_limit": timedelta(0)},
    ],
)
def test_a_policy_with_impossible_values_is_a_configuration_error(
    fields: dict[str, object],
) -> None:
    """The integrator's mistake is reported as such, naming the field."""
    with pytest.raises(ConfigurationError) as err:
        PlanPolicy(**fields)  # type: ignore[arg-type]
    assert next(iter(fields)) in err.value.message
