"""Ports: the small interfaces through which nulabpass reaches the outside world.

The facade and the feature cores depend only on these Protocols. Adapters implement
them: ``nulabpass.stores.memory`` and ``nulabpass.stores.sql`` for storage,
``nulabpass.mail`` for email, and ``nulabpass.testing`` for the doubles tests use.

Storage theory of operation
---------------------------
``Store.transaction()`` opens one unit of work. Everything a use case reads and writes
goes through the repositories of that unit of work; leaving the ``with`` block normally
commits, leaving it with an exception rolls everything back. A use case first calls
``lock_org`` so that writers of one organization are serialised (PostgreSQL: a row lock;
memory and SQLite: one writer at a time); invariants that span rows, such as the
break-glass rule and the audit chain head, stay correct under concurrent writers.

Mutable rows carry ``version``. ``update`` methods write only when the stored version
equals the entity's version and return the entity with ``version + 1``; otherwise they
raise :class:`~nulabpass.errors.StaleWrite`, or :class:`~nulabpass.errors.NotFound`
(``<resource>.not_found``) when the row no longer exists. Nothing is ever silently
overwritten. Plain ``add`` methods raise :class:`~nulabpass.errors.Conflict` when a row
with the same id exists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs

from nulabpass._saml_metadata_model import SamlMetadataSource
from nulabpass._saml_model import PendingLogin, SamlConfiguration
from nulabpass.audit._checkpoint import Checkpoint
from nulabpass.audit._model import AuditAnchor, AuditQuery, ChainRow, EventRecord, PersonalDatum
from nulabpass.domains._model import DomainChallenge, TxtLookup
from nulabpass.org._model import (
    Account,
    ConversionRequest,
    Domain,
    Invitation,
    Membership,
    Organization,
    Team,
    TeamMember,
)
from nulabpass.outbox._model import OutboxMessage
from nulabpass.plans import PlanRecord
from nulabpass.scim._model import ScimGroupRow, ScimToken, ScimTombstone, ScimUserRow
from nulabpass.scim._query import ScimPage, ScimQuery

__all__ = [
    "BILLING_APPLIED",
    "AccountRepository",
    "AuditLedgerRepository",
    "AuditRepository",
    "BillingEvent",
    "BillingProvider",
    "Clock",
    "ConversionRepository",
    "DomainChallengeRepository",
    "DomainRepository",
    "EmailMessage",
    "FailureCounter",
    "InvitationRepository",
    "KeyProvider",
    "Mailer",
    "MembershipRepository",
    "MetadataFetcher",
    "OrganizationRepository",
    "OutboxRepository",
    "PlanRepository",
    "RateDecision",
    "RateLimiter",
    "SamlLoginRepository",
    "SamlMetadataRepository",
    "SamlReplayCache",
    "SamlSpKey",
    "ScimRepository",
    "SigningKey",
    "Store",
    "StoredPlan",
    "TeamRepository",
    "TxtResolver",
    "UnitOfWork",
]


# ---------------------------------------------------------------------------------------
# Time and mail


@runtime_checkable
class Clock(Protocol):
    """Source of the current time. Nothing in nulabpass calls ``datetime.now()``."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...


@attrs.frozen(slots=True)
class EmailMessage:
    """A rendered email ready to send.

    ``message_id`` is derived from the outbox idempotency key, so a redelivered message
    carries the same Message-ID and recipients' servers can drop the duplicate.
    """

    to: str
    subject: str
    text: str
    html: str
    message_id: str
    language: str
    headers: Mapping[str, str] = attrs.field(factory=dict)


