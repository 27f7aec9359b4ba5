"""The in-memory store: transactional, for tests, demos and single-process embedding.

Theory of operation: one re-entrant lock serialises transactions, so every unit of work
sees a consistent state and nothing interleaves (the strongest isolation, as SQLite's
single writer). Each write appends the old value to an undo log; a rollback replays the
log backwards, so aborting costs what was written, never a copy of the whole store.
Entities are immutable, so handing them out needs no defensive copies.

Data lives in this process only; a second process sees another store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs

from nulabpass.audit._checkpoint import Checkpoint
from nulabpass.audit._model import (
    GENESIS_HASH,
    AuditAnchor,
    AuditQuery,
    ChainRow,
    EventRecord,
    PersonalDatum,
)
from nulabpass.domains._model import DomainChallenge
from nulabpass.errors import Conflict, NotFound, StaleWrite
from nulabpass.org._model import (
    Account,
    AccountStatus,
    ConversionRequest,
    ConversionStatus,
    Domain,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    Role,
    Team,
    TeamMember,
)
from nulabpass.outbox._model import OutboxMessage
from nulabpass.ports import BILLING_APPLIED, FailureCounter, StoredPlan
from nulabpass.scim._errors import scim_provisioned
from nulabpass.stores._memory_audit import MemoryAuditLedger
from nulabpass.stores._memory_domains import MemoryDomainChallenges
from nulabpass.stores._memory_saml import MemorySamlLoginRepository, SamlState
from nulabpass.stores._memory_saml_metadata import (
    MemorySamlMetadataRepository,
    SamlMetadataState,
)
from nulabpass.stores._memory_scim import MemoryScimRepository, ScimState

__all__ = ["MemoryStore"]

_MISSING: Any = object()


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


_V = TypeVar("_V", bound=_Versioned)


class _State:
    def __init__(self) -> None:
        self.orgs: dict[str, Organization] = {}
        self.accounts: dict[str, Account] = {}
        self.email_index: dict[str, str] = {}
        self.managed: dict[str, dict[str, None]] = {}
        self.memberships: dict[tuple[str, str], Membership] = {}
        self.members_by_org: dict[str, dict[str, None]] = {}
        self.orgs_by_account: dict[str, dict[str, None]] = {}
        # Members holding admin or plan admin: few per organization, so the break-glass
        # count checked after every action does not scan every member.
        self.privileged: dict[str, dict[str, None]] = {}
        self.teams: dict[str, Team] = {}
        self.teams_by_org: dict[str, dict[str, None]] = {}
        self.team_members: dict[str, dict[str, TeamMember]] = {}
        self.invitations: dict[str, Invitation] = {}
        self.invitations_by_account: dict[str, dict[str, None]] = {}
        self.conversions: dict[str, ConversionRequest] = {}
        self.conversions_by_account: dict[str, dict[str, None]] = {}
        self.domains: dict[tuple[str, str], Domain] = {}
        self.domain_challenges: dict[str, DomainChallenge] = {}
        self.events: dict[str, list[EventRecord]] = {}
        self.personal: dict[str, tuple[PersonalDatum, ...]] = {}
        self.failures: dict[tuple[str, str], FailureCounter] = {}
        self.checkpoints: dict[str, dict[str, Checkpoint]] = {}
        self.anchors: dict[str, AuditAnchor] = {}
        self.retention: dict[str, int] = {}
        self.outbox: dict[str, OutboxMessage] = {}
        self.outbox_keys: dict[str, str] = {}
        self.outbox_pending: dict[str, None] = {}
        self.plans: dict[str, StoredPlan] = {}
        self.plan_notices: dict[str, dict[str, datetime]] = {}
        self.billing_events: dict[str, tuple[str, str, datetime, str, datetime]] = {}
        self.last_billing: dict[str, datetime] = {}
        self.withdrawn: dict[str, dict[str, datetime]] = {}
        self.scim = ScimState()
        self.saml = SamlState()
        self.saml_metadata = SamlMetadataState()


class _Tx:
    """Undo log of one transaction."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.undo: list[Callable[[], None]] = []

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        old = table.get(key, _MISSING)
        table[key] = value
        self.undo.append(lambda: _restore(table, key, old))

    def pop(self, table: dict[Any, Any], key: Any) -> None:
        if key not in table:
            return
        old = table.pop(key)
        self.undo.append(lambda: _restore(table, key, old))

    def index_add(
        self, index: dict[str, dict[str, Any]], key: str, member: str, value: Any = None
    ) -> None:
        self.put(index.setdefault(key, {}), member, value)

    def index_remove(self, index: dict[str, dict[str, Any]], key: str, member: str) -> None:
        bucket = index.get(key)
        if bucket is not None:
            self.pop(bucket, member)

    def append_event(self, scope: str, event: EventRecord) -> None:
        chain = self.state.events.setdefault(scope, [])
        chain.append(event)
        self.undo.append(lambda: _drop_last(chain))

    def rollback(self) -> None:
        while self.undo:
            self.undo.pop()()


