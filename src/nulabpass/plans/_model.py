"""Values of the plan machine: states, events, effects, the stored record and the policy.

Everything here is a frozen attrs class or a ``StrEnum``. Every timestamp is an aware
datetime normalised to UTC on construction; a naive datetime is rejected with
:class:`~nulabpass.errors.InvalidInput`, because guessing its zone could move a trial's
end by hours.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeAlias

import attrs

from nulabpass.errors import ConfigurationError, InvalidInput

__all__ = [
    "Cancel",
    "ChangeSeats",
    "DueEffect",
    "DueKind",
    "Effect",
    "EventKind",
    "GiveUp",
    "PaymentFailed",
    "PaymentRecovered",
    "PlanEvent",
    "PlanPolicy",
    "PlanRecord",
    "PlanState",
    "Renew",
    "Resume",
    "StartTrial",
    "Transition",
    "Upgrade",
    "as_utc",
]


def as_utc(value: datetime, name: str = "now") -> datetime:
    """Return ``value`` in UTC, or raise :class:`InvalidInput` if it is naive.

    An aware datetime in another zone is converted, so stored timestamps and the
    idempotency keys built from them are the same whatever zone the caller used.
    """
    if not isinstance(value, datetime):
        raise InvalidInput(
            f"{name} must be a timezone-aware UTC datetime, not {type(value).__name__}",
            code="plan.invalid_datetime",
            details={"field": name},
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be a timezone-aware UTC datetime; a naive datetime was given",
            code="plan.naive_datetime",
            details={"field": name},
        )
    return value.astimezone(UTC)


def _to_utc(value: datetime | None) -> datetime | None:
    # The converter runs before the validator; a naive value passes through unchanged so
    # that the validator, which knows the field's name, can reject it with that name.
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value.astimezone(UTC)
    return value


def _aware(_instance: object, attribute: attrs.Attribute[datetime | None], value: object) -> None:
    if value is not None:
        as_utc(value, attribute.name)  # type: ignore[arg-type]


def _aware_required(
    _instance: object, attribute: attrs.Attribute[datetime], value: object
) -> None:
    as_utc(value, attribute.name)  # type: ignore[arg-type]


def _to_utc_required(value: datetime) -> datetime:
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value.astimezone(UTC)
    return value


def _seat_count(_instance: object, attribute: attrs.Attribute[int | None], value: object) -> None:
    # bool is a subclass of int; ``seats=True`` is a caller bug, not one seat.
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(
            f"{attribute.name} must be a whole number of seats of at least 1, or None for "
            f"unlimited; got {value!r}",
            code="plan.invalid_seats",
            details={"field": attribute.name, "value": repr(value)},
        )


class PlanState(enum.StrEnum):
    """Where an organization's plan stands at a given instant.

    A state is never stored: :func:`~nulabpass.plans.derive_state` computes it from a
    :class:`PlanRecord` and the current time.
    """

    #: No trial and no plan has ever started.
    NONE = "none"
    #: The one free trial is running.
    TRIALING = "trialing"
    #: The trial ran out without a paid plan.
    TRIAL_EXPIRED = "trial_expired"
    #: A paid plan is in force (including the kept remainder of a trial before it).
    ACTIVE = "active"
    #: A payment failed; sign-in continues, management stops until it is recovered.
    SUSPENDED = "suspended"
    #: Canceled, but the paid period (or the trial, by policy) is still running.
    CANCELING = "canceling"
    #: The plan is over; an upgrade starts a new paid plan at once.
    ENDED = "ended"


class EventKind(enum.StrEnum):
    """The name of each event the machine accepts; the second key of the table."""

    START_TRIAL = "start_trial"
    UPGRADE = "upgrade"
    RENEW = "renew"
    CHANGE_SEATS = "change_seats"
    CANCEL = "cancel"
    RESUME = "resume"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_RECOVERED = "payment_recovered"
    GIVE_UP = "give_up"


class Effect(enum.StrEnum):
    """A consequence of a transition that the facade turns into audit events or outbox rows.

    The event itself is always worth an audit entry; effects say what else must happen.
    """

    #: The organization's one trial started; a reminder is due before ``trial_ends_at``.
    TRIAL_STARTED = "trial_started"
    #: A paid plan was bought (it may start later, when the kept trial days run out).
    PLAN_UPGRADED = "plan_upgraded"
    #: The billing provider extended the paid period.
    PERIOD_RENEWED = "period_renewed"
    #: The plan's seat count changed.
    SEATS_CHANGED = "seats_changed"
    #: Canceled with access until ``cancel_effective_at``; nothing ends yet.
    CANCEL_SCHEDULED = "cancel_scheduled"
    #: A pending cancel was withdrawn.
    CANCEL_UNDONE = "cancel_undone"
    #: A payment failed: management capabilities stop, sign-in continues.
    PLAN_SUSPENDED = "plan_suspended"
    #: The failed payment was recovered: management capabilities return.
    PLAN_REACTIVATED = "plan_reactivated"
    #: The plan ended now: release managed accounts and end their sessions.
    ACCESS_ENDED = "access_ended"
    #: Access came back after an expired trial or an ended plan.
    ACCESS_RESTORED = "access_restored"


class DueKind(enum.StrEnum):
    """Kinds of effects that fall due by the passage of time alone."""

    #: The trial ends soon (``PlanPolicy.trial_reminder_before``): remind the plan admins.
    TRIAL_ENDING_SOON = "trial_ending_soon"
    #: The trial ended without a paid plan: managed accounts can no longer sign in.
    TRIAL_EXPIRED = "trial_expired"
    #: The plan ended by time (cancel took effect, no renewal, suspension limit reached):
    #: release managed accounts and end their sessions.
    PLAN_ENDED = "plan_ended"


# -- events ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class StartTrial:
    """Start the organization's one free trial; its length comes from the policy."""

    kind: ClassVar[EventKind] = EventKind.START_TRIAL


