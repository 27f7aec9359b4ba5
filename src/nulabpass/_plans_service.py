"""Use cases of trials and plans: the pure machine in :mod:`nulabpass.plans` applied to
stored records, with audit events, emails and the consequences of a plan's end.

Theory of operation
-------------------
Admins and plan admins start the trial and change the plan; the host's payment provider
drives payments through :meth:`PlansAPI.apply_billing_event`, which authenticates the
webhook through the :class:`~nulabpass.ports.BillingProvider` port, ignores an event id
it has seen (webhooks are retried) and skips events older than the last one applied
(webhooks arrive out of order). Every applied event is one audit event.

Time needs no job to be correct: the state is derived from the record and ``now`` on
every check. :meth:`PlansAPI.process_due`, which the host runs like a cron, only sends
what time causes (the trial reminder, the trial's expiry, a plan's end) and carries out
the end of a plan: managed accounts are released and signed out, and audit log admin
privileges are withdrawn, to come back if a plan restarts within the restore window.
Each effect is remembered by its idempotency key, so running it twice does nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from nulabpass._context import Actor, RequestContext
from nulabpass._runtime import Recorder, Runtime
from nulabpass.errors import InvalidInput, NotFound, PermissionDenied
from nulabpass.org._model import AccountStatus, Organization
from nulabpass.org._permissions import Permission
from nulabpass.org._service import format_iso, release_account
from nulabpass.plans import (
    Cancel,
    Capability,
    ChangeSeats,
    DueKind,
    Effect,
    GiveUp,
    PaymentFailed,
    PaymentRecovered,
    PlanEvent,
    PlanRecord,
    PlanState,
    Renew,
    Resume,
    StartTrial,
    Transition,
    Upgrade,
    apply,
    due_effects,
    granted,
    next_due_at,
)
from nulabpass.ports import BILLING_APPLIED, BillingEvent, BillingProvider, StoredPlan, UnitOfWork

__all__ = ["BillingOutcome", "DueReport", "PlanStatus", "PlansAPI"]

_DEFAULT_CTX = RequestContext()

#: The audit action of each plan event.
EVENT_ACTIONS: Mapping[str, str] = {
    "start_trial": "plan.trial_started",
    "upgrade": "plan.upgraded",
    "renew": "plan.renewed",
    "change_seats": "plan.seats_changed",
    "cancel": "plan.canceled",
    "resume": "plan.resumed",
    "payment_failed": "plan.payment_failed",
    "payment_recovered": "plan.payment_recovered",
    "give_up": "plan.ended",
}

_DUE_ACTIONS: Mapping[DueKind, str] = {
    DueKind.TRIAL_ENDING_SOON: "plan.trial_ending_notified",
    DueKind.TRIAL_EXPIRED: "plan.trial_expired",
    DueKind.PLAN_ENDED: "plan.ended",
}

_BILLING_KINDS = frozenset(EVENT_ACTIONS) - {"start_trial"}


@attrs.frozen(slots=True)
class PlanStatus:
    """An organization's plan as an admin sees it at one instant."""

    org_id: str
    state: PlanState
    record: PlanRecord
    capabilities: frozenset[Capability]
    managed_accounts: int
    seats: int | None
    next_change_at: datetime | None


@attrs.frozen(slots=True)
class BillingOutcome:
    """What :meth:`PlansAPI.apply_billing_event` did: ``applied``, ``duplicate`` (the id
    was seen before) or ``stale`` (older than the last applied event)."""

    event_id: str
    result: str
    state: PlanState | None = None


@attrs.frozen(slots=True)
class DueReport:
    """What one :meth:`PlansAPI.process_due` call did."""

    organizations: int = 0
    effects: int = 0


def _billing_event(event: BillingEvent) -> PlanEvent:
    kind = event.kind
    if kind == "upgrade":
        if event.plan_name is None or event.period_ends_at is None:
            raise InvalidInput(
                "An upgrade event needs plan_name and period_ends_at.",
                code="billing.invalid_event",
            )
        return Upgrade(
            plan_name=event.plan_name,
            period_ends_at=event.period_ends_at,
            seats=event.seats,
            start_now=event.start_now,
        )
    if kind == "renew":
        if event.period_ends_at is None:
            raise InvalidInput("A renew event needs period_ends_at.", code="billing.invalid_event")
        return Renew(period_ends_at=event.period_ends_at)
    if kind == "change_seats":
        return ChangeSeats(seats=event.seats)
    if kind == "payment_recovered":
        return PaymentRecovered(period_ends_at=event.period_ends_at)
    simple: dict[str, PlanEvent] = {
        "cancel": Cancel(),
        "resume": Resume(),
        "payment_failed": PaymentFailed(),
        "give_up": GiveUp(),
    }
    if kind in simple:
        return simple[kind]
    raise InvalidInput(
        f"Unknown billing event kind {kind!r}; expected one of "
        f"{', '.join(sorted(_BILLING_KINDS))}.",
        code="billing.invalid_event",
    )