@runtime_checkable
class Mailer(Protocol):
    """Sends one email. Raises :class:`~nulabpass.errors.TransientError` on outage."""

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise; must not return before the server accepted it."""
        ...


# ---------------------------------------------------------------------------------------
# Repositories


class OrganizationRepository(Protocol):
    """Organizations."""

    def get(self, org_id: str) -> Organization | None:
        """Return the organization or ``None``."""
        ...

    def lock(self, org_id: str) -> Organization | None:
        """Return the organization and hold its write lock until the transaction ends."""
        ...

    def add(self, org: Organization) -> None:
        """Insert a new organization."""
        ...

    def update(self, org: Organization) -> Organization:
        """Write ``org`` if its version is current; return it with the next version."""
        ...


class AccountRepository(Protocol):
    """Accounts, global to the host; email is unique (already normalised)."""

    def get(self, account_id: str) -> Account | None:
        """Return the account or ``None``."""
        ...

    def get_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email or ``None``."""
        ...

    def add(self, account: Account) -> None:
        """Insert; raises :class:`~nulabpass.errors.Conflict` (``account.email_taken``)."""
        ...

    def update(self, account: Account) -> Account:
        """Write with a version check; return the account with the next version.

        Raises ``Conflict`` (``account.scim_provisioned``) when ``managed_by`` changes
        while the account has a SCIM user row (delete the row first)."""
        ...

    def delete(self, account_id: str) -> None:
        """Remove the account row (memberships must already be gone). Raises
        ``Conflict`` (``account.in_use``) while the account has a SCIM user row."""
        ...

    def count_managed(self, org_id: str) -> int:
        """How many accounts ``org_id`` manages (any status)."""
        ...

    def list_managed(self, org_id: str) -> list[Account]:
        """Accounts managed by ``org_id``, ordered by id."""
        ...


class MembershipRepository(Protocol):
    """Memberships of accounts in organizations."""

    def get(self, org_id: str, account_id: str) -> Membership | None:
        """Return the membership or ``None``."""
        ...

    def add(self, membership: Membership) -> None:
        """Insert; raises :class:`~nulabpass.errors.Conflict` if it exists."""
        ...

    def update(self, membership: Membership) -> Membership:
        """Write with a version check; return it with the next version."""
        ...

    def delete(self, org_id: str, account_id: str) -> None:
        """Remove the membership if present."""
        ...

    def list_for_org(self, org_id: str) -> list[Membership]:
        """Memberships of one organization, ordered by account id."""
        ...

    def list_for_account(self, account_id: str) -> list[Membership]:
        """Memberships of one account, ordered by organization id."""
        ...

    def count_break_glass(self, org_id: str, *, require_admin: bool) -> int:
        """Count active non-managed members who are admins (or plan admins, unless
        ``require_admin``): the organization's break-glass accounts."""
        ...


class TeamRepository(Protocol):
    """Teams and their members."""

    def get(self, team_id: str) -> Team | None:
        """Return the team or ``None``."""
        ...

    def get_by_name(self, org_id: str, name: str) -> Team | None:
        """Return the team of ``org_id`` whose name equals ``name`` case-insensitively."""
        ...

    def list_for_org(self, org_id: str) -> list[Team]:
        """Teams of one organization, ordered by name."""
        ...

    def add(self, team: Team) -> None:
        """Insert; raises :class:`~nulabpass.errors.Conflict` (``team.name_taken``)."""
        ...

    def update(self, team: Team) -> Team:
        """Write with a version check; return it with the next version."""
        ...

    def delete(self, team_id: str) -> None:
        """Remove the team and all its memberships."""
        ...

    def add_member(self, member: TeamMember) -> None:
        """Insert one team membership; raises ``Conflict`` if present."""
        ...

    def remove_member(self, team_id: str, account_id: str) -> bool:
        """Remove one team membership; return whether it existed."""
        ...

    def is_member(self, team_id: str, account_id: str) -> bool:
        """Whether the account is in the team."""
        ...

    def list_members(self, team_id: str) -> list[TeamMember]:
        """Members of one team, ordered by account id."""
        ...

    def remove_account(self, org_id: str, account_id: str) -> int:
        """Remove the account from every team of ``org_id``; return how many."""
        ...


