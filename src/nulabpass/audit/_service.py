"""Reading, verifying and erasing the audit log."""

from __future__ import annotations

import base64
import binascii
import calendar
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import attrs

from nulabpass._context import Actor, ActorType, RequestContext
from nulabpass._gate import Capability
from nulabpass._runtime import HOST_SCOPE, Recorder, Runtime
from nulabpass.audit._catalogue import ACTIONS
from nulabpass.audit._chain import ChainVerification
from nulabpass.audit._checkpoint import Checkpoint
from nulabpass.audit._export import FORMATS, AuditExport
from nulabpass.audit._ledger import (
    build_checkpoint,
    consistency_proof,
    inclusion_proof,
    purge_through,
    verify_log,
)
from nulabpass.audit._model import (
    AuditAnchor,
    AuditQuery,
    EventRecord,
    Outcome,
    PersonalDatum,
)
from nulabpass.audit.verifier import ConsistencyProof, InclusionProof, PublicKeys
from nulabpass.errors import ConfigurationError, InvalidInput, NotFound, PermissionDenied
from nulabpass.org._permissions import Permission
from nulabpass.ports import KeyProvider, SigningKey, Store

__all__ = [
    "AuditAPI",
    "AuditEntry",
    "AuditEntryPage",
    "PartyView",
    "PurgeReport",
    "verify_chain",
]

_MAX_LIMIT = 1000
# Cursors this log issues are short; anything longer is refused before decoding.
_MAX_CURSOR = 200
# Sequence numbers fit a signed 64-bit column.
_MAX_SEQ = 2**63 - 1
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
    if len(cursor) > _MAX_CURSOR:
        raise InvalidInput(
            "The cursor is not one this audit log returned.", code="audit.invalid_cursor"
        )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        seq, order = data["s"], data["n"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise InvalidInput(
            "The cursor is not one this audit log returned.", code="audit.invalid_cursor"
        ) from None
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or not 0 <= seq <= _MAX_SEQ
        or order != newest_first
    ):
        raise InvalidInput(
            "The cursor does not belong to a query in this order.", code="audit.invalid_cursor"
        )
    return seq


