"""Random sequences of plan events and time jumps keep the plan machine's promises.

The expectations here are written out independently of the package's tables: the valid
(state, event) pairs, the entitlement rows of the issue and the forward-only time edges.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from nulabpass.errors import InvalidInput, SeatLimitExceeded
from nulabpass.plans import (
    Cancel,
    Capability,
    ChangeSeats,
    DueKind,
    EventKind,
    GiveUp,
    InvalidPlanTransition,
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
    derive_state,
    due_effects,
    entitled,
    next_due_at,
    require_seat,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
DAY = timedelta(days=1)
S, E = PlanState, EventKind

VALID: dict[tuple[PlanState, EventKind], set[PlanState]] = {
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

# Only events that carry a period end can be refused for their values.
VALUE_CHECKED = {E.UPGRADE, E.RENEW, E.PAYMENT_RECOVERED}

LATER_BY_TIME: dict[PlanState, set[PlanState]] = {
    S.NONE: {S.NONE},
    S.TRIALING: {S.TRIALING, S.TRIAL_EXPIRED},
    S.TRIAL_EXPIRED: {S.TRIAL_EXPIRED},
    S.ACTIVE: {S.ACTIVE, S.ENDED},
    S.SUSPENDED: {S.SUSPENDED, S.ENDED},
    S.CANCELING: {S.CANCELING, S.ENDED},
    S.ENDED: {S.ENDED},
}

_Y, _N = True, False
ALLOWED: dict[Capability, dict[PlanState, bool]] = {
    capability: dict(zip(S, row, strict=True))
    for capability, row in {
        # none trialing expired active suspended canceling ended
        Capability.SIGN_IN: (_N, _Y, _N, _Y, _Y, _Y, _N),
        Capability.MANAGE_ACCOUNTS: (_N, _Y, _N, _Y, _N, _Y, _N),
        Capability.CONFIGURE_SSO: (_N, _Y, _N, _Y, _N, _Y, _N),
        Capability.READ_AUDIT: (_N, _Y, _N, _Y, _N, _Y, _N),
        Capability.RECORD_AUDIT: (_Y, _Y, _Y, _Y, _Y, _Y, _Y),
    }.items()
}
MANAGEMENT = {Capability.MANAGE_ACCOUNTS, Capability.CONFIGURE_SSO, Capability.READ_AUDIT}

policies = st.builds(
    PlanPolicy,
    trial_length=st.sampled_from([DAY, 14 * DAY, 30 * DAY]),
    trial_seats=st.sampled_from([None, 3]),
    trial_cancel_ends_access_at_once=st.booleans(),
    trial_reminder_before=st.sampled_from([timedelta(0), 3 * DAY]),
    renewal_grace=st.sampled_from([timedelta(0), 3 * DAY]),
    suspension_limit=st.sampled_from([None, 10 * DAY]),
)
steps = st.one_of(
    st.sampled_from([US, timedelta(hours=1), DAY, 3 * DAY, 10 * DAY, 40 * DAY]),
    st.timedeltas(min_value=timedelta(0), max_value=60 * DAY),
)
BOUNDARY_FIELDS = (
    "trial_ends_at",
    "paid_starts_at",
    "period_ends_at",
    "grace_ends_at",
    "cancel_effective_at",
    "suspended_until",
)


class PlanMachine(RuleBasedStateMachine):
    """Drives one organization's plan through random events and the passage of time."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = PlanPolicy()
        self.record = PlanRecord()
        self.now = T0
        self.trials_started = 0
        self.managed = 0
        self.notified: set[str] = set()

    @initialize(policy=policies)
    def choose_policy(self, policy: PlanPolicy) -> None:
        self.policy = policy

    # -- time -------------------------------------------------------------------------

    @rule(step=steps)
    def wait(self, step: timedelta) -> None:
        self.now += step

    @rule(field=st.sampled_from(BOUNDARY_FIELDS), offset=st.sampled_from([-US, 0 * US, US]))
    def jump_to_a_boundary(self, field: str, offset: timedelta) -> None:
        """Land just before, at or just after an instant the record names."""
        instant: datetime | None = getattr(self.record, field)
        if instant is not None and instant + offset > self.now:
            self.now = instant + offset

    # -- events -----------------------------------------------------------------------

    def _event(self, kind: EventKind, days: int, seats: int | None, start_now: bool) -> PlanEvent:
        period_end = self.now + days * DAY
        events: dict[EventKind, PlanEvent] = {
            E.START_TRIAL: StartTrial(),
            E.UPGRADE: Upgrade("pro", period_end, seats=seats, start_now=start_now),
            E.RENEW: Renew(period_end),
            E.CHANGE_SEATS: ChangeSeats(seats),
            E.CANCEL: Cancel(),
            E.RESUME: Resume(),
            E.PAYMENT_FAILED: PaymentFailed(),
            E.PAYMENT_RECOVERED: PaymentRecovered(period_end if days > 0 else None),
            E.GIVE_UP: GiveUp(),
        }
        return events[kind]

    @rule(
        kind=st.sampled_from(EventKind),
        days=st.integers(min_value=-5, max_value=120),
        seats=st.sampled_from([None, 1, 2, 5, 50]),
        start_now=st.booleans(),
        skew=st.sampled_from([timedelta(0), timedelta(0), timedelta(seconds=2)]),
    )
    def send_any_event(
        self, kind: EventKind, days: int, seats: int | None, start_now: bool, skew: timedelta
    ) -> None:
        """Any event at all: most are refused, and must be refused exactly as the rules say."""
        self._send(kind, days, seats, start_now, skew)

    @rule(
        data=st.data(),
        days=st.integers(min_value=1, max_value=120),
        seats=st.sampled_from([None, 1, 2, 5, 50]),
        start_now=st.booleans(),
    )
    def send_an_allowed_event(
        self, data: st.DataObject, days: int, seats: int | None, start_now: bool
    ) -> None:
        """An event the current state accepts, so that every valid path gets exercised."""
        state = derive_state(self.record, self.now)
        allowed = sorted(kind for (source, kind) in VALID if source is state)
        if allowed:
            kind = data.draw(st.sampled_from(allowed), label="kind")
            self._send(kind, days, seats, start_now, timedelta(0))

    def _send(
        self, kind: EventKind, days: int, seats: int | None, start_now: bool, skew: timedelta
    ) -> None:
        """Apply an event, possibly from a host whose clock lags by a little."""
        plan_event = self._event(kind, days, seats, start_now)
        at = self.now - skew
        before = self.record
        state = derive_state(before, at)
        if kind is E.START_TRIAL and (before.trial_used or before.has_paid_plan):
            assert (state, kind) not in VALID
        if (state, kind) not in VALID:
            with pytest.raises(InvalidPlanTransition) as err:
                apply(before, plan_event, at, self.policy)
            assert err.value.code == f"plan.invalid_transition.{state}.{kind}"
            return
        try:
            transition = apply(before, plan_event, at, self.policy)
        except InvalidInput:
            # A period end that is not ahead: the only refusal left for a valid pair.
            assert kind in VALUE_CHECKED
            return
        note_event(f"{state} --{kind}--> {transition.to_state}")
        assert transition.from_state is state
        assert transition.to_state in VALID[state, kind]
        assert derive_state(transition.record, at) is transition.to_state
        assert before.last_event_at is None or transition.at >= before.last_event_at
        if before.trial_started_at is not None:
            assert transition.record.trial_started_at == before.trial_started_at
            assert transition.record.trial_ends_at == before.trial_ends_at
        if kind is E.START_TRIAL:
            self.trials_started += 1
        self.record = transition.record

    # -- managed accounts and seats --------------------------------------------------------

    @rule(adding=st.integers(min_value=0, max_value=4))
    def add_managed_accounts(self, adding: int) -> None:
        seats = self.record.seats
        fits = seats is None or self.managed + adding <= seats
        try:
            require_seat(self.managed, seats, adding)
        except SeatLimitExceeded:
            assert not fits
            return
        assert fits
        self.managed += adding

    @precondition(lambda self: self.managed > 0)
    @rule()
    def release_a_managed_account(self) -> None:
        self.managed -= 1

    # -- time-driven effects -------------------------------------------------------------

    @rule()
    def poll_due_effects(self) -> None:
        """Due effects fit the state, come once, and nothing more is due before next_due_at."""
        state = derive_state(self.record, self.now)
        found = due_effects(self.record, self.now, self.notified, self.policy)
        keys = [effect.key for effect in found]
        assert len(keys) == len(set(keys))
        assert self.notified.isdisjoint(keys)
        for effect in found:
            assert effect.due_at <= max(self.now, self.record.last_event_at or self.now)
            expected_state = {
                DueKind.TRIAL_ENDING_SOON: S.TRIALING,
                DueKind.TRIAL_EXPIRED: S.TRIAL_EXPIRED,
                DueKind.PLAN_ENDED: S.ENDED,
            }[effect.kind]
            assert state is expected_state
        self.notified.update(keys)
        assert due_effects(self.record, self.now, self.notified, self.policy) == []
        upcoming = next_due_at(self.record, self.now, self.policy)
        if upcoming is not None:
            assert upcoming > self.now
            just_before = max(upcoming - US, self.now)
            assert derive_state(self.record, just_before) is state
            assert due_effects(self.record, just_before, self.notified, self.policy) == []

    @rule(
        first=st.timedeltas(min_value=timedelta(0), max_value=90 * DAY),
        gap=st.timedeltas(min_value=timedelta(0), max_value=90 * DAY),
    )
    def time_only_moves_states_forward(self, first: timedelta, gap: timedelta) -> None:
        earlier = derive_state(self.record, self.now + first)
        later = derive_state(self.record, self.now + first + gap)
        assert later in LATER_BY_TIME[earlier]

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def never_two_trials(self) -> None:
        assert self.trials_started <= 1
        assert self.record.trial_used is (self.trials_started == 1)

    @invariant()
    def entitlements_are_the_table_for_the_derived_state(self) -> None:
        state = derive_state(self.record, self.now)
        seats = self.record.seats
        over = seats is not None and self.managed > seats
        for capability in Capability:
            expected = ALLOWED[capability][state] and not (over and capability in MANAGEMENT)
            assert entitled(state, capability, managed_count=self.managed, seats=seats) is expected


PlanMachine.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPlanMachine = PlanMachine.TestCase
