"""The plan machine's own error: an event that the current state does not accept."""

from __future__ import annotations

from nulabpass.errors import Conflict
from nulabpass.plans._model import EventKind, PlanState

__all__ = ["InvalidPlanTransition"]

# What each event asks for, phrased for the sentence "cannot <phrase>: ...".
_EVENT_PHRASES: dict[EventKind, str] = {
    EventKind.START_TRIAL: "start a trial",
    EventKind.UPGRADE: "upgrade",
    EventKind.RENEW: "renew",
    EventKind.CHANGE_SEATS: "change seats",
    EventKind.CANCEL: "cancel",
    EventKind.RESUME: "resume",
    EventKind.PAYMENT_FAILED: "record a failed payment",
    EventKind.PAYMENT_RECOVERED: "record a recovered payment",
    EventKind.GIVE_UP: "end the plan after failed payments",
}

# A hint for the mistakes an admin or an integrator is likely to make; keyed by event,
# then optionally narrowed by state.
_HINTS: dict[tuple[EventKind, PlanState | None], str] = {
    (EventKind.START_TRIAL, None): "an organization gets one free trial, before any plan",
    (EventKind.UPGRADE, PlanState.ACTIVE): "it already has a paid plan; change seats instead",
    (EventKind.UPGRADE, PlanState.CANCELING): "resume the canceled plan instead",
    (EventKind.UPGRADE, PlanState.SUSPENDED): (
        "its last payment failed; recover the payment or cancel first"
    ),
    (EventKind.CANCEL, PlanState.CANCELING): "it is already canceled",
    (EventKind.CANCEL, PlanState.TRIAL_EXPIRED): "there is nothing left to cancel",
    (EventKind.CANCEL, PlanState.ENDED): "there is nothing left to cancel",
    (EventKind.RESUME, None): "only a canceled plan whose access has not ended can resume",
    (EventKind.RENEW, None): "only an active paid plan renews",
    (EventKind.CHANGE_SEATS, None): "seats change on an active paid plan only",
    (EventKind.PAYMENT_RECOVERED, None): "only a suspended plan can recover a payment",
    (EventKind.GIVE_UP, None): "only a suspended plan can be given up",
}


class InvalidPlanTransition(Conflict):
    """The organization's plan is in a state that does not accept this event.

    ``code`` names both: ``plan.invalid_transition.<state>.<event>``, for example
    ``plan.invalid_transition.trial_expired.cancel``; a host that only cares about the
    family matches the prefix ``plan.invalid_transition``. ``details`` holds ``state``
    and ``event``.
    """

    default_code = "plan.invalid_transition"
    default_public_message = "This plan change is not possible right now. Please reload."

    def __init__(self, state: PlanState, event: EventKind) -> None:
        phrase = _EVENT_PHRASES.get(event, str(event))
        message = f"cannot {phrase}: the organization's plan is {state}"
        hint = _HINTS.get((event, state)) or _HINTS.get((event, None))
        if hint:
            message = f"{message}; {hint}"
        super().__init__(
            message,
            code=f"{self.default_code}.{state}.{event}",
            details={"state": str(state), "event": str(event)},
        )
        self.state: PlanState = state
        self.event: EventKind = event