class AuditAPI:
    """The audit log of each organization."""

    def __init__(self, rt: Runtime, keys: KeyProvider | None = None) -> None:
        self._rt = rt
        self._keys = keys

    def query(
        self,
        actor: Actor,
        org_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        actions: Sequence[str] = (),
        category: str | None = None,
        actor_id: str | None = None,
        target_id: str | None = None,
        outcome: Outcome | None = None,
        ip: str | None = None,
        newest_first: bool = True,
        cursor: str | None = None,
        limit: int = 100,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> AuditEntryPage:
        """Read events (admins and audit log admins, while the plan allows it).

        Filters combine with AND: ``since <= occurred_at < until``, any of ``actions``,
        the ``category`` (any of its actions), the acting id, any target's id, the
        outcome, the request's IP address (exactly as recorded). Pages are keyset-paged
        by sequence, so appends while paging neither skip nor repeat entries. The read
        is itself recorded (``audit.read``).
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
        if ip is not None and (not isinstance(ip, str) or not ip or len(ip) > 64):
            raise InvalidInput(
                "ip must be an IP address as recorded with requests.", code="audit.invalid_ip"
            )
        if not all(isinstance(a, str) for a in actions):
            raise InvalidInput("actions must be action names.", code="audit.invalid_action")
        if category is not None:
            in_category = {a.name for a in ACTIONS.values() if a.category == category}
            if not in_category:
                raise InvalidInput(
                    f"There is no audit category {category!r}.", code="audit.invalid_category"
                )
            # A category is the set of its actions; with actions too, both must match.
            chosen = sorted(in_category & set(actions)) if actions else sorted(in_category)
            actions = chosen or ("",)
        q = AuditQuery(
            scope=org_id,
            since=since,
            until=until,
            actions=tuple(actions),
            actor_id=actor_id,
            target_id=target_id,
            outcome=wanted,
            ip=ip,
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
                        ("category", category),
                        ("actor", actor_id),
                        ("target", target_id),
                        ("outcome", outcome),
                        # Only the filter's name: the address itself is personal data.
                        ("ip", ip),
                    )
                    if value
                ),
            )
            next_cursor = _encode_cursor(events[-1].seq, newest_first) if more else None
            return AuditEntryPage(entries, next_cursor)

        return self._rt.run(scope=org_id, action="audit.read", actor=actor, ctx=ctx, body=body)

    def verify(
        self,
        org_id: str,
        *,
        batch_size: int = 1000,
        public_keys: PublicKeys | None = None,
    ) -> ChainVerification:
        """Verify one organization's chain and checkpoints, streaming in batches.

        Names the first event that was modified, removed, inserted or reordered, any
        personal data changed after it was recorded, and any stored checkpoint whose
        root or signature does not match (events rewritten, or removed from the end).
        Signatures are checked with ``public_keys`` (by key id) or, by default, the key
        provider's public keys. After a purge, verification starts at the anchor.
        """
        return verify_chain(
            self._rt.store,
            org_id,
            batch_size=batch_size,
            public_key=self._public_key(public_keys),
        )

    def _public_key(self, keys: PublicKeys | None) -> Callable[[str], bytes | None] | None:
        if keys is not None:
            return keys if callable(keys) else keys.get
        if self._keys is not None:
            return self._keys.audit_public_key
        return None

    def _signing_key(self) -> SigningKey:
        if self._keys is None:
            raise ConfigurationError(
                "Signed audit checkpoints need a KeyProvider: pass keys=... to NulabPass.",
                code="audit.no_signing_key",
            )
        return self._keys.audit_signing_key()

    def checkpoint(
        self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> Checkpoint:
        """Sign a checkpoint over the organization's log as it stands (host only; run it
        periodically, e.g. daily). Recorded as ``audit.checkpoint_signed``."""

        def body(rec: Recorder) -> Checkpoint:
            _require_org(rec, org_id)
            _require_system(actor, "sign audit checkpoints")
            cp = build_checkpoint(rec.uow, org_id, rec.now, self._signing_key())
            rec.target("organization", org_id)
            rec.meta(tree_size=cp.tree_size, root_hash=cp.root_hash, key_id=cp.key_id)
            return cp

        return self._rt.run(
            scope=org_id, action="audit.checkpoint_signed", actor=actor, ctx=ctx, body=body
        )

    def checkpoints(self, org_id: str, *, min_size: int = 0, limit: int = 100) -> list[Checkpoint]:
        """Stored checkpoints from ``min_size`` events on, smallest first."""
        with self._rt.store.transaction() as uow:
            return uow.audit_ledger.list_checkpoints(org_id, min_size=min_size, limit=limit)

    def _checkpoint_of(self, org_id: str, tree_size: int | None) -> Checkpoint:
        with self._rt.store.transaction() as uow:
            cp = (
                uow.audit_ledger.latest_checkpoint(org_id)
                if tree_size is None
                else uow.audit_ledger.get_checkpoint(org_id, tree_size)
            )
        if cp is None:
            raise NotFound(
                f"There is no checkpoint{'' if tree_size is None else f' of {tree_size} events'}"
                f" for {org_id!r}; sign one with np.audit.checkpoint first.",
                code="audit.checkpoint_not_found",
            )
        return cp

    def inclusion_proof(
        self, org_id: str, seq: int, *, tree_size: int | None = None
    ) -> InclusionProof:
        """Prove that event ``seq`` is in the checkpoint of ``tree_size`` events (default:
        the latest); verify it offline with ``verifier.verify_inclusion_proof``."""
        cp = self._checkpoint_of(org_id, tree_size)
        return inclusion_proof(self._rt.store, org_id, seq, cp)

    def consistency_proof(
        self, org_id: str, first_size: int, second_size: int | None = None
    ) -> ConsistencyProof:
        """Prove that the log at checkpoint ``first_size`` is a prefix of the log at
        checkpoint ``second_size`` (default: the latest)."""
        first = self._checkpoint_of(org_id, first_size)
        second = self._checkpoint_of(org_id, second_size)
        return consistency_proof(self._rt.store, org_id, first, second)

    def export(
        self,
        actor: Actor,
        org_id: str,
        *,
        fmt: str = "csv",
        month: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> AuditExport:
        """Export the log (``fmt``: ``csv``, ``jsonl`` or ``ocsf``), whole, for one
        ``month`` (``"2026-11"``, UTC) or for ``since <= occurred_at < until``.

        Admins and audit log admins, while the plan allows reading. Signs a checkpoint
        and records ``audit.exported``; the returned export streams with constant memory
        and then gives a signed manifest that lets anyone verify the file offline.
        """
        if fmt not in FORMATS:
            raise InvalidInput(
                f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.",
                code="audit.invalid_format",
            )
        if month is not None:
            if since is not None or until is not None:
                raise InvalidInput(
                    "Give either month or since/until, not both.", code="audit.invalid_period"
                )
            since, until = _month_bounds(month)
        for name, value in (("since", since), ("until", until)):
            if value is not None and (
                not isinstance(value, datetime) or value.utcoffset() is None
            ):
                raise InvalidInput(f"{name} must be an aware datetime.", code="audit.invalid_time")

        def body(rec: Recorder) -> AuditExport:
            _require_org(rec, org_id)
            rec.require(Permission.READ_AUDIT_LOG)
            self._rt.gate.require(rec.uow, org_id, Capability.READ_AUDIT, rec.now)
            key = self._signing_key()
            cp = build_checkpoint(rec.uow, org_id, rec.now, key)
            ledger = rec.uow.audit_ledger
            anchor = ledger.anchor(org_id)
            floor = anchor.seq if anchor is not None else 0
            found = floor + 1 if since is None else ledger.first_seq_from(org_id, since)
            end = cp.tree_size if until is None else ledger.last_seq_before(org_id, until)
            first: int | None = None
            last: int | None = None
            if found is not None and max(found, floor + 1) <= min(end, cp.tree_size):
                first, last = max(found, floor + 1), min(end, cp.tree_size)
            export = AuditExport(
                store=self._rt.store,
                scope=org_id,
                fmt=fmt,
                first_seq=first,
                last_seq=last,
                since=since,
                until=until,
                checkpoint=cp,
                key=key,
                frontier_start=floor,
                frontier=() if anchor is None else anchor.frontier,
            )
            rec.target("organization", org_id)
            rec.meta(
                format=fmt,
                period=month or "",
                first_seq=first,
                last_seq=last,
                tree_size=cp.tree_size,
            )
            return export

        return self._rt.run(scope=org_id, action="audit.exported", actor=actor, ctx=ctx, body=body)

    def retention(self, org_id: str) -> int:
        """The organization's retention period in months (its own or the default)."""
        with self._rt.store.transaction() as uow:
            months = uow.audit_ledger.retention_months(org_id)
        return self._rt.config.audit_retention_months if months is None else months

    def set_retention(
        self,
        actor: Actor,
        org_id: str,
        *,
        months: int | None,
        ctx: RequestContext = _DEFAULT_CTX,
    ) -> int:
        """Set how many months events are kept (admins; ``None``: back to the default).
        Returns the period now in force. Recorded as ``audit.retention_changed``."""
        if months is not None and (
            isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 1200
        ):
            raise InvalidInput(
                "The retention period must be a whole number of months from 1 to 1200.",
                code="audit.invalid_retention",
            )

        def body(rec: Recorder) -> int:
            _require_org(rec, org_id)
            rec.require(Permission.MANAGE_ORGANIZATION)
            before = rec.uow.audit_ledger.retention_months(org_id)
            rec.uow.audit_ledger.set_retention_months(org_id, months)
            default = self._rt.config.audit_retention_months
            rec.target("organization", org_id)
            rec.meta(
                months_before=default if before is None else before,
                months_after=default if months is None else months,
            )
            return default if months is None else months

        return self._rt.run(
            scope=org_id, action="audit.retention_changed", actor=actor, ctx=ctx, body=body
        )

    def purge(
        self, actor: Actor, org_id: str, *, ctx: RequestContext = _DEFAULT_CTX
    ) -> PurgeReport:
        """Delete events older than the retention period (host only; run it periodically).

        Before deleting, signs a checkpoint over exactly the events to be purged and
        records an anchor (the last purged event's hash and the Merkle frontier), so the
        remaining log still verifies and proofs for it still work. The newest event is
        always kept. Recorded as ``audit.purged``.
        """

        def body(rec: Recorder) -> PurgeReport:
            _require_org(rec, org_id)
            _require_system(actor, "purge audit logs")
            months = rec.uow.audit_ledger.retention_months(org_id)
            months = self._rt.config.audit_retention_months if months is None else months
            cutoff = _months_before(rec.now, months)
            head, _ = rec.uow.audit.head(org_id)
            through = min(rec.uow.audit_ledger.last_seq_before(org_id, cutoff), head - 1)
            anchor = purge_through(rec.uow, org_id, through, rec.now, self._signing_key())
            purged = 0
            if anchor is not None:
                purged = rec.uow.audit_ledger.purge_through(org_id, anchor.seq)
            rec.target("organization", org_id)
            rec.meta(
                retention_months=months,
                cutoff=cutoff.isoformat(),
                events_purged=purged,
                through_seq=anchor.seq if anchor is not None else None,
            )
            return PurgeReport(org_id, purged, cutoff, anchor)

        return self._rt.run(scope=org_id, action="audit.purged", actor=actor, ctx=ctx, body=body)

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