class InvitationRepository(Protocol):
    """Invitations to managed accounts."""

    def get(self, invitation_id: str) -> Invitation | None:
        """Return the invitation or ``None``."""
        ...

    def pending_for_account(self, account_id: str) -> Invitation | None:
        """The pending invitation of an account, if any."""
        ...

    def add(self, invitation: Invitation) -> None:
        """Insert."""
        ...

    def update(self, invitation: Invitation) -> Invitation:
        """Write with a version check; return it with the next version."""
        ...

    def delete_for_account(self, account_id: str) -> None:
        """Remove every invitation of an account."""
        ...


class ConversionRepository(Protocol):
    """Consent requests that turn non-managed accounts into managed ones."""

    def get(self, request_id: str) -> ConversionRequest | None:
        """Return the request or ``None``."""
        ...

    def pending(self, org_id: str, account_id: str) -> ConversionRequest | None:
        """The pending request of ``org_id`` for ``account_id``, if any."""
        ...

    def add(self, request: ConversionRequest) -> None:
        """Insert."""
        ...

    def update(self, request: ConversionRequest) -> ConversionRequest:
        """Write with a version check; return it with the next version."""
        ...

    def delete_for_account(self, account_id: str) -> None:
        """Remove every request about an account."""
        ...


class DomainRepository(Protocol):
    """Email domains claimed by organizations."""

    def get(self, org_id: str, name: str) -> Domain | None:
        """Return ``org_id``'s record for the (normalised) domain ``name``."""
        ...

    def list_for_org(self, org_id: str) -> list[Domain]:
        """Domain records of one organization, ordered by name."""
        ...

    def add(self, domain: Domain) -> None:
        """Insert; raises ``Conflict`` when the organization already has this domain."""
        ...

    def update(self, domain: Domain) -> Domain:
        """Write with a version check; return it with the next version."""
        ...

    def delete(self, org_id: str, name: str) -> None:
        """Remove ``org_id``'s record of ``name`` (its challenge must already be gone)."""
        ...


class DomainChallengeRepository(Protocol):
    """The DNS proof of each domain record and its re-verification schedule."""

    def get(self, domain_id: str) -> DomainChallenge | None:
        """The challenge of one domain record, or ``None``."""
        ...

    def add(self, challenge: DomainChallenge) -> None:
        """Insert; raises ``Conflict`` (``domain_challenge.exists``) if the domain has one."""
        ...

    def update(self, challenge: DomainChallenge) -> DomainChallenge:
        """Write with a version check; return it with the next version."""
        ...

    def delete(self, domain_id: str) -> None:
        """Remove the challenge of one domain record if present."""
        ...

    def due(self, now: datetime, limit: int) -> list[DomainChallenge]:
        """Verified challenges whose ``next_check_at <= now``, earliest first, at most
        ``limit``."""
        ...


@attrs.frozen(slots=True)
class FailureCounter:
    """How often one failure repeated in the current aggregation window."""

    scope: str
    key: str
    window_started_at: datetime
    count: int


class AuditRepository(Protocol):
    """Append-only audit chains, one per scope, and their erasable personal data."""

    def head(self, scope: str) -> tuple[int, str]:
        """Return ``(seq, hash)`` of the last event of ``scope`` or ``(0, GENESIS)``.

        Callers hold the organization lock, so the head cannot move under them. Scopes
        without an organization row (the ``"host"`` scope) are serialised by the store
        itself (PostgreSQL: a transaction-scoped advisory lock taken here).
        """
        ...

    def append(self, event: EventRecord, personal: Sequence[PersonalDatum]) -> None:
        """Insert one event and its personal data.

        Raises :class:`~nulabpass.errors.Conflict` (``audit.chain_conflict``) unless
        ``seq`` is exactly one more than the head's: two writers can never both extend the
        chain from the same head, and no gap can open.
        """
        ...

    def query(self, query: AuditQuery) -> list[EventRecord]:
        """Events of ``query.scope`` matching the filters, at most ``query.limit``."""
        ...

    def iter_chain(self, scope: str, *, batch_size: int = 1000) -> Iterator[EventRecord]:
        """Every event of ``scope`` in ``seq`` order, read in batches."""
        ...

    def chain_rows(
        self, scope: str, *, after_seq: int = 0, batch_size: int = 5000
    ) -> Iterator[ChainRow]:
        """Every event of ``scope`` with ``seq > after_seq`` in ``seq`` order, with its
        targets and personal data, as plain tuples: what verification reads. Streams
        (``batch_size`` rows fetched at a time), so memory stays flat; consume it inside
        the transaction that created it."""
        ...

    def personal_for(self, event_ids: Sequence[str]) -> Mapping[str, tuple[PersonalDatum, ...]]:
        """Personal data of the given events, keyed by event id."""
        ...

    def erase_subject(self, subject_id: str) -> int:
        """Blank value and salt of every datum about ``subject_id``; return the count."""
        ...

    def scopes(self) -> list[str]:
        """Every scope that has at least one event."""
        ...

    def get_failure_counter(self, scope: str, key: str) -> FailureCounter | None:
        """The aggregation counter of one repeated failure."""
        ...

    def put_failure_counter(self, counter: FailureCounter) -> None:
        """Insert or replace an aggregation counter."""
        ...