def _drop_last(chain: list[EventRecord]) -> None:
    chain.pop()


def _restore(table: dict[Any, Any], key: Any, old: Any) -> None:
    if old is _MISSING:
        table.pop(key, None)
    else:
        table[key] = old


def _bump(entity: _V, current: Any, what: str, ident: str) -> _V:
    if current is None:
        raise NotFound(f"The {what} {ident} no longer exists.", code=f"{what}.not_found")
    if current.version != entity.version:
        raise StaleWrite(
            f"The {what} {ident} was changed by another request (version "
            f"{current.version}, this write was based on {entity.version}). "
            "Reload it and try again.",
        )
    return attrs.evolve(entity, version=entity.version + 1)  # type: ignore[misc]


class _Organizations:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, org_id: str) -> Organization | None:
        return self._s.orgs.get(org_id)

    def lock(self, org_id: str) -> Organization | None:
        # The store-wide lock is already held by this transaction.
        return self._s.orgs.get(org_id)

    def add(self, org: Organization) -> None:
        if org.id in self._s.orgs:
            raise Conflict(f"Organization {org.id} already exists.", code="organization.exists")
        self._tx.put(self._s.orgs, org.id, org)

    def update(self, org: Organization) -> Organization:
        new = _bump(org, self._s.orgs.get(org.id), "organization", org.id)
        self._tx.put(self._s.orgs, org.id, new)
        return new


class _Accounts:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, account_id: str) -> Account | None:
        return self._s.accounts.get(account_id)

    def get_by_email(self, email: str) -> Account | None:
        account_id = self._s.email_index.get(email)
        return None if account_id is None else self._s.accounts[account_id]

    def add(self, account: Account) -> None:
        if account.email in self._s.email_index:
            raise Conflict(
                f"An account with the email address {account.email} already exists.",
                code="account.email_taken",
            )
        if account.id in self._s.accounts:
            raise Conflict(f"Account {account.id} already exists.", code="account.exists")
        self._tx.put(self._s.accounts, account.id, account)
        self._tx.put(self._s.email_index, account.email, account.id)
        if account.managed_by is not None:
            self._tx.index_add(self._s.managed, account.managed_by, account.id)

    def update(self, account: Account) -> Account:
        current = self._s.accounts.get(account.id)
        new = _bump(account, current, "account", account.id)
        assert current is not None  # noqa: S101 - _bump raised otherwise
        # The SQL store's foreign key from SCIM rows to (id, managed_by).
        if (
            new.managed_by != current.managed_by
            and current.managed_by is not None
            and (current.managed_by, new.id) in self._s.scim.users
        ):
            raise scim_provisioned(new.id)
        if new.email != current.email:
            if new.email in self._s.email_index:
                raise Conflict(
                    f"An account with the email address {new.email} already exists.",
                    code="account.email_taken",
                )
            self._tx.pop(self._s.email_index, current.email)
            self._tx.put(self._s.email_index, new.email, new.id)
        if new.managed_by != current.managed_by:
            if current.managed_by is not None:
                self._tx.index_remove(self._s.managed, current.managed_by, new.id)
            if new.managed_by is not None:
                self._tx.index_add(self._s.managed, new.managed_by, new.id)
        self._tx.put(self._s.accounts, new.id, new)
        return new

    def delete(self, account_id: str) -> None:
        current = self._s.accounts.get(account_id)
        if current is None:
            return
        if current.managed_by is not None and (
            (current.managed_by, account_id) in self._s.scim.users
        ):
            raise Conflict(
                f"Account {account_id} still has SCIM attributes; delete them first.",
                code="account.in_use",
            )
        self._tx.pop(self._s.email_index, current.email)
        if current.managed_by is not None:
            self._tx.index_remove(self._s.managed, current.managed_by, account_id)
        self._tx.pop(self._s.accounts, account_id)

    def count_managed(self, org_id: str) -> int:
        return len(self._s.managed.get(org_id, {}))

    def list_managed(self, org_id: str) -> list[Account]:
        return [self._s.accounts[i] for i in sorted(self._s.managed.get(org_id, {}))]


