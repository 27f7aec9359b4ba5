"""The use-case runner: one transaction per action, audit event inside it.

Theory of operation
-------------------
Every mutating call of the facade is a *body* run by :meth:`Runtime.run`:

1. open one store transaction and lock the organization the action is about, so that
   writers of one organization run one after another;
2. the body checks permission, validates and changes state through the unit of work,
   describing what it touched on a :class:`Recorder` (targets, metadata, outbox
   messages, events in other organizations);
3. the runner re-checks the break-glass rule for every organization touched, appends
   exactly one audit event per organization (chained to its head) and writes the outbox
   messages, all in the same transaction; then commits.

If anything raises, the transaction rolls back whole: no change without its event, no
event without its change. When the failure is a :class:`NulabPassError` and the
organization exists, the failure itself is recorded afterwards in a separate
transaction; identical failures inside a window are counted on one row rather than each
appending an event, so a flood cannot amplify writes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

import attrs

from nulabpass._context import Actor, ActorType, RequestContext
from nulabpass._gate import Gate
from nulabpass._ids import new_ordered_id
from nulabpass.audit._catalogue import spec
from nulabpass.audit._chain import commit, event_hash, new_salt
from nulabpass.audit._model import EventRecord, Outcome, PersonalDatum, Target
from nulabpass.config import NulabPassConfig
from nulabpass.errors import (
    BreakGlassViolation,
    ConfigurationError,
    InvalidInput,
    NulabPassError,
    PermissionDenied,
)
from nulabpass.org._model import Account, AccountStatus, Membership, Organization
from nulabpass.org._permissions import Permission, require
from nulabpass.outbox._model import JsonScalar, OutboxKind, OutboxMessage
from nulabpass.plans import PlanPolicy
from nulabpass.ports import Clock, FailureCounter, Store, UnitOfWork

__all__ = ["HOST_SCOPE", "Recorder", "Runtime"]

T = TypeVar("T")

#: Scope of host-wide events (account registration), which belong to no organization.
HOST_SCOPE = "host"

_log = logging.getLogger("nulabpass.audit")

Metadata = Mapping[str, JsonScalar]


@attrs.define
class _TargetDraft:
    target: Target
    personal: dict[str, str]
    subject_id: str


@attrs.define
class _SideEvent:
    scope: str
    action: str
    targets: list[_TargetDraft]
    metadata: dict[str, JsonScalar]


class Recorder:
    """What a use-case body tells the runner about its change."""

    def __init__(
        self, uow: UnitOfWork, now: datetime, actor: Actor, ctx: RequestContext, scope: str
    ) -> None:
        self.uow = uow
        self.now = now
        self.actor = actor
        self.ctx = ctx
        self.scope = scope
        self._targets: list[_TargetDraft] = []
        self._metadata: dict[str, JsonScalar] = {}
        self._side: list[_SideEvent] = []
        self._outbox: list[OutboxMessage] = []
        self.break_glass_orgs: set[str] = set()
        self.new_org = False
        #: The organization of ``scope`` as locked at the start of the action.
        self.org: Organization | None = None
        # The acting account as read once in this action (its state when it acted).
        self._actor_account: Account | None = None

    # -- description of the change -------------------------------------------------

    def target(self, type_: str, id_: str, **personal: str | None) -> None:
        """Name something the action touched; ``personal`` values (name, email) are
        stored erasably under commitments."""
        self._targets.append(_target_draft(type_, id_, personal))

    def target_account(self, account: Account) -> None:
        """Name an account the action touched, with its name and email as personal data."""
        self.target("account", account.id, name=account.display_name, email=account.email)

    def meta(self, **values: JsonScalar) -> None:
        """Add non-personal, non-secret metadata to the event."""
        self._metadata.update(values)

    def also_record(
        self,
        scope: str,
        action: str,
        *,
        account: Account | None = None,
        **metadata: JsonScalar,
    ) -> None:
        """Record an event in another organization that this action changed too."""
        targets = (
            []
            if account is None
            else [
                _target_draft(
                    "account", account.id, {"name": account.display_name, "email": account.email}
                )
            ]
        )
        self._side.append(_SideEvent(scope, action, targets, dict(metadata)))
        self.break_glass_orgs.add(scope)

    def email(
        self,
        template: str,
        to: Account,
        key: str,
        **params: JsonScalar,
    ) -> None:
        """Queue an email to ``to``, rendered in their language and time zone at dispatch."""
        self._outbox.append(email_message(template, to, key, self.scope, self.now, **params))

    def emit(self, topic: str, key: str, **payload: JsonScalar) -> None:
        """Queue a domain event for the host's listeners (``account.deactivated``...)."""
        body: dict[str, JsonScalar] = {"scope": self.scope}
        body.update(payload)
        self._outbox.append(
            OutboxMessage(
                id=new_ordered_id("obx"),
                kind=OutboxKind.EVENT,
                topic=topic,
                scope=self.scope,
                payload=body,
                idempotency_key=f"event:{topic}:{key}",
                created_at=self.now,
                next_attempt_at=self.now,
            )
        )

    # -- checks shared by use cases ----------------------------------------------------

    def actor_account(self) -> Account:
        """The acting account, which must exist and be active."""
        if self.actor.type is not ActorType.ACCOUNT:
            raise PermissionDenied(
                "This action must be performed by a person's account.",
                code="permission.account_required",
            )
        account = self._actor_account or self.uow.accounts.get(self.actor.id)
        if account is None or account.status is not AccountStatus.ACTIVE:
            raise PermissionDenied(
                "The acting account does not exist or is not active.",
                code="permission.inactive_actor",
            )
        self._actor_account = account
        return account

    def require(self, permission: Permission, org_id: str | None = None) -> Membership | None:
        """Check that the actor may do ``permission`` in the organization.

        The system actor (the host itself) may do anything; other actors need a
        membership whose grants allow it. Returns the actor's membership, if any.
        """
        org = org_id or self.scope
        if self.actor.type is ActorType.SYSTEM:
            return None
        account = self.actor_account()
        membership = self.uow.memberships.get(org, account.id)
        require(membership, permission, org)
        return membership

    # -- internals -----------------------------------------------------------------------

    def _drafts(self) -> tuple[list[_TargetDraft], dict[str, JsonScalar], list[_SideEvent]]:
        return self._targets, self._metadata, self._side