class AuditLedgerRepository(Protocol):
    """Checkpoints, purge anchors and retention of the audit chains (see ``docs/audit.md``)."""

    def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint; one per ``(scope, tree_size)``: an existing one is kept."""
        ...

    def latest_checkpoint(self, scope: str) -> Checkpoint | None:
        """The checkpoint of ``scope`` with the largest tree size."""
        ...

    def get_checkpoint(self, scope: str, tree_size: int) -> Checkpoint | None:
        """The checkpoint of ``scope`` over exactly ``tree_size`` events."""
        ...

    def list_checkpoints(
        self, scope: str, *, min_size: int = 0, limit: int = 1000
    ) -> list[Checkpoint]:
        """Checkpoints of ``scope`` with ``tree_size >= min_size``, smallest first."""
        ...

    def anchor(self, scope: str) -> AuditAnchor | None:
        """Where the remaining log of ``scope`` starts after a purge (``None``: seq 1)."""
        ...

    def put_anchor(self, anchor: AuditAnchor) -> None:
        """Insert or replace the anchor of ``anchor.scope``."""
        ...

    def retention_months(self, scope: str) -> int | None:
        """The retention period of ``scope`` in months (``None``: the configured default)."""
        ...

    def set_retention_months(self, scope: str, months: int | None) -> None:
        """Set (or with ``None`` reset) the retention period of ``scope``."""
        ...

    def last_seq_before(self, scope: str, when: datetime) -> int:
        """The largest ``seq`` of ``scope`` with ``occurred_at < when`` (0: none)."""
        ...

    def first_seq_from(self, scope: str, when: datetime) -> int | None:
        """The smallest ``seq`` of ``scope`` with ``occurred_at >= when``."""
        ...

    def purge_through(self, scope: str, seq: int) -> int:
        """Delete the events of ``scope`` with ``seq`` up to ``seq``, with their targets and
        personal data; return how many events were deleted."""
        ...


class OutboxRepository(Protocol):
    """Durable messages awaiting dispatch."""

    def add(self, message: OutboxMessage) -> None:
        """Insert; a duplicate idempotency key is ignored (the first one wins)."""
        ...

    def get(self, message_id: str) -> OutboxMessage | None:
        """Return one message."""
        ...

    def claim_due(self, now: datetime, limit: int) -> list[OutboxMessage]:
        """Undispatched messages whose ``next_attempt_at <= now``, oldest first.

        On PostgreSQL the rows stay locked (``SKIP LOCKED``) until the transaction ends,
        so concurrent dispatchers do not take the same message.
        """
        ...

    def mark_dispatched(self, message_id: str, when: datetime) -> None:
        """Record a successful delivery."""
        ...

    def mark_failed(
        self, message_id: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> None:
        """Record a failed attempt and when to try again."""
        ...

    def pending_count(self) -> int:
        """How many messages wait for dispatch."""
        ...


@attrs.frozen(slots=True)
class StoredPlan:
    """An organization's plan record as stored.

    ``next_due_at`` is the next instant at which time alone changes the plan (see
    :func:`nulabpass.plans.next_due_at`); it is indexed so ``process_due`` finds due
    organizations without scanning them all. ``None``: nothing is due without an event.
    """

    org_id: str
    record: PlanRecord
    next_due_at: datetime | None
    version: int = 1


#: ``outcome`` of a billing event that changed the plan (others: ``"stale"``).
BILLING_APPLIED = "applied"


class PlanRepository(Protocol):
    """Plans, their sent notices, applied billing events and withdrawn privileges."""

    def get(self, org_id: str) -> StoredPlan | None:
        """The organization's plan, or ``None`` when it never had one."""
        ...

    def add(self, plan: StoredPlan) -> None:
        """Insert; raises ``Conflict`` (``plan.exists``) when one exists."""
        ...

    def update(self, plan: StoredPlan) -> StoredPlan:
        """Write with a version check; return it with the next version."""
        ...

    def due(self, now: datetime, limit: int) -> list[str]:
        """Organization ids whose ``next_due_at <= now``, earliest first."""
        ...

    def notices(self, org_id: str) -> frozenset[str]:
        """Idempotency keys of the time-driven effects already acted on."""
        ...

    def add_notice(self, org_id: str, key: str, at: datetime) -> None:
        """Remember that the effect ``key`` was acted on (a duplicate is ignored)."""
        ...

    def billing_event_seen(self, event_id: str) -> bool:
        """Whether a billing event with this id was already recorded."""
        ...

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
        """Remember a billing event; raises ``Conflict`` (``billing.duplicate``) if seen."""
        ...

    def last_billing_event_at(self, org_id: str) -> datetime | None:
        """Occurrence time of the latest billing event recorded with the outcome
        :data:`BILLING_APPLIED` for the organization."""
        ...

    def withdrawn_privileges(self, org_id: str) -> list[tuple[str, datetime]]:
        """``(account_id, withdrawn_at)`` of audit log admin privileges the end of a plan
        withdrew, ordered by account id."""
        ...

    def add_withdrawn_privilege(self, org_id: str, account_id: str, at: datetime) -> None:
        """Remember one withdrawn privilege (replacing an older record)."""
        ...

    def clear_withdrawn_privileges(self, org_id: str) -> None:
        """Forget every withdrawn privilege of the organization."""
        ...