@attrs.frozen(slots=True)
class PurgeReport:
    """What a purge removed: ``purged`` events older than ``cutoff``; ``anchor`` is where
    the remaining log now starts (``None`` when nothing was old enough)."""

    scope: str
    purged: int
    cutoff: datetime
    anchor: AuditAnchor | None


def _require_org(rec: Recorder, org_id: str) -> None:
    if rec.uow.organizations.get(org_id) is None:
        raise NotFound(f"There is no organization {org_id!r}.", code="organization.not_found")


def _require_system(actor: Actor, what: str) -> None:
    if actor.type is not ActorType.SYSTEM:
        raise PermissionDenied(f"Only the host can {what}.", code="permission.host_only")


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        year, mon = (int(part) for part in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=UTC)
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput(
            f"The month {month!r} is not of the form YYYY-MM, e.g. 2026-11.",
            code="audit.invalid_period",
        ) from None
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _months_before(when: datetime, months: int) -> datetime:
    """``when`` moved back by whole calendar months (the day clamped to the month's end)."""
    index = when.year * 12 + (when.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    last_day = calendar.monthrange(year, month)[1]
    return when.replace(year=year, month=month, day=min(when.day, last_day))


def verify_chain(
    store: Store,
    scope: str,
    *,
    batch_size: int = 1000,
    anchor: AuditAnchor | None = None,
    public_key: Callable[[str], bytes | None] | None = None,
) -> ChainVerification:
    """Verify the chain of ``scope`` in ``store`` and its stored checkpoints, reading
    ``batch_size`` events at a time so memory stays flat as the log grows.

    The chain starts at ``anchor`` (default: the anchor the last purge recorded, if
    any; otherwise seq 1 and the genesis hash). Checkpoint signatures are checked when
    ``public_key`` (key id -> 32-byte Ed25519 public key) is given.
    """
    return verify_log(store, scope, public_key=public_key, anchor=anchor, batch_size=batch_size)
