"""due_effects and next_due_at: effects that time alone brings, found exactly once."""

from __future__ import annotations

from datetime import timedelta

from nulabpass.plans import (
    DEFAULT_POLICY,
    Cancel,
    DueEffect,
    DueKind,
    GiveUp,
    PaymentFailed,
    PlanPolicy,
    PlanRecord,
    StartTrial,
    Upgrade,
    apply,
    due_effects,
    next_due_at,
)

from .conftest import DAY, T0, US

TRIAL_END = T0 + 30 * DAY
TRIAL_END_KEY = TRIAL_END.isoformat()


def _trial(policy: PlanPolicy = DEFAULT_POLICY) -> PlanRecord:
    return apply(PlanRecord(), StartTrial(), T0, policy).record


def _keys(effects: list[DueEffect]) -> set[str]:
    return {effect.key for effect in effects}


def test_nothing_is_due_for_an_organization_without_a_plan() -> None:
    """An empty record has no trial to remind about and no plan to end."""
    assert due_effects(PlanRecord(), T0 + 100 * DAY, frozenset(), DEFAULT_POLICY) == []
    assert next_due_at(PlanRecord(), T0, DEFAULT_POLICY) is None


def test_the_trial_reminder_falls_due_three_days_before_the_end() -> None:
    """Before the reminder time nothing is due; from it, the reminder is."""
    trial = _trial()
    remind_at = TRIAL_END - 3 * DAY
    assert due_effects(trial, remind_at - US, frozenset(), DEFAULT_POLICY) == []
    assert due_effects(trial, remind_at, frozenset(), DEFAULT_POLICY) == [
        DueEffect(DueKind.TRIAL_ENDING_SOON, f"trial_ending_soon:{TRIAL_END_KEY}", remind_at)
    ]


def test_the_reminder_is_found_once_when_the_caller_passes_back_its_key() -> None:
    """Calling twice with the emitted keys emits nothing new."""
    trial = _trial()
    first = due_effects(trial, TRIAL_END - DAY, frozenset(), DEFAULT_POLICY)
    assert [effect.kind for effect in first] == [DueKind.TRIAL_ENDING_SOON]
    assert due_effects(trial, TRIAL_END - DAY, _keys(first), DEFAULT_POLICY) == []
    assert due_effects(trial, TRIAL_END - US, _keys(first), DEFAULT_POLICY) == []


def test_the_trial_expiry_falls_due_at_the_trial_end_and_only_once() -> None:
    """At the end the expiry is due; a reminder that was never sent is not sent late."""
    trial = _trial()
    assert due_effects(trial, TRIAL_END, frozenset(), DEFAULT_POLICY) == [
        DueEffect(DueKind.TRIAL_EXPIRED, f"trial_expired:{TRIAL_END_KEY}", TRIAL_END)
    ]
    emitted = {f"trial_expired:{TRIAL_END_KEY}"}
    assert due_effects(trial, TRIAL_END + 10 * DAY, emitted, DEFAULT_POLICY) == []


def test_a_zero_reminder_lead_disables_the_reminder() -> None:
    """With no lead time the trial goes from running to expired without a reminder."""
    policy = PlanPolicy(trial_reminder_before=timedelta(0))
    trial = _trial(policy)
    assert due_effects(trial, TRIAL_END - US, frozenset(), policy) == []


def test_an_upgraded_trial_gets_no_trial_reminder_and_no_expiry() -> None:
    """Once a paid plan is bought, the trial's end is not news."""
    record = apply(_trial(), Upgrade("pro", T0 + 61 * DAY), T0 + 10 * DAY, DEFAULT_POLICY).record
    assert due_effects(record, TRIAL_END - DAY, frozenset(), DEFAULT_POLICY) == []
    assert due_effects(record, TRIAL_END + DAY, frozenset(), DEFAULT_POLICY) == []