class SamlLoginRepository(Protocol):
    """Per-organization SAML sign-in state: the IdP configuration, the AuthnRequests
    awaiting their response (by state hash, through an ``expires_at`` index) and the
    assertions already accepted."""

    def get_config(self, org_id: str) -> SamlConfiguration | None:
        """The organization's IdP configuration, or ``None``."""
        ...

    def put_config(self, config: SamlConfiguration) -> None:
        """Insert or replace the organization's IdP configuration."""
        ...

    def add_request(self, pending: PendingLogin) -> None:
        """Remember an issued AuthnRequest until it expires."""
        ...

    def take_request(self, state_hash: str, now: datetime) -> PendingLogin | None:
        """Remove and return the unexpired request of ``state_hash`` (``None`` if there
        is none); expired requests are deleted on the way."""
        ...

    def remember(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record an accepted assertion key; ``False`` if it is recorded and unexpired."""
        ...


class SamlMetadataRepository(Protocol):
    """Organizations' IdP metadata URLs and their refresh state (one row each, found
    through a ``next_refresh_at`` index when due)."""

    def get(self, org_id: str) -> SamlMetadataSource | None:
        """The organization's metadata source, or ``None``."""
        ...

    def add(self, source: SamlMetadataSource) -> None:
        """Insert; raises ``Conflict`` (``saml.metadata_url_exists``) if one exists."""
        ...

    def update(self, source: SamlMetadataSource) -> SamlMetadataSource:
        """Write with a version check; return it with the next version."""
        ...

    def delete(self, org_id: str) -> None:
        """Remove the organization's metadata source if present."""
        ...

    def due(self, now: datetime, limit: int) -> list[SamlMetadataSource]:
        """Sources whose ``next_refresh_at <= now``, earliest first, at most ``limit``."""
        ...

    def configurations(self, after: str | None, limit: int) -> list[SamlConfiguration]:
        """IdP configurations of every organization, ordered by organization id, starting
        after ``after``, at most ``limit`` (host-wide certificate reports page with it)."""
        ...