def email_message(
    template: str, to: Account, key: str, scope: str, now: datetime, **params: JsonScalar
) -> OutboxMessage:
    """The outbox message of an email to ``to`` (see :meth:`Recorder.email`), for writers
    outside a recorded action too; ``key`` makes its idempotency key."""
    payload: dict[str, JsonScalar] = {
        "to": to.email,
        "language": to.language,
        "timezone": to.timezone,
        "display_name": to.display_name,
    }
    payload.update(params)
    return OutboxMessage(
        id=new_ordered_id("obx"),
        kind=OutboxKind.EMAIL,
        topic=template,
        scope=scope,
        payload=payload,
        idempotency_key=f"email:{template}:{key}",
        created_at=now,
        next_attempt_at=now,
    )


def _target_draft(type_: str, id_: str, personal: Mapping[str, str | None]) -> _TargetDraft:
    values = {k: v for k, v in personal.items() if v}
    subject = id_ if type_ == "account" else ""
    return _TargetDraft(Target(type_, id_), values, subject)


class Runtime:
    """Runs use cases; shared by every feature API of one :class:`NulabPass`."""

    def __init__(self, store: Store, clock: Clock, config: NulabPassConfig) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.secret_key = config.secret_key.get_secret_value().encode("utf-8")
        self.policy = PlanPolicy(
            trial_length=config.trial_length,
            trial_seats=config.trial_seats,
            trial_cancel_ends_access_at_once=config.cancel_trial_ends_at_once,
            trial_reminder_before=config.trial_reminder_before,
            renewal_grace=config.renewal_grace,
            suspension_limit=config.suspension_limit,
        )
        self.gate = Gate(self.policy)

    def now(self) -> datetime:
        """The current time from the clock, checked to be aware."""
        now = self.clock.now()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ConfigurationError(
                "The clock returned a naive datetime; it must return aware UTC times.",
                code="config.naive_clock",
            )
        return now

    def check_context(self, ctx: RequestContext) -> None:
        """Validate the request context against configuration."""
        if not isinstance(ctx, RequestContext):
            raise InvalidInput("ctx must be a nulabpass.RequestContext.", code="context.invalid")
        if ctx.product is not None and ctx.product not in self.config.products:
            raise InvalidInput(
                f"Unknown product {ctx.product!r}; configured products are "
                f"{', '.join(self.config.products)}.",
                code="context.unknown_product",
            )
        for name, value, limit in (
            ("ip", ctx.ip, 64),
            ("user_agent", ctx.user_agent, 1024),
            ("request_id", ctx.request_id, 200),
        ):
            if value is not None and len(value) > limit:
                raise InvalidInput(
                    f"The request context field {name} is longer than {limit} characters.",
                    code="context.too_long",
                )

    def run(
        self,
        *,
        scope: str,
        action: str,
        actor: Actor,
        ctx: RequestContext,
        body: Callable[[Recorder], T],
        failure_target: Target | None = None,
        failure_action: str | None = None,
    ) -> T:
        """Run ``body`` as one audited action in organization ``scope``.

        A failure is recorded as ``failure_action`` when given (``saml.login_failed``),
        otherwise as ``action`` with the failure outcome.
        """
        spec(action)  # An uncatalogued action is a programming error; fail before writing.
        if failure_action is not None:
            spec(failure_action)
        if not isinstance(actor, Actor) or not isinstance(actor.id, str) or not actor.id:
            raise InvalidInput(
                "actor must be a nulabpass.Actor, e.g. Actor.account(account_id).",
                code="input.invalid_actor",
            )
        self.check_context(ctx)
        try:
            with self.store.transaction() as uow:
                now = self.now()
                rec = Recorder(uow, now, actor, ctx, scope)
                org = uow.organizations.lock(scope) if scope != HOST_SCOPE else None
                rec.org = org
                result = body(rec)
                self._enforce_break_glass(uow, rec, scope, existed=org is not None)
                targets, metadata, side = rec._drafts()
                self._append(
                    uow,
                    now,
                    scope,
                    action,
                    Outcome.SUCCESS,
                    actor,
                    ctx,
                    targets,
                    metadata,
                    actor_account=rec._actor_account,
                )
                # Every organization of a side event was locked by the break-glass check.
                for extra in side:
                    self._append(
                        uow,
                        now,
                        extra.scope,
                        extra.action,
                        Outcome.SUCCESS,
                        actor,
                        ctx,
                        extra.targets,
                        extra.metadata,
                        actor_account=rec._actor_account,
                    )
                for message in rec._outbox:
                    uow.outbox.add(message)
        except NulabPassError as exc:
            if scope != HOST_SCOPE:
                self._record_failure(
                    scope, failure_action or action, actor, ctx, exc, failure_target
                )
            raise
        _log.debug(
            "action %s in %s by %s:%s",
            action,
            scope,
            actor.type.value,
            actor.id,
            extra={"request_id": ctx.request_id},
        )
        return result

    # -- break-glass ---------------------------------------------------------------------

    @staticmethod
    def _break_glass(uow: UnitOfWork, org: Organization) -> int:
        return uow.memberships.count_break_glass(
            org.id, require_admin=org.settings.break_glass_requires_admin
        )

    def _enforce_break_glass(
        self, uow: UnitOfWork, rec: Recorder, scope: str, *, existed: bool
    ) -> None:
        orgs = set(rec.break_glass_orgs)
        if scope != HOST_SCOPE and (existed or rec.new_org):
            orgs.add(scope)
        for org_id in sorted(orgs):
            # Lock before counting: a concurrent writer of that organization must either
            # have committed (and be counted) or wait for us, or both could pass the
            # check and together leave it without break-glass access.
            # The action's own organization is locked already; use cases that change
            # it (settings) put the new value in rec.org.
            org = rec.org if org_id == scope and rec.org else uow.organizations.lock(org_id)
            if org is None:
                continue
            if self._break_glass(uow, org) == 0:
                who = (
                    "an admin"
                    if org.settings.break_glass_requires_admin
                    else ("an admin or plan admin")
                )
                raise BreakGlassViolation(
                    f"This change would leave organization {org.name!r} without an active "
                    f"non-managed account that is {who}. Keep at least one, so someone can "
                    "still sign in if single sign-on breaks; promote another non-managed "
                    "member first.",
                    details={"organization": org_id},
                )

    # -- audit events ----------------------------------------------------------------------

    def _append(
        self,
        uow: UnitOfWork,
        now: datetime,
        scope: str,
        action: str,
        outcome: Outcome,
        actor: Actor,
        ctx: RequestContext,
        targets: list[_TargetDraft],
        metadata: Mapping[str, JsonScalar],
        *,
        actor_account: Account | None = None,
    ) -> EventRecord:
        event_id = new_ordered_id("evt")
        personal: list[PersonalDatum] = []
        commitments: dict[str, str] = {}

        def add(slot: str, subject: str, value: str | None) -> None:
            if not value:
                return
            salt = new_salt()
            commitments[slot] = commit(slot, salt, value)
            personal.append(PersonalDatum(event_id, slot, subject, salt, value))

        actor_subject = actor.id if actor.type is ActorType.ACCOUNT else ""
        if actor.type is ActorType.ACCOUNT:
            account = actor_account or uow.accounts.get(actor.id)
            if account is not None:
                add("actor.name", actor.id, account.display_name)
                add("actor.email", actor.id, account.email)
        add("context.ip", actor_subject, ctx.ip)
        add("context.user_agent", actor_subject, ctx.user_agent)
        for index, draft in enumerate(targets):
            for key, value in sorted(draft.personal.items()):
                add(f"target.{index}.{key}", draft.subject_id, value)
        context: dict[str, str] = {}
        if ctx.request_id:
            context["request_id"] = ctx.request_id
        if ctx.product:
            context["product"] = ctx.product
        if actor.display:
            context["actor_display"] = actor.display
        seq, prev = uow.audit.head(scope)
        unsigned = EventRecord(
            id=event_id,
            scope=scope,
            seq=seq + 1,
            occurred_at=now,
            action=action,
            category=spec(action).category,
            outcome=outcome,
            actor_type=actor.type.value,
            actor_id=actor.id,
            targets=tuple(d.target for d in targets),
            context=context,
            metadata=dict(metadata),
            commitments=commitments,
            prev_hash=prev,
            hash="",
        )
        event = attrs.evolve(unsigned, hash=event_hash(unsigned))
        uow.audit.append(event, personal)
        return event

    def _record_failure(
        self,
        scope: str,
        action: str,
        actor: Actor,
        ctx: RequestContext,
        exc: NulabPassError,
        target: Target | None,
    ) -> None:
        key = hashlib.sha256(
            "\n".join((action, actor.type.value, actor.id, exc.code, ctx.ip or "")).encode("utf-8")
        ).hexdigest()
        try:
            with self.store.transaction() as uow:
                now = self.now()
                if uow.organizations.lock(scope) is None:
                    return
                counter = uow.audit.get_failure_counter(scope, key)
                window = self.config.failure_aggregation_window
                if counter is not None and now - counter.window_started_at < window:
                    uow.audit.put_failure_counter(attrs.evolve(counter, count=counter.count + 1))
                    return
                metadata: dict[str, JsonScalar] = {"error_code": exc.code}
                if counter is not None and counter.count > 1:
                    # Failures that were counted, not recorded, in the previous window.
                    metadata["repeats_not_recorded"] = counter.count - 1
                targets = [] if target is None else [_TargetDraft(target, {}, "")]
                self._append(
                    uow, now, scope, action, Outcome.FAILURE, actor, ctx, targets, metadata
                )
                uow.audit.put_failure_counter(FailureCounter(scope, key, now, 1))
        except NulabPassError:
            # Recording a failure must never mask the failure being reported.
            _log.warning("could not record failed %s in %s", action, scope, exc_info=True)


def expiry(now: datetime, ttl: timedelta) -> datetime:
    """When something issued at ``now`` with lifetime ``ttl`` expires."""
    return now + ttl