def _non_empty(_instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"{attribute.name} must be a non-empty string",
            code="plan.invalid_plan_name",
            details={"field": attribute.name},
        )


@attrs.frozen(slots=True)
class Upgrade:
    """Buy a paid plan.

    ``period_ends_at`` is the end of the first paid period as the billing provider
    computed it. During a trial the paid period starts when the trial ends, so the
    organization keeps its remaining trial days, unless ``start_now`` is true. From
    ``none``, ``trial_expired`` or ``ended`` the paid period always starts at once.
    """

    kind: ClassVar[EventKind] = EventKind.UPGRADE

    plan_name: str = attrs.field(validator=_non_empty)
    period_ends_at: datetime = attrs.field(converter=_to_utc_required, validator=_aware_required)
    seats: int | None = attrs.field(default=None, validator=_seat_count)
    start_now: bool = False


@attrs.frozen(slots=True)
class Renew:
    """The billing provider collected the next period; it now ends at ``period_ends_at``."""

    kind: ClassVar[EventKind] = EventKind.RENEW

    period_ends_at: datetime = attrs.field(converter=_to_utc_required, validator=_aware_required)


@attrs.frozen(slots=True)
class ChangeSeats:
    """Change the paid plan's seat count (``None`` for unlimited)."""

    kind: ClassVar[EventKind] = EventKind.CHANGE_SEATS

    seats: int | None = attrs.field(validator=_seat_count)


@attrs.frozen(slots=True)
class Cancel:
    """Cancel: a paid plan runs to the end of its period; a trial ends as the policy says."""

    kind: ClassVar[EventKind] = EventKind.CANCEL


@attrs.frozen(slots=True)
class Resume:
    """Withdraw a cancel before it takes effect."""

    kind: ClassVar[EventKind] = EventKind.RESUME


@attrs.frozen(slots=True)
class PaymentFailed:
    """The billing provider could not collect a payment."""

    kind: ClassVar[EventKind] = EventKind.PAYMENT_FAILED


@attrs.frozen(slots=True)
class PaymentRecovered:
    """The failed payment was collected after all.

    ``period_ends_at`` is the new end of the paid period when the recovered payment paid
    for one; it is required when the recorded period is already over.
    """

    kind: ClassVar[EventKind] = EventKind.PAYMENT_RECOVERED

    period_ends_at: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_aware
    )


@attrs.frozen(slots=True)
class GiveUp:
    """The host's billing provider stopped retrying a failed payment: the plan ends now."""

    kind: ClassVar[EventKind] = EventKind.GIVE_UP