class ScimRepository(Protocol):
    """SCIM provisioning state beside accounts and teams: users' SCIM attributes,
    groups' external ids, tombstones of deleted users and bearer tokens.

    ``query_users`` and ``query_groups`` take a :class:`~nulabpass.scim._query.ScimQuery`
    whose filter is canonical (``check_filter``); a store raises ``ScimError``
    (``invalidFilter``) for an attribute it cannot filter and never ignores one.
    """

    def get_user(self, org_id: str, account_id: str) -> ScimUserRow | None:
        """The SCIM attributes of one managed account of ``org_id``."""
        ...

    def add_user(self, row: ScimUserRow) -> None:
        """Insert; raises ``Conflict`` (``scim.user_exists``) when the account has a row,
        and (``scim.account_not_managed``) unless ``row.org_id`` manages the account: user
        lists rely on every row naming an account its organization manages."""
        ...

    def update_user(self, row: ScimUserRow, *, emails_changed: bool = True) -> ScimUserRow:
        """Write with a version check; return it with the next version.

        ``emails_changed=False`` promises the stored emails equal ``row.profile.emails``,
        so a store may skip rewriting them."""
        ...

    def delete_user(self, org_id: str, account_id: str) -> None:
        """Remove the row (if any) and its emails."""
        ...

    def query_users(self, query: ScimQuery) -> ScimPage:
        """Ids of the organization's provisioned users matching ``query``, one page."""
        ...

    def load_users(
        self, org_id: str, account_ids: Sequence[str]
    ) -> list[tuple[Account, ScimUserRow]]:
        """The visible users among ``account_ids`` (managed by ``org_id``, with SCIM
        attributes), in the given order; a page costs a few queries, not a few per user."""
        ...

    def provisioning_facts(
        self, org_id: str
    ) -> tuple[Organization | None, list[Domain], StoredPlan | None]:
        """The organization, its domains (ordered by name) and its plan, read together:
        what every SCIM request checks first. ``(None, [], None)`` when it does not exist."""
        ...

    def token_and_facts(
        self, token_id: str
    ) -> tuple[ScimToken, tuple[Organization | None, list[Domain], StoredPlan | None]] | None:
        """One token (``None`` when there is none) and the ``provisioning_facts`` of its
        organization, read together."""
        ...

    def groups_by_account(self, org_id: str, account_ids: Sequence[str]) -> dict[str, list[Team]]:
        """Teams of ``org_id`` each account is in, ordered by name."""
        ...

    def add_tombstone(self, tombstone: ScimTombstone) -> None:
        """Remember a user deleted through SCIM."""
        ...

    def get_tombstone(self, org_id: str, account_id: str) -> ScimTombstone | None:
        """The tombstone of a deleted user, if any."""
        ...

    def get_group(self, team_id: str) -> ScimGroupRow | None:
        """The SCIM attributes of a team, if it has any."""
        ...

    def put_group(self, row: ScimGroupRow) -> None:
        """Insert or replace the SCIM attributes of a team."""
        ...

    def delete_group(self, team_id: str) -> None:
        """Forget the SCIM attributes of a team."""
        ...

    def query_groups(self, query: ScimQuery) -> ScimPage:
        """Ids of the organization's teams matching ``query``, one page."""
        ...

    def groups_of(self, org_id: str, account_id: str) -> list[Team]:
        """Teams of ``org_id`` the account is in, ordered by name."""
        ...

    def managed_members(self, org_id: str, team_id: str) -> list[Account]:
        """Members of a team that are managed accounts of ``org_id``, ordered by id."""
        ...

    def managed_ids(self, org_id: str, account_ids: Sequence[str]) -> set[str]:
        """Which of ``account_ids`` are accounts managed by ``org_id``."""
        ...

    def add_token(self, token: ScimToken) -> None:
        """Insert a token."""
        ...

    def get_token(self, token_id: str) -> ScimToken | None:
        """One token, or ``None``."""
        ...

    def list_tokens(self, org_id: str) -> list[ScimToken]:
        """Tokens of one organization (revoked ones too), oldest first."""
        ...

    def update_token(self, token: ScimToken) -> ScimToken:
        """Write with a version check; return it with the next version. The token's
        ``last_used_at`` is left as stored (see :meth:`record_token_use`)."""
        ...

    def record_token_use(self, token_id: str, at: datetime, *, stale_before: datetime) -> bool:
        """Set the token's ``last_used_at`` to ``at`` if it is unset or not later than
        ``stale_before``; whether it was written. No version check or bump: concurrent
        requests may all try, and the value is informational."""
        ...


