"""Reading, verifying and erasing the audit log."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from nulabpass._context import Actor, ActorType, RequestContext
from nulabpass._gate import Capability
from nulabpass._runtime import HOST_SCOPE, Recorder, Runtime
from nulabpass.audit._chain import ChainVerification, check_event
from nulabpass.audit._model import GENESIS_HASH, AuditQuery, EventRecord, Outcome, PersonalDatum
from nulabpass.errors import InvalidInput, NotFound, PermissionDenied
from nulabpass.org._permissions import Permission
from nulabpass.ports import Store, UnitOfWork

__all__ = ["AuditAPI", "AuditEntry", "AuditEntryPage", "PartyView", "verify_chain"]

_MAX_LIMIT = 1000
_DEFAULT_CTX = RequestContext()


@attrs.frozen(slots=True)
class PartyView:
    """An actor or target as shown to readers; ``name``/``email`` are ``None`` once
    erased (or when never recorded)."""

    type: str
    id: str
    name: str | None = None
    email: str | None = None
    display: str | None = None


@attrs.frozen(slots=True)
class AuditEntry:
    """One audit event as shown to admins and auditors."""

    id: str
    seq: int
    occurred_at: datetime
    action: str
    category: str
    outcome: Outcome
    actor: PartyView
    targets: tuple[PartyView, ...]
    ip: str | None
    user_agent: str | None
    request_id: str | None
    product: str | None
    metadata: Mapping[str, str | int | bool | None]


@attrs.frozen(slots=True)
class AuditEntryPage:
    """A page of entries; pass ``next_cursor`` back to read on (``None``: the end)."""

    entries: tuple[AuditEntry, ...]
    next_cursor: str | None


def _entry(event: EventRecord, data: Sequence[PersonalDatum]) -> AuditEntry:
    values = {d.slot: d.value for d in data}
    actor = PartyView(
        type=event.actor_type,
        id=event.actor_id,
        name=values.get("actor.name"),
        email=values.get("actor.email"),
        display=event.context.get("actor_display"),
    )
    targets = tuple(
        PartyView(
            type=t.type,
            id=t.id,
            name=values.get(f"target.{i}.name"),
            email=values.get(f"target.{i}.email"),
        )
        for i, t in enumerate(event.targets)
    )
    return AuditEntry(
        id=event.id,
        seq=event.seq,
        occurred_at=event.occurred_at,
        action=event.action,
        category=event.category,
        outcome=event.outcome,
        actor=actor,
        targets=targets,
        ip=values.get("context.ip"),
        user_agent=values.get("context.user_agent"),
        request_id=event.context.get("request_id"),
        product=event.context.get("product"),
        metadata=dict(event.metadata),
    )


def _encode_cursor(seq: int, newest_first: bool) -> str:
    raw = json.dumps({"s": seq, "n": newest_first}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str, newest_first: bool) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        seq, order = data["s"], data["n"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise InvalidInput(
            "The cursor is not one this audit log returned.", code="audit.invalid_cursor"
        ) from None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or order != newest_first:
        raise InvalidInput(
            "The cursor does not belong to a query in this order.", code="audit.invalid_cursor"
        )
    return seq


class AuditAPI:
    """The audit log of each organization."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def query(
        self,
        actor: Actor,
        org_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actions: Sequence[str] = (),
        actor_id: str | None = None,
        target_id: str | None = None,
        outcome: Outcome | None = None,
        newest_first: bool = True,
        cursor: str | None = None,
        limit: int = 100,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> AuditEntryPage:
        """Read events (admins and audit log admins, while the plan allows it).

        Filters combine with AND: ``since <= occurred_at < until``, any of ``actions``,
        the acting id, any target's id, the outcome. Pages are keyset-paged by sequence,
        so appends while paging neither skip nor repeat entries. The read is itself
        recorded (``audit.read``).
        """
        for name, value in (("since", since), ("until", until)):
            if value is not None and (
                not isinstance(value, datetime) or value.utcoffset() is None
            ):
                raise InvalidInput(f"{name} must be an aware datetime.", code="audit.invalid_time")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_LIMIT:
            raise InvalidInput(
                f"limit must be between 1 and {_MAX_LIMIT}.", code="audit.invalid_limit"
            )
        if isinstance(actions, str):
            actions = (actions,)
        if not isinstance(cursor, str | None):
            raise InvalidInput("The cursor must be a string.", code="audit.invalid_cursor")
        after = _decode_cursor(cursor, newest_first) if cursor is not None else None
        try:
            wanted = Outcome(outcome) if outcome is not None else None
        except ValueError:
            raise InvalidInput(
                f"outcome must be 'success' or 'failure', not {outcome!r}.",
                code="audit.invalid_outcome",
            ) from None
        if not all(isinstance(a, str) for a in actions):
            raise InvalidInput("actions must be action names.", code="audit.invalid_action")
        q = AuditQuery(
            scope=org_id,
            since=since,
            until=until,
            actions=tuple(actions),
            actor_id=actor_id,
            target_id=target_id,
            outcome=wanted,
            after_seq=after,
            newest_first=newest_first,
            limit=limit + 1,
        )

        def body(rec: Recorder) -> AuditEntryPage:
            if rec.uow.organizations.get(org_id) is None:
                raise NotFound(
                    f"There is no organization {org_id!r}.", code="organization.not_found"
                )
            rec.require(Permission.READ_AUDIT_LOG)
            self._rt.gate.require(rec.uow, org_id, Capability.READ_AUDIT, rec.now)
            events = rec.uow.audit.query(q)
            more = len(events) > limit
            events = events[:limit]
            personal = rec.uow.audit.personal_for([e.id for e in events])
            entries = tuple(_entry(e, personal.get(e.id, ())) for e in events)
            rec.meta(
                returned=len(entries),
                filters=",".join(
                    name
                    for name, value in (
                        ("since", since),
                        ("until", until),
                        ("actions", actions),
                        ("actor", actor_id),
                        ("target", target_id),
                        ("outcome", outcome),
                    )
                    if value
                ),
            )
            next_cursor = _encode_cursor(events[-1].seq, newest_first) if more else None
            return AuditEntryPage(entries, next_cursor)

        return self._rt.run(scope=org_id, action="audit.read", actor=actor, ctx=ctx, body=body)

    def verify(self, org_id: str, *, batch_size: int = 1000) -> ChainVerification:
        """Verify one organization's chain from its first event, streaming in batches.

        Names the first event that was modified, removed, inserted or reordered, and any
        personal data changed after it was recorded.
        """
        return verify_chain(self._rt.store, org_id, batch_size=batch_size)

    def verify_all(self) -> list[ChainVerification]:
        """Verify every chain in the store (the host's own chain included)."""
        with self._rt.store.transaction() as uow:
            scopes = uow.audit.scopes()
        return [self.verify(scope) for scope in scopes]

    def erase_person(
        self, actor: Actor, account_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> int:
        """Erase one person's personal data (names, emails, IP addresses, user agents)
        from every audit event, keeping every chain verifiable. Host only.

        Returns how many values were erased; the erasure itself is recorded in the
        host's chain without the person's data.
        """
        if not isinstance(account_id, str) or not account_id:
            raise InvalidInput("account_id must be a non-empty string.", code="input.invalid_id")

        def body(rec: Recorder) -> int:
            if actor.type is not ActorType.SYSTEM:
                raise PermissionDenied(
                    "Only the host can erase a person's data from audit logs.",
                    code="permission.host_only",
                )
            erased = rec.uow.audit.erase_subject(account_id)
            rec.target("account", account_id)
            rec.meta(values_erased=erased)
            return erased

        return self._rt.run(
            scope=HOST_SCOPE, action="audit.personal_data_erased", actor=actor, ctx=ctx, body=body
        )


def verify_chain(store: Store, scope: str, *, batch_size: int = 1000) -> ChainVerification:
    """Verify the chain of ``scope`` in ``store``, reading ``batch_size`` events at a
    time so memory stays flat as the log grows."""
    expected_seq, expected_prev, count = 1, GENESIS_HASH, 0
    with store.transaction() as uow:
        batch: list[EventRecord] = []
        for event in uow.audit.iter_chain(scope, batch_size=batch_size):
            batch.append(event)
            if len(batch) < batch_size:
                continue
            result = _check_batch(uow, scope, batch, expected_seq, expected_prev, count)
            if isinstance(result, ChainVerification):
                return result
            expected_seq, expected_prev, count = result
            batch = []
        result = _check_batch(uow, scope, batch, expected_seq, expected_prev, count)
        if isinstance(result, ChainVerification):
            return result
        expected_seq, expected_prev, count = result
    return ChainVerification(
        scope=scope,
        ok=True,
        events_checked=count,
        head_seq=expected_seq - 1,
        head_hash=expected_prev,
        message=f"{count} events verified.",
    )


def _check_batch(
    uow: UnitOfWork,
    scope: str,
    batch: list[EventRecord],
    expected_seq: int,
    expected_prev: str,
    count: int,
) -> ChainVerification | tuple[int, str, int]:
    if not batch:
        return expected_seq, expected_prev, count
    personal = uow.audit.personal_for([e.id for e in batch])
    for event in batch:
        problem = check_event(event, expected_seq, expected_prev, personal.get(event.id, ()))
        if problem is not None:
            code, message = problem
            return ChainVerification(
                scope=scope,
                ok=False,
                events_checked=count,
                head_seq=expected_seq - 1,
                head_hash=expected_prev,
                first_broken_seq=event.seq,
                first_broken_id=event.id,
                problem=code,
                message=message,
            )
        count += 1
        expected_seq = event.seq + 1
        expected_prev = event.hash
    return expected_seq, expected_prev, count