def test_a_canceled_plan_ending_at_its_period_end_is_due_once() -> None:
    """The end of a canceled paid plan is found at its period end, with a stable key."""
    period_end = T0 + 30 * DAY
    active = apply(PlanRecord(), Upgrade("pro", period_end), T0, DEFAULT_POLICY).record
    canceled = apply(active, Cancel(), T0 + DAY, DEFAULT_POLICY).record
    assert due_effects(canceled, period_end - US, frozenset(), DEFAULT_POLICY) == []
    found = due_effects(canceled, period_end, frozenset(), DEFAULT_POLICY)
    assert found == [
        DueEffect(DueKind.PLAN_ENDED, f"plan_ended:{period_end.isoformat()}", period_end)
    ]
    assert due_effects(canceled, period_end + DAY, _keys(found), DEFAULT_POLICY) == []


def test_an_unrenewed_plan_ending_after_its_grace_is_due() -> None:
    """A period that lapses without a renewal ends the plan when the grace runs out."""
    active = apply(PlanRecord(), Upgrade("pro", T0 + 30 * DAY), T0, DEFAULT_POLICY).record
    grace_end = T0 + 33 * DAY
    assert due_effects(active, grace_end - US, frozenset(), DEFAULT_POLICY) == []
    [effect] = due_effects(active, grace_end, frozenset(), DEFAULT_POLICY)
    assert (effect.kind, effect.due_at) == (DueKind.PLAN_ENDED, grace_end)


def test_ends_caused_by_an_event_are_not_reported_again_as_due() -> None:
    """A give-up reports ACCESS_ENDED from apply; due_effects must not repeat it."""
    active = apply(PlanRecord(), Upgrade("pro", T0 + 30 * DAY), T0, DEFAULT_POLICY).record
    suspended = apply(active, PaymentFailed(), T0 + DAY, DEFAULT_POLICY).record
    ended = apply(suspended, GiveUp(), T0 + 2 * DAY, DEFAULT_POLICY).record
    assert due_effects(ended, T0 + 100 * DAY, frozenset(), DEFAULT_POLICY) == []
    trial_ended = apply(_trial(), Cancel(), T0 + DAY, DEFAULT_POLICY).record
    assert due_effects(trial_ended, T0 + 100 * DAY, frozenset(), DEFAULT_POLICY) == []


def test_a_second_paid_plan_ends_under_a_new_key() -> None:
    """Keys name the instant, so a later plan's end is not mistaken for an earlier one's."""
    active = apply(PlanRecord(), Upgrade("pro", T0 + 30 * DAY), T0, DEFAULT_POLICY).record
    first = due_effects(active, T0 + 40 * DAY, frozenset(), DEFAULT_POLICY)
    again = apply(active, Upgrade("pro", T0 + 80 * DAY), T0 + 50 * DAY, DEFAULT_POLICY).record
    second = due_effects(again, T0 + 90 * DAY, _keys(first), DEFAULT_POLICY)
    assert [effect.kind for effect in second] == [DueKind.PLAN_ENDED]
    assert _keys(first).isdisjoint(_keys(second))


def test_next_due_at_walks_the_trial_from_reminder_to_expiry() -> None:
    """The next instant is the reminder, then the end, then nothing."""
    trial = _trial()
    assert next_due_at(trial, T0, DEFAULT_POLICY) == TRIAL_END - 3 * DAY
    assert next_due_at(trial, TRIAL_END - 3 * DAY, DEFAULT_POLICY) == TRIAL_END
    assert next_due_at(trial, TRIAL_END, DEFAULT_POLICY) is None


def test_next_due_at_of_a_paid_plan_is_its_end_by_time() -> None:
    """For an active plan it is the grace end; for a canceled one the cancel's effect."""
    active = apply(PlanRecord(), Upgrade("pro", T0 + 30 * DAY), T0, DEFAULT_POLICY).record
    assert next_due_at(active, T0 + DAY, DEFAULT_POLICY) == T0 + 33 * DAY
    canceled = apply(active, Cancel(), T0 + DAY, DEFAULT_POLICY).record
    assert next_due_at(canceled, T0 + DAY, DEFAULT_POLICY) == T0 + 30 * DAY
    assert next_due_at(canceled, T0 + 30 * DAY, DEFAULT_POLICY) is None