class UnitOfWork(Protocol):
    """One transaction and its repositories."""

    @property
    def organizations(self) -> OrganizationRepository:
        """The organizations of this unit of work."""
        ...

    @property
    def accounts(self) -> AccountRepository:
        """The accounts of this unit of work."""
        ...

    @property
    def memberships(self) -> MembershipRepository:
        """The memberships of this unit of work."""
        ...

    @property
    def teams(self) -> TeamRepository:
        """The teams of this unit of work."""
        ...

    @property
    def invitations(self) -> InvitationRepository:
        """The invitations of this unit of work."""
        ...

    @property
    def conversions(self) -> ConversionRepository:
        """The conversions of this unit of work."""
        ...

    @property
    def domains(self) -> DomainRepository:
        """The domains of this unit of work."""
        ...

    @property
    def domain_challenges(self) -> DomainChallengeRepository:
        """The domain challenges of this unit of work."""
        ...

    @property
    def audit(self) -> AuditRepository:
        """The audit of this unit of work."""
        ...

    @property
    def saml(self) -> SamlLoginRepository:
        """SAML sign-in configuration and state of this unit of work."""
        ...

    @property
    def saml_metadata(self) -> SamlMetadataRepository:
        """IdP metadata URLs and their refresh state of this unit of work."""
        ...

    @property
    def audit_ledger(self) -> AuditLedgerRepository:
        """Audit checkpoints, anchors and retention of this unit of work."""
        ...

    @property
    def outbox(self) -> OutboxRepository:
        """The outbox of this unit of work."""
        ...

    @property
    def plans(self) -> PlanRepository:
        """The plans of this unit of work."""
        ...

    @property
    def scim(self) -> ScimRepository:
        """SCIM provisioning state of this unit of work."""
        ...


class Store(Protocol):
    """A transactional store."""

    def transaction(self) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work; commit on normal exit, roll back on exception."""
        ...

    def snapshot(self) -> AbstractContextManager[UnitOfWork]:
        """Open a unit of work for reads only, which sees one consistent state of the
        store throughout and does not hold up writers for its duration (long reads:
        verifying or exporting an audit log). It must not write."""
        ...


# ---------------------------------------------------------------------------------------
# Keys


@attrs.frozen(slots=True)
class SigningKey:
    """An Ed25519 private key (the 32-byte seed of RFC 8032) and the id it is known by."""

    key_id: str
    private_key: bytes = attrs.field(repr=False)


@attrs.frozen(slots=True)
class SamlSpKey:
    """A SAML service-provider key: an RSA private key and its X.509 certificate (PEM).

    It signs AuthnRequests and decrypts encrypted assertions; its certificate is
    published in the SP metadata. ``key_id`` names it in logs and audit metadata
    (``nulabpass.saml.sp_key`` derives it from the certificate).
    """

    key_id: str
    private_key_pem: bytes = attrs.field(repr=False)
    certificate_pem: bytes


@runtime_checkable
class KeyProvider(Protocol):
    """The host's signing keys (a KMS, an HSM, a secrets manager...)."""

    def audit_signing_key(self) -> SigningKey:
        """The current Ed25519 key that signs audit checkpoints and export manifests."""
        ...

    def audit_public_key(self, key_id: str) -> bytes | None:
        """The 32-byte Ed25519 public key of ``key_id`` (current or retired), or ``None``."""
        ...

    def saml_sp_keys(self, org_id: str) -> Sequence[SamlSpKey]:
        """The SAML SP keys of ``org_id``: the one in use first, then, during a rotation,
        the next one (both certificates are published and both decrypt). Host-wide keys
        are returned for every organization; an empty sequence means no SP key, so
        AuthnRequests go unsigned and encrypted assertions are refused."""
        ...