class _Memberships:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, org_id: str, account_id: str) -> Membership | None:
        return self._s.memberships.get((org_id, account_id))

    def add(self, membership: Membership) -> None:
        key = (membership.org_id, membership.account_id)
        if key in self._s.memberships:
            raise Conflict(
                f"Account {membership.account_id} is already a member of organization "
                f"{membership.org_id}.",
                code="membership.exists",
            )
        self._tx.put(self._s.memberships, key, membership)
        self._tx.index_add(self._s.members_by_org, membership.org_id, membership.account_id)
        self._tx.index_add(self._s.orgs_by_account, membership.account_id, membership.org_id)
        self._index_privilege(membership)

    def _index_privilege(self, membership: Membership) -> None:
        if membership.can_break_glass:
            self._tx.index_add(self._s.privileged, membership.org_id, membership.account_id)
        else:
            self._tx.index_remove(self._s.privileged, membership.org_id, membership.account_id)

    def update(self, membership: Membership) -> Membership:
        key = (membership.org_id, membership.account_id)
        new = _bump(membership, self._s.memberships.get(key), "membership", f"{key[0]}/{key[1]}")
        self._tx.put(self._s.memberships, key, new)
        self._index_privilege(new)
        return new

    def delete(self, org_id: str, account_id: str) -> None:
        self._tx.pop(self._s.memberships, (org_id, account_id))
        self._tx.index_remove(self._s.members_by_org, org_id, account_id)
        self._tx.index_remove(self._s.orgs_by_account, account_id, org_id)
        self._tx.index_remove(self._s.privileged, org_id, account_id)

    def list_for_org(self, org_id: str) -> list[Membership]:
        members = self._s.members_by_org.get(org_id, {})
        return [self._s.memberships[(org_id, a)] for a in sorted(members)]

    def list_for_account(self, account_id: str) -> list[Membership]:
        orgs = self._s.orgs_by_account.get(account_id, {})
        return [self._s.memberships[(o, account_id)] for o in sorted(orgs)]

    def count_break_glass(self, org_id: str, *, require_admin: bool) -> int:
        count = 0
        for account_id in self._s.privileged.get(org_id, {}):
            m = self._s.memberships[(org_id, account_id)]
            if not (m.role is Role.ADMIN or (m.plan_admin and not require_admin)):
                continue
            account = self._s.accounts.get(m.account_id)
            if (
                account is not None
                and account.managed_by is None
                and account.status is AccountStatus.ACTIVE
            ):
                count += 1
        return count


