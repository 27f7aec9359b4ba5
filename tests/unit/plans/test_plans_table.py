"""Every (state, event) pair: the table's verdict, and apply's agreement with it."""

from __future__ import annotations

import itertools

import pytest

from nulabpass.errors import Conflict
from nulabpass.plans import (
    GUARD_LABELS,
    TIME_TRANSITIONS,
    TRANSITIONS,
    Effect,
    EventKind,
    Guard,
    InvalidPlanTransition,
    PlanPolicy,
    PlanState,
    allowed_events,
    apply,
    derive_state,
)

from .conftest import StateBuilder, build_event, build_record_in

S, E, F = PlanState, EventKind, Effect

# The rules of the issue, written out independently of the package's table: for each
# valid pair, every state it may lead to. A pair missing here must be refused.
EXPECTED_TARGETS: dict[tuple[PlanState, EventKind], set[PlanState]] = {
    (S.NONE, E.START_TRIAL): {S.TRIALING},
    (S.NONE, E.UPGRADE): {S.ACTIVE},
    (S.TRIALING, E.UPGRADE): {S.ACTIVE},
    (S.TRIALING, E.CANCEL): {S.ENDED, S.CANCELING},
    (S.TRIAL_EXPIRED, E.UPGRADE): {S.ACTIVE},
    (S.ACTIVE, E.RENEW): {S.ACTIVE},
    (S.ACTIVE, E.CHANGE_SEATS): {S.ACTIVE},
    (S.ACTIVE, E.CANCEL): {S.ENDED, S.CANCELING},
    (S.ACTIVE, E.PAYMENT_FAILED): {S.SUSPENDED},
    (S.SUSPENDED, E.PAYMENT_FAILED): {S.SUSPENDED},
    (S.SUSPENDED, E.PAYMENT_RECOVERED): {S.ACTIVE},
    (S.SUSPENDED, E.CANCEL): {S.ENDED},
    (S.SUSPENDED, E.GIVE_UP): {S.ENDED},
    (S.CANCELING, E.RESUME): {S.TRIALING, S.ACTIVE},
    (S.ENDED, E.UPGRADE): {S.ACTIVE},
}

# What each valid pair does in the scenario conftest builds, under the default policy.
EXPECTED_DEFAULT: dict[tuple[PlanState, EventKind], tuple[PlanState, tuple[Effect, ...]]] = {
    (S.NONE, E.START_TRIAL): (S.TRIALING, (F.TRIAL_STARTED,)),
    (S.NONE, E.UPGRADE): (S.ACTIVE, (F.PLAN_UPGRADED,)),
    (S.TRIALING, E.UPGRADE): (S.ACTIVE, (F.PLAN_UPGRADED,)),
    (S.TRIALING, E.CANCEL): (S.ENDED, (F.ACCESS_ENDED,)),
    (S.TRIAL_EXPIRED, E.UPGRADE): (S.ACTIVE, (F.PLAN_UPGRADED, F.ACCESS_RESTORED)),
    (S.ACTIVE, E.RENEW): (S.ACTIVE, (F.PERIOD_RENEWED,)),
    (S.ACTIVE, E.CHANGE_SEATS): (S.ACTIVE, (F.SEATS_CHANGED,)),
    (S.ACTIVE, E.CANCEL): (S.CANCELING, (F.CANCEL_SCHEDULED,)),
    (S.ACTIVE, E.PAYMENT_FAILED): (S.SUSPENDED, (F.PLAN_SUSPENDED,)),
    (S.SUSPENDED, E.PAYMENT_FAILED): (S.SUSPENDED, ()),
    (S.SUSPENDED, E.PAYMENT_RECOVERED): (S.ACTIVE, (F.PLAN_REACTIVATED,)),
    (S.SUSPENDED, E.CANCEL): (S.ENDED, (F.ACCESS_ENDED,)),
    (S.SUSPENDED, E.GIVE_UP): (S.ENDED, (F.ACCESS_ENDED,)),
    (S.CANCELING, E.RESUME): (S.ACTIVE, (F.CANCEL_UNDONE,)),
    (S.ENDED, E.UPGRADE): (S.ACTIVE, (F.PLAN_UPGRADED, F.ACCESS_RESTORED)),
}

ALL_PAIRS = list(itertools.product(PlanState, EventKind))


def test_the_table_holds_exactly_the_valid_pairs_of_the_rules() -> None:
    """The table's keys are the issue's valid pairs, no more and no fewer."""
    assert set(TRANSITIONS) == set(EXPECTED_TARGETS)