# ---------------------------------------------------------------------------------------
# SAML


@runtime_checkable
class SamlReplayCache(Protocol):
    """Remembers SAML assertion ids so that each assertion is accepted once.

    ``nulabpass.saml.MemoryReplayCache`` works within one process only; hosts running
    several processes need a shared implementation.
    """

    def remember(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires_at``; return ``False`` if it is already recorded
        and has not expired at ``now``."""
        ...


@runtime_checkable
class MetadataFetcher(Protocol):
    """Downloads IdP metadata documents from the URLs admins give.

    ``nulabpass.saml.HttpsMetadataFetcher`` is the default: HTTPS only, public addresses
    only, bounded size and time. ``nulabpass.testing.StaticMetadataFetcher`` serves
    documents from a table.
    """

    def fetch(self, url: str) -> bytes:
        """The document at ``url``; raises ``nulabpass.saml.MetadataFetchError`` (codes
        ``saml.fetch_*``) when it cannot or must not be fetched."""
        ...


# ---------------------------------------------------------------------------------------
# Billing


@attrs.frozen(slots=True)
class BillingEvent:
    """A payment provider's event, authenticated and parsed by a :class:`BillingProvider`.

    ``kind`` is one of ``upgrade``, ``renew``, ``change_seats``, ``cancel``, ``resume``,
    ``payment_failed``, ``payment_recovered``, ``give_up``. ``id`` is the provider's
    event id: applying the same id twice changes nothing. ``occurred_at`` orders events
    that arrive out of order.
    """

    id: str
    org_id: str
    kind: str
    occurred_at: datetime
    plan_name: str | None = None
    period_ends_at: datetime | None = None
    seats: int | None = None
    start_now: bool = False


@runtime_checkable
class BillingProvider(Protocol):
    """The host's payment provider, as nulabpass needs it."""

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> BillingEvent:
        """Check the webhook's authenticity (signature) and parse it.

        Raises :class:`~nulabpass.errors.PermissionDenied` (``billing.signature_invalid``)
        when it is not authentic and :class:`~nulabpass.errors.InvalidInput`
        (``billing.invalid_event``) when it cannot be parsed.
        """
        ...


# ---------------------------------------------------------------------------------------
# DNS and rate limits


@runtime_checkable
class TxtResolver(Protocol):
    """Looks up the TXT records of a name from one vantage point.

    Never raises for DNS failures: NXDOMAIN, SERVFAIL, REFUSED and timeouts come back
    as the ``status`` of the :class:`~nulabpass.domains.TxtLookup`, so that an
    unanswered question can never be mistaken for an absent record.
    """

    def lookup(self, name: str) -> TxtLookup:
        """The TXT records at ``name`` (CNAMEs followed, strings joined)."""
        ...


@attrs.frozen(slots=True)
class RateDecision:
    """Whether one more attempt is allowed now; if not, when the next one will be."""

    allowed: bool
    retry_at: datetime | None = None


@runtime_checkable
class RateLimiter(Protocol):
    """Counts attempts per key in fixed windows (``window`` long, aligned to the epoch)."""

    def acquire(self, key: str, now: datetime, *, limit: int, window: timedelta) -> RateDecision:
        """Count one attempt under ``key`` unless ``limit`` attempts were already counted
        in the window containing ``now``."""
        ...
