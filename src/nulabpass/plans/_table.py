"""The transition table: (state, event) -> ordered outcomes, and the edges time takes.

The machine and the documentation both read these literals: ``apply`` looks the pair up
and takes the first outcome whose guard holds, and the diagram in ``docs/plans.md`` is
drawn from the same rows. A pair that is absent is an invalid transition.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from nulabpass.plans._model import Effect, EventKind, PlanState

__all__ = ["GUARD_LABELS", "TIME_TRANSITIONS", "TRANSITIONS", "Guard", "Outcome", "TimeEdge"]


class Guard(enum.StrEnum):
    """A named condition that chooses between a table cell's outcomes.

    Guards read only the record, the time and the policy; their predicates live beside
    :func:`~nulabpass.plans.apply`.
    """

    #: The policy ends a canceled trial at once.
    TRIAL_CANCEL_ENDS_AT_ONCE = "trial_cancel_ends_at_once"
    #: The paid period has not started (the organization is on its kept trial days) and
    #: the policy ends a canceled trial at once.
    KEPT_TRIAL_CANCEL_ENDS_AT_ONCE = "kept_trial_cancel_ends_at_once"
    #: The paid period is over and only the renewal grace is running.
    PAID_PERIOD_OVER = "paid_period_over"
    #: The canceled plan was a trial: no paid plan was ever bought.
    NO_PAID_PLAN = "no_paid_plan"


#: Short phrases for the diagram and the generated table.
GUARD_LABELS: Mapping[Guard, str] = MappingProxyType(
    {
        Guard.TRIAL_CANCEL_ENDS_AT_ONCE: "policy ends canceled trials at once",
        Guard.KEPT_TRIAL_CANCEL_ENDS_AT_ONCE: (
            "paid period not started, policy ends canceled trials at once"
        ),
        Guard.PAID_PERIOD_OVER: "paid period over, in renewal grace",
        Guard.NO_PAID_PLAN: "no paid plan bought",
    }
)


@attrs.frozen(slots=True)
class Outcome:
    """One possible result of an event in a state: the new state and its effects.

    ``guard`` is ``None`` for the unconditional (or "else") outcome, which is always the
    last of a cell.
    """

    target: PlanState
    effects: tuple[Effect, ...]
    guard: Guard | None = None


@attrs.frozen(slots=True)
class TimeEdge:
    """A change of derived state that the passage of time alone causes."""

    target: PlanState
    #: The recorded instant whose passing causes it, as the docs show it.
    when: str


_S = PlanState
_E = EventKind
_F = Effect

#: state x event -> outcomes, tried in order. Every pair missing here is invalid.
TRANSITIONS: Mapping[tuple[PlanState, EventKind], tuple[Outcome, ...]] = MappingProxyType(
    {
        # One trial per organization: only ``none`` accepts start_trial, and ``none``
        # is derived only from a record that has never had a trial or a plan.
        (_S.NONE, _E.START_TRIAL): (Outcome(_S.TRIALING, (_F.TRIAL_STARTED,)),),
        (_S.NONE, _E.UPGRADE): (Outcome(_S.ACTIVE, (_F.PLAN_UPGRADED,)),),
        # The paid period starts when the trial ends unless the upgrade says start_now.
        (_S.TRIALING, _E.UPGRADE): (Outcome(_S.ACTIVE, (_F.PLAN_UPGRADED,)),),
        (_S.TRIALING, _E.CANCEL): (
            Outcome(_S.ENDED, (_F.ACCESS_ENDED,), Guard.TRIAL_CANCEL_ENDS_AT_ONCE),
            Outcome(_S.CANCELING, (_F.CANCEL_SCHEDULED,)),
        ),
        (_S.TRIAL_EXPIRED, _E.UPGRADE): (
            Outcome(_S.ACTIVE, (_F.PLAN_UPGRADED, _F.ACCESS_RESTORED)),
        ),
        (_S.ACTIVE, _E.RENEW): (Outcome(_S.ACTIVE, (_F.PERIOD_RENEWED,)),),
        (_S.ACTIVE, _E.CHANGE_SEATS): (Outcome(_S.ACTIVE, (_F.SEATS_CHANGED,)),),
        (_S.ACTIVE, _E.CANCEL): (
            # Nothing paid is left to run: the period is over (grace only), or it has not
            # started and the kept trial days are canceled like a trial.
            Outcome(_S.ENDED, (_F.ACCESS_ENDED,), Guard.PAID_PERIOD_OVER),
            Outcome(_S.ENDED, (_F.ACCESS_ENDED,), Guard.KEPT_TRIAL_CANCEL_ENDS_AT_ONCE),
            Outcome(_S.CANCELING, (_F.CANCEL_SCHEDULED,)),
        ),
        (_S.ACTIVE, _E.PAYMENT_FAILED): (Outcome(_S.SUSPENDED, (_F.PLAN_SUSPENDED,)),),
        # Billing providers report every failed retry; only the first one suspends.
        (_S.SUSPENDED, _E.PAYMENT_FAILED): (Outcome(_S.SUSPENDED, ()),),
        (_S.SUSPENDED, _E.PAYMENT_RECOVERED): (Outcome(_S.ACTIVE, (_F.PLAN_REACTIVATED,)),),
        # The payment that failed paid for nothing, so no paid period is left to run.
        (_S.SUSPENDED, _E.CANCEL): (Outcome(_S.ENDED, (_F.ACCESS_ENDED,)),),
        (_S.SUSPENDED, _E.GIVE_UP): (Outcome(_S.ENDED, (_F.ACCESS_ENDED,)),),
        (_S.CANCELING, _E.RESUME): (
            Outcome(_S.TRIALING, (_F.CANCEL_UNDONE,), Guard.NO_PAID_PLAN),
            Outcome(_S.ACTIVE, (_F.CANCEL_UNDONE,)),
        ),
        (_S.ENDED, _E.UPGRADE): (Outcome(_S.ACTIVE, (_F.PLAN_UPGRADED, _F.ACCESS_RESTORED)),),
    }
)

#: state -> the states time alone can move it to. derive_state is monotone along these:
#: for a fixed record, a later instant gives the same state or one of its time edges'.
TIME_TRANSITIONS: Mapping[PlanState, tuple[TimeEdge, ...]] = MappingProxyType(
    {
        _S.TRIALING: (TimeEdge(_S.TRIAL_EXPIRED, "trial_ends_at"),),
        _S.CANCELING: (TimeEdge(_S.ENDED, "cancel_effective_at"),),
        # The period end plus the renewal grace, passed without a renewal.
        _S.ACTIVE: (TimeEdge(_S.ENDED, "grace_ends_at"),),
        # Only when the policy set a suspension limit; otherwise billing's give-up decides.
        _S.SUSPENDED: (TimeEdge(_S.ENDED, "suspended_until"),),
    }
)