class _Teams:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, team_id: str) -> Team | None:
        return self._s.teams.get(team_id)

    def get_by_name(self, org_id: str, name: str) -> Team | None:
        key = name.casefold()
        for team_id in self._s.teams_by_org.get(org_id, {}):
            team = self._s.teams[team_id]
            if team.name.casefold() == key:
                return team
        return None

    def list_for_org(self, org_id: str) -> list[Team]:
        return sorted(
            (self._s.teams[t] for t in self._s.teams_by_org.get(org_id, {})),
            key=lambda t: (t.name.casefold(), t.id),
        )

    def _check_name(self, team: Team) -> None:
        other = self.get_by_name(team.org_id, team.name)
        if other is not None and other.id != team.id:
            raise Conflict(
                f"The organization already has a team named {team.name!r}.",
                code="team.name_taken",
            )

    def add(self, team: Team) -> None:
        self._check_name(team)
        self._tx.put(self._s.teams, team.id, team)
        self._tx.index_add(self._s.teams_by_org, team.org_id, team.id)

    def update(self, team: Team) -> Team:
        new = _bump(team, self._s.teams.get(team.id), "team", team.id)
        self._check_name(new)
        self._tx.put(self._s.teams, team.id, new)
        return new

    def delete(self, team_id: str) -> None:
        team = self._s.teams.get(team_id)
        if team is None:
            return
        for account_id in list(self._s.team_members.get(team_id, {})):
            self._tx.index_remove(self._s.team_members, team_id, account_id)
        self._tx.index_remove(self._s.teams_by_org, team.org_id, team_id)
        self._tx.pop(self._s.teams, team_id)

    def add_member(self, member: TeamMember) -> None:
        if member.account_id in self._s.team_members.get(member.team_id, {}):
            raise Conflict(
                f"Account {member.account_id} is already in team {member.team_id}.",
                code="team.member_exists",
            )
        self._tx.index_add(self._s.team_members, member.team_id, member.account_id, member)

    def remove_member(self, team_id: str, account_id: str) -> bool:
        if account_id not in self._s.team_members.get(team_id, {}):
            return False
        self._tx.index_remove(self._s.team_members, team_id, account_id)
        return True

    def is_member(self, team_id: str, account_id: str) -> bool:
        return account_id in self._s.team_members.get(team_id, {})

    def list_members(self, team_id: str) -> list[TeamMember]:
        members = self._s.team_members.get(team_id, {})
        return [members[a] for a in sorted(members)]

    def remove_account(self, org_id: str, account_id: str) -> int:
        removed = 0
        for team_id in list(self._s.teams_by_org.get(org_id, {})):
            if self.remove_member(team_id, account_id):
                removed += 1
        return removed


class _Invitations:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, invitation_id: str) -> Invitation | None:
        return self._s.invitations.get(invitation_id)

    def pending_for_account(self, account_id: str) -> Invitation | None:
        for inv_id in self._s.invitations_by_account.get(account_id, {}):
            inv = self._s.invitations[inv_id]
            if inv.status is InvitationStatus.PENDING:
                return inv
        return None

    def add(self, invitation: Invitation) -> None:
        if invitation.id in self._s.invitations:
            raise Conflict(f"Invitation {invitation.id} already exists.", code="invitation.exists")
        self._tx.put(self._s.invitations, invitation.id, invitation)
        self._tx.index_add(self._s.invitations_by_account, invitation.account_id, invitation.id)

    def update(self, invitation: Invitation) -> Invitation:
        new = _bump(
            invitation, self._s.invitations.get(invitation.id), "invitation", invitation.id
        )
        self._tx.put(self._s.invitations, new.id, new)
        return new

    def delete_for_account(self, account_id: str) -> None:
        for inv_id in list(self._s.invitations_by_account.get(account_id, {})):
            self._tx.index_remove(self._s.invitations_by_account, account_id, inv_id)
            self._tx.pop(self._s.invitations, inv_id)