#: Any event :func:`~nulabpass.plans.apply` accepts.
PlanEvent: TypeAlias = (
    StartTrial
    | Upgrade
    | Renew
    | ChangeSeats
    | Cancel
    | Resume
    | PaymentFailed
    | PaymentRecovered
    | GiveUp
)


# -- policy -----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class PlanPolicy:
    """How a host runs trials and plans. Every field has a default a host may keep.

    - ``trial_length``: how long the one free trial lasts.
    - ``trial_seats``: seats during the trial; ``None`` means unlimited.
    - ``trial_cancel_ends_access_at_once``: canceling a trial (or the kept trial days
      before a paid period starts) ends access at once; when false, access runs to the
      end of the trial days and a resume can undo the cancel meanwhile.
    - ``trial_reminder_before``: how long before the trial's end the reminder falls due;
      zero disables the reminder.
    - ``renewal_grace``: how long a paid plan stays active after its period end while no
      renewal has arrived, so that a late billing webhook never ends a paying customer's
      plan.
    - ``suspension_limit``: how long a plan may stay suspended before it ends by itself;
      ``None`` leaves the decision to the host's billing provider (a give-up event).

    The policy in force when an event is applied is written into the record as absolute
    times (``trial_ends_at``, ``grace_ends_at``, ``suspended_until``), so changing the
    policy later never moves a running trial or period.
    """

    trial_length: timedelta = timedelta(days=30)
    trial_seats: int | None = None
    trial_cancel_ends_access_at_once: bool = True
    trial_reminder_before: timedelta = timedelta(days=3)
    renewal_grace: timedelta = timedelta(days=3)
    suspension_limit: timedelta | None = None

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        if self.trial_length <= timedelta(0):
            problems.append("trial_length must be positive")
        if self.trial_seats is not None and (
            isinstance(self.trial_seats, bool) or self.trial_seats < 1
        ):
            problems.append("trial_seats must be at least 1, or None for unlimited")
        if self.trial_reminder_before < timedelta(0):
            problems.append("trial_reminder_before must not be negative")
        if self.renewal_grace < timedelta(0):
            problems.append("renewal_grace must not be negative")
        if self.suspension_limit is not None and self.suspension_limit <= timedelta(0):
            problems.append("suspension_limit must be positive, or None to let billing decide")
        if problems:
            raise ConfigurationError(
                "invalid plan policy: " + "; ".join(problems),
                code="config.plan_policy",
            )


# -- the stored record ------------------------------------------------------------------


@attrs.frozen(slots=True)
class PlanRecord:
    """What a store keeps about one organization's plan: facts with their times.

    The state is derived from these fields and ``now``; no field says "the state is X".
    ``PlanRecord()`` is an organization that never had a trial or a plan.

    Trial facts (written once, by ``start_trial``, and never changed or cleared, which is
    what makes a second trial impossible):

    - ``trial_started_at``, ``trial_ends_at``.

    Paid plan facts (written by ``upgrade``; ``renew`` and ``payment_recovered`` move the
    period end):

    - ``plan_name``: the host's name for the plan bought; ``None`` until an upgrade.
    - ``paid_starts_at``: when the paid period starts; later than the upgrade when the
      organization kept its remaining trial days.
    - ``period_ends_at``: end of the current paid period.
    - ``grace_ends_at``: ``period_ends_at`` plus the renewal grace; the plan ends at this
      instant unless a renewal arrives first.

    ``seats``: the seat count in force (``None`` for unlimited); the trial's comes from
    the policy, a paid plan's from the upgrade or a seat change.

    Cancel facts (cleared by ``resume`` and by a new ``upgrade``):

    - ``canceled_at``: when the cancel was requested.
    - ``cancel_effective_at``: when the canceled plan's access ends.

    Suspension facts (cleared by ``payment_recovered``):

    - ``suspended_at``: when the first failed payment was reported.
    - ``suspended_until``: when a suspension ends the plan by itself (policy), or ``None``.

    ``ended_at``: when an event ended the plan at once (a give-up, a cancel that takes
    effect immediately). Ends that happen by time alone are derived, never written.

    ``last_event_at``: when the last event was applied. Times before it are treated as
    equal to it, so the record never reports a state older than its own facts.
    """

    trial_started_at: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_aware
    )
    trial_ends_at: datetime | None = attrs.field(default=None, converter=_to_utc, validator=_aware)
    plan_name: str | None = None
    seats: int | None = attrs.field(default=None, validator=_seat_count)
    paid_starts_at: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_aware
    )
    period_ends_at: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_aware
    )
    grace_ends_at: datetime | None = attrs.field(default=None, converter=_to_utc, validator=_aware)
    canceled_at: datetime | None = attrs.field(default=None, converter=_to_utc, validator=_aware)
    cancel_effective_at: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_aware
    )
    suspended_at: datetime | None = attrs.field(default=None, converter=_to_utc, validator=_aware)
    suspended_until: datetime | None = attrs.field(
        default=None, converter=_to_utc, validator=_aware
    )
    ended_at: datetime | None = attrs.field(default=None, converter=_to_utc, validator=_aware)
    last_event_at: datetime | None = attrs.field(default=None, converter=_to_utc, validator=_aware)

    def __attrs_post_init__(self) -> None:
        problems = _record_problems(self)
        if problems:
            raise InvalidInput(
                "inconsistent plan record: " + "; ".join(problems),
                code="plan.invalid_record",
            )

    @property
    def trial_used(self) -> bool:
        """Whether the organization has had its one trial (it never gets another)."""
        return self.trial_started_at is not None

    @property
    def has_paid_plan(self) -> bool:
        """Whether a paid plan was ever bought (an ended one included)."""
        return self.paid_starts_at is not None


