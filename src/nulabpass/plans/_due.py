"""Effects that fall due by time alone, found idempotently from the record and ``now``."""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

from nulabpass.plans._machine import derive_state, effective_time, time_end
from nulabpass.plans._model import DueEffect, DueKind, PlanPolicy, PlanRecord, PlanState

__all__ = ["due_effects", "next_due_at"]


def _key(kind: DueKind, at: datetime) -> str:
    # The instant is the identity: one trial has one end, and every paid plan's end is
    # a distinct instant, so a second plan's end never collides with the first's.
    return f"{kind}:{at.isoformat()}"


def due_effects(
    record: PlanRecord, now: datetime, notified: Set[str], policy: PlanPolicy
) -> list[DueEffect]:
    """Return the time-driven effects due at ``now`` whose keys are not in ``notified``.

    - ``trial_ending_soon`` while the trial runs and ``now`` is within
      ``policy.trial_reminder_before`` of its end;
    - ``trial_expired`` once the trial ran out without a paid plan;
    - ``plan_ended`` once the plan ended by time alone: a cancel took effect, the period
      passed its renewal grace, or a suspension reached its limit. Ends caused by an
      event (a give-up, a cancel that ends access at once) are reported by
      :func:`~nulabpass.plans.apply` as :attr:`Effect.ACCESS_ENDED` instead.

    The caller stores the keys it acted on and passes them back as ``notified``; a
    second call then returns nothing new. Only effects that still hold are returned: a
    reminder whose trial has already ended is not sent late.
    """
    t = effective_time(record, now)
    state = derive_state(record, t)
    found: list[DueEffect] = []
    trial_ends_at = record.trial_ends_at
    if state is PlanState.TRIALING and trial_ends_at is not None:
        remind_at = trial_ends_at - policy.trial_reminder_before
        if t >= remind_at:
            found.append(
                DueEffect(
                    DueKind.TRIAL_ENDING_SOON,
                    _key(DueKind.TRIAL_ENDING_SOON, trial_ends_at),
                    remind_at,
                )
            )
    elif state is PlanState.TRIAL_EXPIRED and trial_ends_at is not None:
        found.append(
            DueEffect(
                DueKind.TRIAL_EXPIRED, _key(DueKind.TRIAL_EXPIRED, trial_ends_at), trial_ends_at
            )
        )
    elif state is PlanState.ENDED:
        ended_at = time_end(record)
        if ended_at is not None:
            found.append(
                DueEffect(DueKind.PLAN_ENDED, _key(DueKind.PLAN_ENDED, ended_at), ended_at)
            )
    return [effect for effect in found if effect.key not in notified]


def next_due_at(record: PlanRecord, now: datetime, policy: PlanPolicy) -> datetime | None:
    """Return the first instant after ``now`` at which time alone changes something.

    Until then :func:`~nulabpass.plans.derive_state` gives the same state and
    :func:`due_effects` finds nothing new, so a host may cache an access decision or
    schedule its next due-effects run for that instant. ``None`` means nothing changes
    without an event. Running late is harmless: the state is derived, not stored.
    """
    t = effective_time(record, now)
    state = derive_state(record, t)
    candidates: list[datetime] = []
    if state is PlanState.TRIALING and record.trial_ends_at is not None:
        candidates.append(record.trial_ends_at - policy.trial_reminder_before)
        candidates.append(record.trial_ends_at)
    elif state in (PlanState.ACTIVE, PlanState.SUSPENDED, PlanState.CANCELING):
        ended_at = time_end(record)
        if ended_at is not None:
            candidates.append(ended_at)
    later = [c for c in candidates if c > t]
    return min(later) if later else None