class _Conversions:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, request_id: str) -> ConversionRequest | None:
        return self._s.conversions.get(request_id)

    def pending(self, org_id: str, account_id: str) -> ConversionRequest | None:
        for req_id in self._s.conversions_by_account.get(account_id, {}):
            req = self._s.conversions[req_id]
            if req.org_id == org_id and req.status is ConversionStatus.PENDING:
                return req
        return None

    def add(self, request: ConversionRequest) -> None:
        if request.id in self._s.conversions:
            raise Conflict(
                f"Conversion request {request.id} already exists.", code="conversion.exists"
            )
        self._tx.put(self._s.conversions, request.id, request)
        self._tx.index_add(self._s.conversions_by_account, request.account_id, request.id)

    def update(self, request: ConversionRequest) -> ConversionRequest:
        new = _bump(request, self._s.conversions.get(request.id), "conversion", request.id)
        self._tx.put(self._s.conversions, new.id, new)
        return new

    def delete_for_account(self, account_id: str) -> None:
        for req_id in list(self._s.conversions_by_account.get(account_id, {})):
            self._tx.index_remove(self._s.conversions_by_account, account_id, req_id)
            self._tx.pop(self._s.conversions, req_id)


class _Domains:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, org_id: str, name: str) -> Domain | None:
        return self._s.domains.get((org_id, name))

    def list_for_org(self, org_id: str) -> list[Domain]:
        return sorted((d for d in self._s.domains.values() if d.org_id == org_id), key=_name)

    def add(self, domain: Domain) -> None:
        key = (domain.org_id, domain.name)
        if key in self._s.domains:
            raise Conflict(
                f"The organization already has the domain {domain.name}.", code="domain.exists"
            )
        self._tx.put(self._s.domains, key, domain)

    def update(self, domain: Domain) -> Domain:
        key = (domain.org_id, domain.name)
        new = _bump(domain, self._s.domains.get(key), "domain", domain.name)
        self._tx.put(self._s.domains, key, new)
        return new

    def delete(self, org_id: str, name: str) -> None:
        self._tx.pop(self._s.domains, (org_id, name))


def _name(domain: Domain) -> str:
    return domain.name


def _slot(datum: PersonalDatum) -> str:
    return datum.slot


class _Audit:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def head(self, scope: str) -> tuple[int, str]:
        chain = self._s.events.get(scope)
        if not chain:
            return 0, GENESIS_HASH
        return chain[-1].seq, chain[-1].hash

    def append(self, event: EventRecord, personal: Sequence[PersonalDatum]) -> None:
        seq, _ = self.head(event.scope)
        if event.seq != seq + 1:
            raise Conflict(
                f"Audit chain {event.scope} is at {seq}; event {event.seq} cannot follow it.",
                code="audit.chain_conflict",
            )
        self._tx.append_event(event.scope, event)
        if personal:
            self._tx.put(self._s.personal, event.id, tuple(personal))

    def query(self, query: AuditQuery) -> list[EventRecord]:
        chain = self._s.events.get(query.scope, [])
        ordered = reversed(chain) if query.newest_first else iter(chain)
        out: list[EventRecord] = []
        for e in ordered:
            if query.after_seq is not None and (
                (query.newest_first and e.seq >= query.after_seq)
                or (not query.newest_first and e.seq <= query.after_seq)
            ):
                continue
            if query.since is not None and e.occurred_at < query.since:
                continue
            if query.until is not None and e.occurred_at >= query.until:
                continue
            if query.actions and e.action not in query.actions:
                continue
            if query.actor_id is not None and e.actor_id != query.actor_id:
                continue
            if query.outcome is not None and e.outcome is not query.outcome:
                continue
            if query.target_id is not None and all(t.id != query.target_id for t in e.targets):
                continue
            if query.ip is not None and not any(
                d.slot == "context.ip" and d.value == query.ip
                for d in self._s.personal.get(e.id, ())
            ):
                continue
            out.append(e)
            if len(out) >= query.limit:
                break
        return out

    def iter_chain(self, scope: str, *, batch_size: int = 1000) -> Iterator[EventRecord]:
        # A snapshot of the list: later appends do not disturb an ongoing iteration.
        yield from list(self._s.events.get(scope, []))

    def chain_rows(
        self, scope: str, *, after_seq: int = 0, batch_size: int = 5000
    ) -> Iterator[ChainRow]:
        personal = self._s.personal
        # A snapshot of the list, as iter_chain takes.
        for e in list(self._s.events.get(scope, [])):
            if e.seq <= after_seq:
                continue
            data = sorted(personal.get(e.id, ()), key=_slot)
            yield (
                e.seq,
                e.id,
                e.occurred_at,
                e.action,
                e.category,
                e.outcome.value,
                e.actor_type,
                e.actor_id,
                tuple((t.type, t.id) for t in e.targets),
                e.context,
                e.metadata,
                e.commitments,
                e.prev_hash,
                e.hash,
                tuple((d.slot, d.salt, d.value) for d in data),
            )

    def personal_for(self, event_ids: Sequence[str]) -> Mapping[str, tuple[PersonalDatum, ...]]:
        return {eid: self._s.personal[eid] for eid in event_ids if eid in self._s.personal}

    def erase_subject(self, subject_id: str) -> int:
        erased = 0
        for event_id, data in list(self._s.personal.items()):
            if not any(d.subject_id == subject_id and d.value is not None for d in data):
                continue
            new = []
            for datum in data:
                if datum.subject_id == subject_id and datum.value is not None:
                    new.append(attrs.evolve(datum, salt=None, value=None))
                    erased += 1
                else:
                    new.append(datum)
            self._tx.put(self._s.personal, event_id, tuple(new))
        return erased

    def scopes(self) -> list[str]:
        return sorted(scope for scope, chain in self._s.events.items() if chain)

    def get_failure_counter(self, scope: str, key: str) -> FailureCounter | None:
        return self._s.failures.get((scope, key))

    def put_failure_counter(self, counter: FailureCounter) -> None:
        self._tx.put(self._s.failures, (counter.scope, counter.key), counter)


