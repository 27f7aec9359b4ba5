"""Trials, paid plans and what they entitle an organization to: a pure state machine.

Theory of operation
-------------------

An organization's plan is stored as a :class:`PlanRecord`: facts with their times
(when the trial started and ends, when the paid period starts and ends, when a cancel
takes effect, when a payment failed...). No field says what the state *is*. The state is
derived, at the instant a caller asks, by :func:`derive_state`::

    state = derive_state(record, now)

so a trial is ``trial_expired`` the microsecond its end passes and a canceled plan is
``ended`` the microsecond its paid period ends, whether or not any job has run. Nothing in
this package reads a clock or touches storage: ``now`` and the :class:`PlanPolicy` are
always arguments.

Events change the record. :func:`apply` derives the current state, looks up
``(state, event.kind)`` in :data:`TRANSITIONS` (a literal table; a missing pair raises
:class:`InvalidPlanTransition`), takes the first outcome whose guard holds, writes the
event's facts and returns a :class:`Transition`: the new record to store, the states
left and reached, and the :class:`Effect` values the facade turns into audit events and
outbox messages. ``apply`` checks that the new record derives the state the table chose.

Some effects fall due by time alone: the trial reminder, the trial's expiry, a plan's
end when its cancel takes effect or its period lapses. :func:`due_effects` finds them
from the record and ``now``, each with a stable idempotency key; the caller passes back
the keys it has acted on and gets nothing twice. :func:`next_due_at` says when to look
again.

What a state allows is one table, :data:`ENTITLEMENTS`, read through :func:`entitled`,
:func:`require` and :func:`require_seat`. A seat count caps managed accounts: while an
organization has more managed accounts than seats, the management capabilities stop as
they do when suspended, and sign-in continues.

Time moves states forward only along :data:`TIME_TRANSITIONS`: for one record and
``t1 <= t2``, ``derive_state(record, t2)`` is ``derive_state(record, t1)`` or a target of
one of its time edges (``trialing`` -> ``trial_expired``; ``active``, ``suspended``,
``canceling`` -> ``ended``). A ``now`` before ``record.last_event_at`` counts as
``last_event_at``, so hosts with slightly different clocks agree with the record.

The diagram and tables in ``docs/plans.md`` are produced by :func:`mermaid_diagram`,
:func:`transitions_markdown` and :func:`entitlements_markdown` from the same tables.
"""

from __future__ import annotations

from nulabpass.plans._docs import (
    doc_blocks,
    entitlements_markdown,
    mermaid_diagram,
    transitions_markdown,
)
from nulabpass.plans._due import due_effects, next_due_at
from nulabpass.plans._entitlements import (
    CAPABILITY_LABELS,
    ENTITLEMENTS,
    SEAT_LIMITED,
    Capability,
    entitled,
    granted,
    require,
    require_seat,
)
from nulabpass.plans._errors import InvalidPlanTransition
from nulabpass.plans._machine import allowed_events, apply, derive_state, time_end
from nulabpass.plans._model import (
    Cancel,
    ChangeSeats,
    DueEffect,
    DueKind,
    Effect,
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
)
from nulabpass.plans._table import (
    GUARD_LABELS,
    TIME_TRANSITIONS,
    TRANSITIONS,
    Guard,
    Outcome,
    TimeEdge,
)

#: The policy a host gets when it configures nothing: a 30-day trial with unlimited seats
#: that ends at once when canceled, a reminder 3 days before its end, 3 days of renewal
#: grace, and suspensions that last until the billing provider gives up.
DEFAULT_POLICY = PlanPolicy()

__all__ = [
    "CAPABILITY_LABELS",
    "DEFAULT_POLICY",
    "ENTITLEMENTS",
    "GUARD_LABELS",
    "SEAT_LIMITED",
    "TIME_TRANSITIONS",
    "TRANSITIONS",
    "Cancel",
    "Capability",
    "ChangeSeats",
    "DueEffect",
    "DueKind",
    "Effect",
    "EventKind",
    "GiveUp",
    "Guard",
    "InvalidPlanTransition",
    "Outcome",
    "PaymentFailed",
    "PaymentRecovered",
    "PlanEvent",
    "PlanPolicy",
    "PlanRecord",
    "PlanState",
    "Renew",
    "Resume",
    "StartTrial",
    "TimeEdge",
    "Transition",
    "Upgrade",
    "allowed_events",
    "apply",
    "derive_state",
    "doc_blocks",
    "due_effects",
    "entitled",
    "entitlements_markdown",
    "granted",
    "mermaid_diagram",
    "next_due_at",
    "require",
    "require_seat",
    "time_end",
    "transitions_markdown",
]