def _record_problems(r: PlanRecord) -> list[str]:
    problems: list[str] = []
    if (r.trial_started_at is None) != (r.trial_ends_at is None):
        problems.append("trial_started_at and trial_ends_at go together")
    elif (
        r.trial_started_at is not None
        and r.trial_ends_at is not None
        and r.trial_ends_at <= r.trial_started_at
    ):
        problems.append("trial_ends_at must be after trial_started_at")
    paid = (r.paid_starts_at, r.period_ends_at, r.grace_ends_at)
    if any(v is None for v in paid) and any(v is not None for v in paid):
        problems.append("paid_starts_at, period_ends_at and grace_ends_at go together")
    elif r.paid_starts_at is not None and r.period_ends_at is not None:
        if r.period_ends_at <= r.paid_starts_at:
            problems.append("period_ends_at must be after paid_starts_at")
        if r.grace_ends_at is not None and r.grace_ends_at < r.period_ends_at:
            problems.append("grace_ends_at must not be before period_ends_at")
    if (r.canceled_at is None) != (r.cancel_effective_at is None):
        problems.append("canceled_at and cancel_effective_at go together")
    if r.suspended_until is not None and r.suspended_at is None:
        problems.append("suspended_until needs suspended_at")
    # Facts that record an event must not postdate the last event: derive_state relies on
    # it when it treats earlier times as last_event_at.
    for name in ("trial_started_at", "canceled_at", "suspended_at", "ended_at"):
        value: datetime | None = getattr(r, name)
        if value is not None and (r.last_event_at is None or value > r.last_event_at):
            problems.append(f"{name} must not be after last_event_at")
    return problems


# -- results -----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Transition:
    """The result of :func:`~nulabpass.plans.apply`: the record to store and what happened.

    ``at`` is the time the event was applied (``now``, or ``record.last_event_at`` when
    ``now`` was earlier). ``effects`` come from the transition table in its order.
    """

    record: PlanRecord
    event: PlanEvent
    from_state: PlanState
    to_state: PlanState
    effects: tuple[Effect, ...]
    at: datetime


@attrs.frozen(slots=True)
class DueEffect:
    """An effect due by time alone, found by :func:`~nulabpass.plans.due_effects`.

    ``key`` is stable for a given record (``trial_ending_soon:2024-05-01T00:00:00+00:00``);
    it is unique within one organization's plan history, so a caller scopes it with the
    organization's id and uses it as the outbox idempotency key. ``due_at`` is when the
    effect fell due, which may be earlier than the ``now`` at which it was found.
    """

    kind: DueKind
    key: str
    due_at: datetime