class _Outbox:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def add(self, message: OutboxMessage) -> None:
        if message.idempotency_key in self._s.outbox_keys:
            return
        self._tx.put(self._s.outbox, message.id, message)
        self._tx.put(self._s.outbox_keys, message.idempotency_key, message.id)
        if message.dispatched_at is None:
            self._tx.put(self._s.outbox_pending, message.id, None)

    def get(self, message_id: str) -> OutboxMessage | None:
        return self._s.outbox.get(message_id)

    def claim_due(self, now: datetime, limit: int) -> list[OutboxMessage]:
        due = [
            m
            for m in (self._s.outbox[i] for i in self._s.outbox_pending)
            if m.next_attempt_at <= now
        ]
        due.sort(key=lambda m: (m.next_attempt_at, m.created_at, m.id))
        return due[:limit]

    def mark_dispatched(self, message_id: str, when: datetime) -> None:
        current = self._s.outbox[message_id]
        self._tx.put(self._s.outbox, message_id, attrs.evolve(current, dispatched_at=when))
        self._tx.pop(self._s.outbox_pending, message_id)

    def mark_failed(
        self, message_id: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> None:
        current = self._s.outbox[message_id]
        self._tx.put(
            self._s.outbox,
            message_id,
            attrs.evolve(
                current, attempts=attempts, next_attempt_at=next_attempt_at, last_error=error
            ),
        )

    def pending_count(self) -> int:
        return len(self._s.outbox_pending)


class _Plans:
    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state

    def get(self, org_id: str) -> StoredPlan | None:
        return self._s.plans.get(org_id)

    def add(self, plan: StoredPlan) -> None:
        if plan.org_id in self._s.plans:
            raise Conflict(f"Organization {plan.org_id} already has a plan.", code="plan.exists")
        self._tx.put(self._s.plans, plan.org_id, plan)

    def update(self, plan: StoredPlan) -> StoredPlan:
        new = _bump(plan, self._s.plans.get(plan.org_id), "plan", plan.org_id)
        self._tx.put(self._s.plans, plan.org_id, new)
        return new

    def due(self, now: datetime, limit: int) -> list[str]:
        due = [
            p for p in self._s.plans.values() if p.next_due_at is not None and p.next_due_at <= now
        ]
        due.sort(key=lambda p: (p.next_due_at, p.org_id))
        return [p.org_id for p in due[:limit]]

    def notices(self, org_id: str) -> frozenset[str]:
        return frozenset(self._s.plan_notices.get(org_id, {}))

    def add_notice(self, org_id: str, key: str, at: datetime) -> None:
        if key not in self._s.plan_notices.get(org_id, {}):
            self._tx.index_add(self._s.plan_notices, org_id, key, at)

    def billing_event_seen(self, event_id: str) -> bool:
        return event_id in self._s.billing_events

    def record_billing_event(
        self,
        *,
        event_id: str,
        org_id: str,
        kind: str,
        occurred_at: datetime,
        outcome: str,
        recorded_at: datetime,
    ) -> None:
        if event_id in self._s.billing_events:
            raise Conflict(
                f"Billing event {event_id} was already recorded.", code="billing.duplicate"
            )
        self._tx.put(
            self._s.billing_events, event_id, (org_id, kind, occurred_at, outcome, recorded_at)
        )
        if outcome == BILLING_APPLIED:
            last = self._s.last_billing.get(org_id)
            if last is None or occurred_at > last:
                self._tx.put(self._s.last_billing, org_id, occurred_at)

    def last_billing_event_at(self, org_id: str) -> datetime | None:
        return self._s.last_billing.get(org_id)

    def withdrawn_privileges(self, org_id: str) -> list[tuple[str, datetime]]:
        return sorted(self._s.withdrawn.get(org_id, {}).items())

    def add_withdrawn_privilege(self, org_id: str, account_id: str, at: datetime) -> None:
        self._tx.index_add(self._s.withdrawn, org_id, account_id, at)

    def clear_withdrawn_privileges(self, org_id: str) -> None:
        for account_id in list(self._s.withdrawn.get(org_id, {})):
            self._tx.index_remove(self._s.withdrawn, org_id, account_id)


class _UnitOfWork:
    def __init__(self, tx: _Tx) -> None:
        self.organizations = _Organizations(tx)
        self.accounts = _Accounts(tx)
        self.memberships = _Memberships(tx)
        self.teams = _Teams(tx)
        self.invitations = _Invitations(tx)
        self.conversions = _Conversions(tx)
        self.domains = _Domains(tx)
        self.domain_challenges = MemoryDomainChallenges(tx)
        self.audit = _Audit(tx)
        self.audit_ledger = MemoryAuditLedger(tx)
        self.outbox = _Outbox(tx)
        self.plans = _Plans(tx)
        self.scim = MemoryScimRepository(tx)
        self.saml = MemorySamlLoginRepository(tx)
        self.saml_metadata = MemorySamlMetadataRepository(tx)


class MemoryStore:
    """A transactional in-memory :class:`~nulabpass.ports.Store`.

    Safe to share between threads (transactions run one at a time). Nested calls to
    :meth:`transaction` from the same thread join the outer transaction.
    """

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()
        self._local = threading.local()

    @contextmanager
    def snapshot(self) -> Iterator[_UnitOfWork]:
        """A unit of work for reads (:meth:`~nulabpass.ports.Store.snapshot`): units
        of work here run one at a time, so a transaction sees one state throughout."""
        with self.transaction() as uow:
            yield uow

    @contextmanager
    def transaction(self) -> Iterator[_UnitOfWork]:
        """Open a unit of work; commit on normal exit, roll back on exception.

        A nested call from the same thread acts as a savepoint of the outer transaction:
        its failure undoes only its own writes.
        """
        with self._lock:
            outer: tuple[_Tx, _UnitOfWork] | None = getattr(self._local, "current", None)
            if outer is not None:
                tx, uow = outer
                mark = len(tx.undo)
                try:
                    yield uow
                except BaseException:
                    while len(tx.undo) > mark:
                        tx.undo.pop()()
                    raise
                return
            tx = _Tx(self._state)
            uow = _UnitOfWork(tx)
            self._local.current = (tx, uow)
            try:
                yield uow
            except BaseException:
                tx.rollback()
                raise
            finally:
                self._local.current = None
