"""Plan entitlements as use cases see them: the plans module's table applied to the
organization's stored plan record, its managed-account count and ``now``."""

from __future__ import annotations

from datetime import datetime

from nulabpass.plans import (
    Capability,
    PlanPolicy,
    PlanRecord,
    PlanState,
    derive_state,
    entitled,
    require,
    require_seat,
)
from nulabpass.ports import UnitOfWork

__all__ = ["Capability", "Gate"]


class Gate:
    """Reads an organization's plan and answers or enforces entitlement checks."""

    def __init__(self, policy: PlanPolicy) -> None:
        self.policy = policy

    def plan(self, uow: UnitOfWork, org_id: str, now: datetime) -> tuple[PlanState, PlanRecord]:
        """The organization's plan record (empty when it never had one) and its state."""
        stored = uow.plans.get(org_id)
        record = stored.record if stored is not None else PlanRecord()
        return derive_state(record, now), record

    def require(
        self,
        uow: UnitOfWork,
        org_id: str,
        capability: Capability,
        now: datetime,
        *,
        adding: int = 0,
        ignore_seats: bool = False,
        record: PlanRecord | None = None,
    ) -> None:
        """Raise ``PlanRequired`` (or ``SeatLimitExceeded``) unless the organization may
        use ``capability`` now and, when ``adding`` managed accounts, has the seats.

        ``ignore_seats`` is for actions that reduce the number of managed accounts
        (delete, release, revoke): they must stay possible while over the seat count,
        or an organization could never get back under it. ``record``: the plan record
        as the caller read it in this transaction (read here when not given).
        """
        if record is None:
            state, record = self.plan(uow, org_id, now)
        else:
            state = derive_state(record, now)
        # Without a seat count, the number of managed accounts decides nothing.
        count = 0 if record.seats is None else uow.accounts.count_managed(org_id)
        require(
            state, capability, managed_count=count, seats=None if ignore_seats else record.seats
        )
        if adding:
            require_seat(count, record.seats, adding)

    def allows(self, uow: UnitOfWork, org_id: str, capability: Capability, now: datetime) -> bool:
        """Whether the organization may use ``capability`` now."""
        state, record = self.plan(uow, org_id, now)
        return entitled(
            state,
            capability,
            managed_count=uow.accounts.count_managed(org_id),
            seats=record.seats,
        )