class PlansAPI:
    """Trial and plan of each organization."""

    def __init__(self, rt: Runtime, billing: BillingProvider | None = None) -> None:
        self._rt = rt
        self._billing = billing

    # -- reading ---------------------------------------------------------------------------

    def status(self, org_id: str, now: datetime | None = None) -> PlanStatus:
        """The plan's state, record and what it entitles the organization to at ``now``."""
        at = self._rt.now() if now is None else now
        with self._rt.store.transaction() as uow:
            if uow.organizations.get(org_id) is None:
                raise NotFound(
                    f"There is no organization {org_id!r}.", code="organization.not_found"
                )
            state, record = self._rt.gate.plan(uow, org_id, at)
            count = uow.accounts.count_managed(org_id)
        return PlanStatus(
            org_id=org_id,
            state=state,
            record=record,
            capabilities=granted(state, managed_count=count, seats=record.seats),
            managed_accounts=count,
            seats=record.seats,
            next_change_at=next_due_at(record, at, self._rt.policy),
        )

    # -- admin actions ---------------------------------------------------------------------

    def start_trial(
        self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> PlanStatus:
        """Start the organization's one free trial (admins and plan admins)."""
        return self._admin_event(actor, org_id, StartTrial(), ctx)

    def upgrade(
        self,
        actor: Actor,
        org_id: str,
        *,
        plan_name: str,
        period_ends_at: datetime,
        seats: int | None = None,
        start_now: bool = False,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> PlanStatus:
        """Buy a paid plan. During the trial the remaining trial days are kept and the
        paid period starts when the trial ends, unless ``start_now``; after the trial or
        a plan's end, access comes back at once."""
        event = Upgrade(
            plan_name=plan_name, period_ends_at=period_ends_at, seats=seats, start_now=start_now
        )
        return self._admin_event(actor, org_id, event, ctx)

    def cancel(
        self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> PlanStatus:
        """Cancel: a paid plan keeps access to the end of its period; a trial ends as
        configured (at once by default)."""
        return self._admin_event(actor, org_id, Cancel(), ctx)

    def resume(
        self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> PlanStatus:
        """Undo a cancel before the paid period ends."""
        return self._admin_event(actor, org_id, Resume(), ctx)

    def change_seats(
        self, actor: Actor, org_id: str, seats: int | None, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> PlanStatus:
        """Change the seat count of an active plan."""
        return self._admin_event(actor, org_id, ChangeSeats(seats=seats), ctx)

    def _admin_event(
        self, actor: Actor, org_id: str, event: PlanEvent, ctx: RequestContext
    ) -> PlanStatus:
        if not isinstance(org_id, str) or not org_id:
            raise InvalidInput("org_id must be a non-empty string.", code="input.invalid_id")

        def body(rec: Recorder) -> None:
            org = self._org(rec.uow, org_id)
            rec.require(Permission.CHANGE_PLAN)
            self._apply(rec, org, event)

        self._rt.run(
            scope=org_id, action=EVENT_ACTIONS[event.kind], actor=actor, ctx=ctx, body=body
        )
        return self.status(org_id)

    # -- billing -----------------------------------------------------------------------------

    def apply_billing_event(
        self, body: bytes, headers: Mapping[str, str], *, ctx: RequestContext = _DEFAULT_CTX
    ) -> BillingOutcome:
        """Apply one webhook of the payment provider: authenticated through the
        ``BillingProvider`` port, idempotent by event id, tolerant of out-of-order
        delivery by event time."""
        if self._billing is None:
            raise PermissionDenied(
                "No billing provider is configured, so billing webhooks cannot be checked.",
                code="billing.not_configured",
            )
        event = self._billing.parse_webhook(body, headers)
        if event.kind not in _BILLING_KINDS:
            raise InvalidInput(
                f"Unknown billing event kind {event.kind!r}.", code="billing.invalid_event"
            )
        plan_event = _billing_event(event)
        with self._rt.store.transaction() as uow:
            if uow.plans.billing_event_seen(event.id):
                return BillingOutcome(event.id, "duplicate")
        outcome: list[BillingOutcome] = []

        def apply_it(rec: Recorder) -> None:
            org = self._org(rec.uow, event.org_id)
            if rec.uow.plans.billing_event_seen(event.id):
                outcome.append(BillingOutcome(event.id, "duplicate"))
                return
            last = rec.uow.plans.last_billing_event_at(org.id)
            if last is not None and event.occurred_at < last:
                rec.uow.plans.record_billing_event(
                    event_id=event.id,
                    org_id=org.id,
                    kind=event.kind,
                    occurred_at=event.occurred_at,
                    outcome="stale",
                    recorded_at=rec.now,
                )
                rec.meta(billing_event=event.id, result="stale", kind=event.kind)
                outcome.append(BillingOutcome(event.id, "stale"))
                return
            transition = self._apply(rec, org, plan_event)
            rec.uow.plans.record_billing_event(
                event_id=event.id,
                org_id=org.id,
                kind=event.kind,
                occurred_at=event.occurred_at,
                outcome=BILLING_APPLIED,
                recorded_at=rec.now,
            )
            rec.meta(billing_event=event.id)
            outcome.append(BillingOutcome(event.id, BILLING_APPLIED, transition.to_state))

        action = EVENT_ACTIONS[event.kind]
        # A stale event changes nothing; it is still recorded so auditors see it arrived.
        self._rt.run(
            scope=event.org_id,
            action=action,
            actor=Actor.system("Billing"),
            ctx=ctx,
            body=apply_it,
        )
        return outcome[0]

    # -- time ---------------------------------------------------------------------------------

    def process_due(self, now: datetime | None = None, *, limit: int = 500) -> DueReport:
        """Act on everything time has caused since the last run, for up to ``limit``
        organizations: reminders, expiries, ends. Idempotent; safe to run often."""
        at = self._rt.now() if now is None else now
        with self._rt.store.transaction() as uow:
            org_ids = uow.plans.due(at, limit)
        effects = 0
        for org_id in org_ids:
            effects += self._process_org(org_id, at)
        return DueReport(organizations=len(org_ids), effects=effects)

    def _process_org(self, org_id: str, at: datetime) -> int:
        with self._rt.store.transaction() as uow:
            stored = uow.plans.get(org_id)
            if stored is None:
                return 0
            pending = due_effects(stored.record, at, uow.plans.notices(org_id), self._rt.policy)
        done = 0
        for effect in pending:

            def body(rec: Recorder, key: str = effect.key, kind: DueKind = effect.kind) -> None:
                org = self._org(rec.uow, org_id)
                current = rec.uow.plans.get(org_id)
                if current is None or key in rec.uow.plans.notices(org_id):
                    return
                rec.uow.plans.add_notice(org_id, key, rec.now)
                rec.target("organization", org_id)
                rec.meta(notice=key)
                if kind is DueKind.TRIAL_ENDING_SOON:
                    self._email_admins(
                        rec,
                        org,
                        "trial_ending",
                        key,
                        trial_ends_at=format_iso(current.record.trial_ends_at or rec.now),
                    )
                elif kind is DueKind.TRIAL_EXPIRED:
                    self._email_admins(rec, org, "trial_expired", key)
                    rec.emit("plan.trial_expired", key, org_id=org_id)
                else:
                    self._end_plan(rec, org, key)
                self._store(rec.uow, current, current.record, rec.now)

            self._rt.run(
                scope=org_id,
                action=_DUE_ACTIONS[effect.kind],
                actor=Actor.system(),
                ctx=_DEFAULT_CTX,
                body=body,
            )
            done += 1
        # Nothing left to do before the next change: move the organization's due time on.
        with self._rt.store.transaction() as uow:
            stored = uow.plans.get(org_id)
            if stored is not None:
                uow.organizations.lock(org_id)
                self._store(uow, stored, stored.record, at)
        return done

    # -- shared ------------------------------------------------------------------------------

    @staticmethod
    def _org(uow: UnitOfWork, org_id: str) -> Organization:
        org = uow.organizations.get(org_id)
        if org is None:
            raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")
        return org

    def _store(
        self, uow: UnitOfWork, stored: StoredPlan, record: PlanRecord, now: datetime
    ) -> None:
        due = next_due_at(record, now, self._rt.policy)
        if due != stored.next_due_at or record != stored.record:
            uow.plans.update(attrs.evolve(stored, record=record, next_due_at=due))

    def _apply(self, rec: Recorder, org: Organization, event: PlanEvent) -> Transition:
        stored = rec.uow.plans.get(org.id)
        record = stored.record if stored is not None else PlanRecord()
        transition = apply(record, event, rec.now, self._rt.policy)
        due = next_due_at(transition.record, rec.now, self._rt.policy)
        if stored is None:
            rec.uow.plans.add(StoredPlan(org_id=org.id, record=transition.record, next_due_at=due))
        else:
            rec.uow.plans.update(attrs.evolve(stored, record=transition.record, next_due_at=due))
        rec.target("organization", org.id)
        rec.meta(
            state_before=transition.from_state.value,
            state_after=transition.to_state.value,
            effects=",".join(e.value for e in transition.effects),
        )
        if Effect.ACCESS_ENDED in transition.effects and transition.to_state is PlanState.ENDED:
            self._end_plan(rec, org, f"event:{rec.now.isoformat()}")
        if Effect.ACCESS_RESTORED in transition.effects or (
            transition.from_state in (PlanState.ENDED, PlanState.TRIAL_EXPIRED)
            and transition.to_state is PlanState.ACTIVE
        ):
            self._restore_privileges(rec, org)
        rec.emit(
            "plan.changed",
            f"{org.id}:{transition.event.kind}:{rec.now.isoformat()}",
            org_id=org.id,
            state=transition.to_state.value,
        )
        return transition

    def _email_admins(
        self, rec: Recorder, org: Organization, template: str, key: str, **params: str
    ) -> None:
        for m in rec.uow.memberships.list_for_org(org.id):
            if not (m.can_break_glass):
                continue
            account = rec.uow.accounts.get(m.account_id)
            if account is None or account.status is not AccountStatus.ACTIVE:
                continue
            rec.email(template, account, f"{key}:{account.id}", org_name=org.name, **params)

    def _end_plan(self, rec: Recorder, org: Organization, key: str) -> None:
        """Release every managed account (signed out by the host on the domain event)
        and withdraw audit log admin privileges, remembering them for a restart."""
        released = 0
        for account in rec.uow.accounts.list_managed(org.id):
            if account.status is AccountStatus.INVITED:
                # Never activated: nothing to hand back; the invitation stops working.
                continue
            updated = release_account(rec, org, account)
            rec.also_record(
                org.id, "managed_account.released", account=updated, reason="plan_ended"
            )
            rec.emit(
                "account.sign_out",
                f"{account.id}:{key}",
                account_id=account.id,
                reason="plan_ended",
            )
            released += 1
        withdrawn = 0
        for m in rec.uow.memberships.list_for_org(org.id):
            if not m.audit_log_admin:
                continue
            rec.uow.memberships.update(attrs.evolve(m, audit_log_admin=False, updated_at=rec.now))
            rec.uow.plans.add_withdrawn_privilege(org.id, m.account_id, rec.now)
            rec.also_record(
                org.id,
                "member.privileges_changed",
                account=rec.uow.accounts.get(m.account_id),
                audit_log_admin=False,
                reason="plan_ended",
            )
            withdrawn += 1
        self._email_admins(rec, org, "plan_ended", key)
        rec.emit("plan.ended", key, org_id=org.id)
        rec.meta(accounts_released=released, privileges_withdrawn=withdrawn)

    def _restore_privileges(self, rec: Recorder, org: Organization) -> None:
        window = self._rt.config.privilege_restore_window
        for account_id, withdrawn_at in rec.uow.plans.withdrawn_privileges(org.id):
            if rec.now - withdrawn_at > window:
                continue
            m = rec.uow.memberships.get(org.id, account_id)
            if m is None or m.audit_log_admin:
                continue
            rec.uow.memberships.update(attrs.evolve(m, audit_log_admin=True, updated_at=rec.now))
            rec.also_record(
                org.id,
                "member.privileges_changed",
                account=rec.uow.accounts.get(account_id),
                audit_log_admin=True,
                reason="plan_restarted",
            )
        rec.uow.plans.clear_withdrawn_privileges(org.id)