@pytest.mark.parametrize(("state", "kind"), sorted(EXPECTED_TARGETS))
def test_each_valid_cell_leads_only_to_the_states_the_rules_allow(
    state: PlanState, kind: EventKind
) -> None:
    """A cell's outcomes name exactly the states the rules allow for its pair."""
    assert {outcome.target for outcome in TRANSITIONS[state, kind]} == EXPECTED_TARGETS[
        state, kind
    ]


@pytest.mark.parametrize(("state", "kind"), ALL_PAIRS, ids=[f"{s}-{k}" for s, k in ALL_PAIRS])
def test_apply_follows_the_table_for_every_state_and_event(
    state: PlanState, kind: EventKind, record_in: StateBuilder
) -> None:
    """Valid pairs move as the table says; every other pair raises InvalidPlanTransition."""
    record, now = record_in(state)
    assert derive_state(record, now) is state
    event = build_event(kind, now)
    if (state, kind) in EXPECTED_DEFAULT:
        transition = apply(record, event, now, PlanPolicy())
        target, effects = EXPECTED_DEFAULT[state, kind]
        assert transition.from_state is state
        assert transition.to_state is target
        assert transition.effects == effects
        assert derive_state(transition.record, now) is target
        assert transition.record.last_event_at == now
        assert transition.event is event
    else:
        with pytest.raises(InvalidPlanTransition) as err:
            apply(record, event, now, PlanPolicy())
        assert err.value.code == f"plan.invalid_transition.{state}.{kind}"
        assert dict(err.value.details) == {"state": str(state), "event": str(kind)}
        assert err.value.state is state
        assert err.value.event is kind
        assert f"the organization's plan is {state}" in err.value.message
        assert kind not in allowed_events(state)


def test_invalid_transition_is_a_conflict_whose_message_names_state_and_event() -> None:
    """The error reads as the issue's example and maps to HTTP 409."""
    record, now = build_record_in(S.TRIAL_EXPIRED, PlanPolicy())
    with pytest.raises(InvalidPlanTransition) as err:
        apply(record, build_event(E.CANCEL, now), now, PlanPolicy())
    error = err.value
    assert isinstance(error, Conflict)
    assert error.http_status == 409
    assert error.code == "plan.invalid_transition.trial_expired.cancel"
    assert error.code.startswith(InvalidPlanTransition.default_code + ".")
    assert error.message.startswith("cannot cancel: the organization's plan is trial_expired")


@pytest.mark.parametrize("state", list(PlanState))
def test_allowed_events_lists_the_table_row_of_a_state(state: PlanState) -> None:
    """allowed_events(state) is the set of events the rules accept in that state."""
    assert allowed_events(state) == {k for (s, k) in EXPECTED_TARGETS if s is state}


@pytest.mark.parametrize(("state", "kind"), sorted(TRANSITIONS))
def test_each_cell_ends_with_one_unguarded_outcome_and_repeats_no_guard(
    state: PlanState, kind: EventKind
) -> None:
    """Guards are tried in order, so the fallback must come last and be the only one."""
    guards = [outcome.guard for outcome in TRANSITIONS[state, kind]]
    assert guards[-1] is None
    assert None not in guards[:-1]
    assert len(set(guards)) == len(guards)


def test_every_guard_is_used_and_labelled() -> None:
    """No guard is dead code, and each has a label for the docs."""
    used = {o.guard for cell in TRANSITIONS.values() for o in cell if o.guard is not None}
    assert used == set(Guard)
    assert set(GUARD_LABELS) == set(Guard)


def test_time_moves_only_forward_toward_expiry_or_end() -> None:
    """Time edges lead from running states to trial_expired or ended, never back."""
    assert {(s, e.target) for s, edges in TIME_TRANSITIONS.items() for e in edges} == {
        (S.TRIALING, S.TRIAL_EXPIRED),
        (S.CANCELING, S.ENDED),
        (S.ACTIVE, S.ENDED),
        (S.SUSPENDED, S.ENDED),
    }


@pytest.mark.parametrize("state", [S.TRIALING, S.TRIAL_EXPIRED, S.ACTIVE, S.CANCELING, S.ENDED])
def test_a_second_trial_is_refused_in_every_state_after_the_first(state: PlanState) -> None:
    """start_trial is valid in none only: an organization never gets two trials."""
    record, now = build_record_in(state, PlanPolicy())
    with pytest.raises(InvalidPlanTransition) as err:
        apply(record, build_event(E.START_TRIAL, now), now, PlanPolicy())
    assert err.value.code == f"plan.invalid_transition.{state}.start_trial"
    assert "one free trial" in err.value.message
