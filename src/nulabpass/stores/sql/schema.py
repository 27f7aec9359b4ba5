"""The SQL schema of nulabpass, as SQLAlchemy Core tables.

Every table is prefixed ``nulabpass_`` so that nulabpass can live in the host's own
database next to the host's tables. Migrations under ``migrations/versions`` create
exactly this schema; a test compares the two after ``upgrade()`` so they cannot drift.

Portability notes (SQLite and PostgreSQL):

- Enumerations are stored as their string values, never as database ENUM types, so a
  new member needs no migration.
- Team names are unique per organization case-insensitively. Instead of an expression
  index on ``lower(name)`` (whose semantics differ between databases and Python), the
  ``name_key`` column holds ``name.casefold()`` under a plain unique constraint.
- Timestamps go through :class:`UtcDateTime`, which stores UTC and always returns aware
  UTC datetimes, including on SQLite where the driver drops the time zone.
- Every row that is ever updated carries ``version`` for optimistic concurrency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from nulabpass.errors import InvalidInput

__all__ = [
    "VERSION_TABLE",
    "UtcDateTime",
    "accounts",
    "audit_anchors",
    "audit_checkpoints",
    "audit_events",
    "audit_failure_counters",
    "audit_personal",
    "audit_retention",
    "audit_targets",
    "billing_events",
    "conversions",
    "domain_challenges",
    "domains",
    "include_name",
    "invitations",
    "memberships",
    "metadata",
    "organizations",
    "outbox",
    "plan_notices",
    "plans",
    "rate_limit_buckets",
    "saml_configs",
    "saml_metadata_sources",
    "saml_replay",
    "saml_requests",
    "team_members",
    "teams",
    "withdrawn_privileges",
]

#: Alembic's version table for nulabpass, distinct from the host's ``alembic_version``.
VERSION_TABLE = "nulabpass_alembic_version"

#: Names constraints the same way on every database, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic name filter: only nulabpass's own tables, never the host's.

    nulabpass shares the host's database, so comparing schemas (autogenerate, the
    drift test) must ignore every table without the ``nulabpass_`` prefix.
    """
    if type_ == "table":
        return name is not None and name.startswith("nulabpass_")
    return True


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp column.

    Binding a naive datetime raises :class:`~nulabpass.errors.InvalidInput`
    (``store.naive_datetime``): a naive value has no defined instant, and guessing one
    would silently shift audit times and expiries. Values are converted to UTC before
    they are stored; SQLite keeps them as naive UTC text (fixed width, so comparisons
    in SQL stay chronological) and results get their UTC time zone back.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Check that ``value`` is aware and convert it to UTC for storage."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise InvalidInput(
                "A timestamp column received a value that is not a datetime.",
                code="store.invalid_datetime",
                details={"type": type(value).__name__},
            )
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(
                "A naive datetime cannot be stored: nulabpass needs timezone-aware "
                "datetimes (check that the Clock returns aware UTC times).",
                code="store.naive_datetime",
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value)!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _id(name: str = "id", **kwargs: Any) -> Column[str]:
    """An opaque string identifier column."""
    return Column(name, String(), nullable=False, **kwargs)


def _version() -> Column[int]:
    return Column("version", Integer(), nullable=False)


def _timestamp(name: str, *, nullable: bool = False) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=nullable)


#: Text compared and ordered by code point, as Python's ``sorted`` orders it. On
#: PostgreSQL the column carries ``COLLATE "C"``, so its indexes serve the ``ORDER BY
#: ... COLLATE "C"`` of SCIM pages (SQLite's default collation already is by code point).
_CODE_POINT_STRING = String().with_variant(String(collation="C"), "postgresql")


organizations = Table(
    "nulabpass_organizations",
    metadata,
    _id(),
    Column("name", String(), nullable=False),
    Column("settings", JSON(), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _timestamp("saml_configured_at", nullable=True),
    _version(),
    PrimaryKeyConstraint("id"),
)

accounts = Table(
    "nulabpass_accounts",
    metadata,
    _id(),
    Column("email", String(), nullable=False),
    Column("display_name", String(), nullable=False),
    Column("language", String(), nullable=False),
    Column("timezone", String(), nullable=False),
    Column("status", String(), nullable=False),
    Column("managed_by", String(), ForeignKey(organizations.c.id), nullable=True),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _version(),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("email"),
    # (managed_by, id): lists of the accounts an organization manages read the index
    # alone (migration 0009_scim_indexes). Unique since migration 0011_scim_visibility:
    # the SCIM users' foreign key refers to (id, managed_by).
    Index("uq_nulabpass_accounts_managed_by_id", "managed_by", "id", unique=True),
)

memberships = Table(
    "nulabpass_memberships",
    metadata,
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("account_id", String(), ForeignKey(accounts.c.id), nullable=False),
    Column("role", String(), nullable=False),
    Column("plan_admin", Boolean(), nullable=False),
    Column("audit_log_admin", Boolean(), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _version(),
    PrimaryKeyConstraint("org_id", "account_id"),
    Index("ix_nulabpass_memberships_account_id", "account_id"),
)

teams = Table(
    "nulabpass_teams",
    metadata,
    _id(),
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("name", String(), nullable=False),
    # ``name.casefold()``: the portable way to make names unique case-insensitively.
    Column("name_key", String(), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _version(),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("org_id", "name_key"),
)

team_members = Table(
    "nulabpass_team_members",
    metadata,
    Column("team_id", String(), ForeignKey(teams.c.id), nullable=False),
    Column("account_id", String(), ForeignKey(accounts.c.id), nullable=False),
    _timestamp("added_at"),
    PrimaryKeyConstraint("team_id", "account_id"),
    Index("ix_nulabpass_team_members_account_id", "account_id"),
)

invitations = Table(
    "nulabpass_invitations",
    metadata,
    _id(),
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("account_id", String(), ForeignKey(accounts.c.id), nullable=False),
    # No foreign key: an invitation keeps naming the team it was sent for after the
    # team is deleted, as the record of what was offered.
    Column("team_id", String(), nullable=True),
    Column("token_hash", String(), nullable=False),
    Column("nonce", String(), nullable=False),
    Column("status", String(), nullable=False),
    _timestamp("expires_at"),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _version(),
    PrimaryKeyConstraint("id"),
    Index("ix_nulabpass_invitations_account_id", "account_id"),
)

conversions = Table(
    "nulabpass_conversions",
    metadata,
    _id(),
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("account_id", String(), ForeignKey(accounts.c.id), nullable=False),
    Column("token_hash", String(), nullable=False),
    Column("nonce", String(), nullable=False),
    Column("status", String(), nullable=False),
    _timestamp("expires_at"),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _version(),
    PrimaryKeyConstraint("id"),
    Index("ix_nulabpass_conversions_account_id", "account_id"),
)

domains = Table(
    "nulabpass_domains",
    metadata,
    _id(),
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("name", String(), nullable=False),
    Column("status", String(), nullable=False),
    Column("include_subdomains", Boolean(), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _timestamp("verified_at", nullable=True),
    _version(),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("org_id", "name"),
)

# Audit chains are append-only and outlive the rows they mention, so they carry no
# foreign keys to the identity tables; ``scope`` is an organization id or ``"host"``.
audit_events = Table(
    "nulabpass_audit_events",
    metadata,
    _id(),
    Column("scope", String(), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    _timestamp("occurred_at"),
    Column("action", String(), nullable=False),
    Column("category", String(), nullable=False),
    Column("outcome", String(), nullable=False),
    Column("actor_type", String(), nullable=False),
    Column("actor_id", String(), nullable=False),
    Column("context", JSON(), nullable=False),
    Column("metadata", JSON(), nullable=False),
    Column("commitments", JSON(), nullable=False),
    Column("prev_hash", String(), nullable=False),
    Column("hash", String(), nullable=False),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("scope", "seq"),
    Index("ix_nulabpass_audit_events_scope_occurred_at", "scope", "occurred_at"),
    Index("ix_nulabpass_audit_events_scope_action", "scope", "action"),
    # One actor's events in a time range: the actor's index entries only, already in time
    # order, with the seq that pages them (migration 0010_audit_indexes).
    Index(
        "ix_nulabpass_audit_events_scope_actor_id_occurred_at_seq",
        "scope",
        "actor_id",
        "occurred_at",
        "seq",
    ),
)

audit_targets = Table(
    "nulabpass_audit_targets",
    metadata,
    Column("event_id", String(), ForeignKey(audit_events.c.id), nullable=False),
    Column("scope", String(), nullable=False),
    Column("position", Integer(), nullable=False),
    Column("type", String(), nullable=False),
    Column("target_id", String(), nullable=False),
    PrimaryKeyConstraint("event_id", "position"),
    Index("ix_nulabpass_audit_targets_scope_target_id", "scope", "target_id"),
)

audit_personal = Table(
    "nulabpass_audit_personal",
    metadata,
    Column("event_id", String(), ForeignKey(audit_events.c.id), nullable=False),
    Column("slot", String(), nullable=False),
    Column("subject_id", String(), nullable=False),
    Column("salt", String(), nullable=True),
    Column("value", Text(), nullable=True),
    _version(),
    PrimaryKeyConstraint("event_id", "slot"),
    Index("ix_nulabpass_audit_personal_subject_id", "subject_id"),
)

audit_failure_counters = Table(
    "nulabpass_audit_failure_counters",
    metadata,
    Column("scope", String(), nullable=False),
    Column("key", String(), nullable=False),
    _timestamp("window_started_at"),
    Column("count", Integer(), nullable=False),
    _version(),
    PrimaryKeyConstraint("scope", "key"),
)

# Signed checkpoints, purge anchors and retention periods of the audit chains.
audit_checkpoints = Table(
    "nulabpass_audit_checkpoints",
    metadata,
    Column("scope", String(), nullable=False),
    Column("tree_size", BigInteger(), nullable=False),
    Column("root_hash", String(), nullable=False),
    _timestamp("issued_at"),
    Column("key_id", String(), nullable=False),
    Column("signature", String(), nullable=False),
    Column("frontier", JSON(), nullable=False),
    PrimaryKeyConstraint("scope", "tree_size"),
)

audit_anchors = Table(
    "nulabpass_audit_anchors",
    metadata,
    Column("scope", String(), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    Column("prev_hash", String(), nullable=False),
    Column("frontier", JSON(), nullable=False),
    _timestamp("recorded_at"),
    _version(),
    PrimaryKeyConstraint("scope"),
)

audit_retention = Table(
    "nulabpass_audit_retention",
    metadata,
    Column("scope", String(), nullable=False),
    Column("months", Integer(), nullable=False),
    _version(),
    PrimaryKeyConstraint("scope"),
)

outbox = Table(
    "nulabpass_outbox",
    metadata,
    _id(),
    Column("kind", String(), nullable=False),
    Column("topic", String(), nullable=False),
    Column("scope", String(), nullable=False),
    Column("payload", JSON(), nullable=False),
    Column("idempotency_key", String(), nullable=False),
    _timestamp("created_at"),
    _timestamp("next_attempt_at"),
    Column("attempts", Integer(), nullable=False),
    _timestamp("dispatched_at", nullable=True),
    Column("last_error", Text(), nullable=True),
    _version(),
    PrimaryKeyConstraint("id"),
    UniqueConstraint("idempotency_key"),
    # Dispatchers look for ``dispatched_at IS NULL AND next_attempt_at <= now``.
    Index("ix_nulabpass_outbox_dispatched_at_next_attempt_at", "dispatched_at", "next_attempt_at"),
)

# One row per organization that ever had a trial or a plan: the facts of
# ``nulabpass.plans.PlanRecord``, one column each, so ``next_due_at`` can be indexed and
# every time keeps its type.
plans = Table(
    "nulabpass_plans",
    metadata,
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    _timestamp("trial_started_at", nullable=True),
    _timestamp("trial_ends_at", nullable=True),
    Column("plan_name", String(), nullable=True),
    Column("seats", Integer(), nullable=True),
    _timestamp("paid_starts_at", nullable=True),
    _timestamp("period_ends_at", nullable=True),
    _timestamp("grace_ends_at", nullable=True),
    _timestamp("canceled_at", nullable=True),
    _timestamp("cancel_effective_at", nullable=True),
    _timestamp("suspended_at", nullable=True),
    _timestamp("suspended_until", nullable=True),
    _timestamp("ended_at", nullable=True),
    _timestamp("last_event_at", nullable=True),
    _timestamp("next_due_at", nullable=True),
    _version(),
    PrimaryKeyConstraint("org_id"),
    Index("ix_nulabpass_plans_next_due_at", "next_due_at"),
)

plan_notices = Table(
    "nulabpass_plan_notices",
    metadata,
    Column("org_id", String(), nullable=False),
    Column("key", String(), nullable=False),
    _timestamp("noticed_at"),
    PrimaryKeyConstraint("org_id", "key"),
)

# Billing events come from the host's billing provider and are kept even when they
# name no known organization, hence no foreign key.
billing_events = Table(
    "nulabpass_billing_events",
    metadata,
    Column("event_id", String(), nullable=False),
    Column("org_id", String(), nullable=False),
    Column("kind", String(), nullable=False),
    _timestamp("occurred_at"),
    Column("outcome", String(), nullable=False),
    _timestamp("recorded_at"),
    PrimaryKeyConstraint("event_id"),
    Index(
        "ix_nulabpass_billing_events_org_id_outcome_occurred_at",
        "org_id",
        "outcome",
        "occurred_at",
    ),
)

# A row may outlive the account it names (deleting an account does not chase it through
# every table), hence no foreign key.
withdrawn_privileges = Table(
    "nulabpass_withdrawn_privileges",
    metadata,
    Column("org_id", String(), nullable=False),
    Column("account_id", String(), nullable=False),
    _timestamp("withdrawn_at"),
    _version(),
    PrimaryKeyConstraint("org_id", "account_id"),
)

# The DNS proof of each domain record and its re-verification schedule (migration
# 0002_domains). ``next_check_at`` is indexed: ``reverify_due`` reads due rows only.
domain_challenges = Table(
    "nulabpass_domain_challenges",
    metadata,
    Column("domain_id", String(), ForeignKey(domains.c.id), nullable=False),
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("domain", String(), nullable=False),
    Column("token", String(), nullable=False),
    _timestamp("issued_at"),
    _timestamp("expires_at"),
    _timestamp("verified_at", nullable=True),
    _timestamp("next_check_at", nullable=True),
    _timestamp("last_checked_at", nullable=True),
    Column("last_outcome", String(), nullable=True),
    _timestamp("missing_since", nullable=True),
    _timestamp("indeterminate_since", nullable=True),
    _version(),
    PrimaryKeyConstraint("domain_id"),
    Index("ix_nulabpass_domain_challenges_next_check_at", "next_check_at"),
)

# Fixed-window attempt counters of the SQL rate limiter; old windows are purged by the
# ``window_start`` index.
rate_limit_buckets = Table(
    "nulabpass_rate_limit_buckets",
    metadata,
    Column("key", String(), nullable=False),
    _timestamp("window_start"),
    Column("count", Integer(), nullable=False),
    PrimaryKeyConstraint("key", "window_start"),
    Index("ix_nulabpass_rate_limit_buckets_window_start", "window_start"),
)

# Assertions accepted by SAML sign-in (migration 0003_saml): the key is a SHA-256 of
# issuer and assertion id; expired rows are purged through the ``expires_at`` index.
saml_replay = Table(
    "nulabpass_saml_replay",
    metadata,
    Column("key", String(), nullable=False),
    _timestamp("expires_at"),
    PrimaryKeyConstraint("key"),
    Index("ix_nulabpass_saml_replay_expires_at", "expires_at"),
)

# SAML sign-in (migration 0006_saml_login): each organization's IdP configuration
# (certificates as a JSON list of base64 DER) and the AuthnRequests awaiting a response,
# keyed by a SHA-256 of the browser's state value and purged through ``expires_at``.
saml_configs = Table(
    "nulabpass_saml_configs",
    metadata,
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("idp_entity_id", String(), nullable=False),
    Column("signing_certificates", JSON(), nullable=False),
    Column("sso_redirect_url", String(), nullable=True),
    Column("sso_post_url", String(), nullable=True),
    Column("want_authn_requests_signed", Boolean(), nullable=False),
    Column("allow_idp_initiated", Boolean(), nullable=False),
    _timestamp("configured_at"),
    _timestamp("updated_at"),
    _version(),
    PrimaryKeyConstraint("org_id"),
)

saml_requests = Table(
    "nulabpass_saml_requests",
    metadata,
    Column("state_hash", String(), nullable=False),
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("request_id", String(), nullable=False),
    Column("relay_state", String(), nullable=True),
    _timestamp("expires_at"),
    PrimaryKeyConstraint("state_hash"),
    Index("ix_nulabpass_saml_requests_expires_at", "expires_at"),
    Index("ix_nulabpass_saml_requests_org_id", "org_id"),
)

# IdP metadata URLs (migration 0007_saml_metadata): one row per organization, found by
# the scheduler through the ``next_refresh_at`` index; a document awaiting an admin's
# approval is kept with its SHA-256.
saml_metadata_sources = Table(
    "nulabpass_saml_metadata",
    metadata,
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("url", String(), nullable=False),
    Column("refresh_interval_seconds", Integer(), nullable=False),
    _timestamp("next_refresh_at"),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _timestamp("last_checked_at", nullable=True),
    _timestamp("last_success_at", nullable=True),
    Column("last_error_code", String(), nullable=True),
    Column("consecutive_failures", Integer(), nullable=False),
    Column("document_sha256", String(), nullable=True),
    Column("pending_document", LargeBinary(), nullable=True),
    Column("pending_sha256", String(), nullable=True),
    _timestamp("pending_fetched_at", nullable=True),
    Column("pending_reason", String(), nullable=True),
    Column("rejected_sha256", String(), nullable=True),
    _version(),
    PrimaryKeyConstraint("org_id"),
    Index("ix_nulabpass_saml_metadata_next_refresh_at", "next_refresh_at"),
)

# SCIM provisioning (migration 0005_scim). A SCIM user row exists only for an account the
# organization manages: the foreign key on (account_id, org_id) refuses a row for any
# other account, and refuses to delete the account or change who manages it while the
# row exists (migration 0011_scim_visibility). User lists therefore read this table
# alone. Group rows name teams without a foreign key.
scim_users = Table(
    "nulabpass_scim_users",
    metadata,
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    # Code point order on both (see _CODE_POINT_STRING): a page sorted by userName
    # walks (org_id, user_name_key, account_id) in index order, with no sort step.
    Column("account_id", _CODE_POINT_STRING, nullable=False),
    Column("user_name", String(), nullable=False),
    # ``user_name.casefold()``: userName filters and sorting use this indexed column.
    Column("user_name_key", _CODE_POINT_STRING, nullable=False),
    Column("external_id", String(), nullable=True),
    Column("formatted", String(), nullable=True),
    Column("family_name", String(), nullable=True),
    Column("given_name", String(), nullable=True),
    Column("middle_name", String(), nullable=True),
    Column("honorific_prefix", String(), nullable=True),
    Column("honorific_suffix", String(), nullable=True),
    Column("nick_name", String(), nullable=True),
    Column("title", String(), nullable=True),
    Column("user_type", String(), nullable=True),
    Column("locale", String(), nullable=True),
    Column("employee_number", String(), nullable=True),
    Column("cost_center", String(), nullable=True),
    Column("organization", String(), nullable=True),
    Column("division", String(), nullable=True),
    Column("department", String(), nullable=True),
    Column("manager_id", String(), nullable=True),
    Column("display_name", String(), nullable=True),
    Column("preferred_language", String(), nullable=True),
    Column("timezone", String(), nullable=True),
    Column("active", Boolean(), nullable=True),
    # Migration 0008: profileUrl, and the multi-valued attributes no filter may name,
    # each a JSON list of objects (NULL when the user has none).
    Column("profile_url", String(), nullable=True),
    Column("phone_numbers", JSON(none_as_null=True), nullable=True),
    Column("ims", JSON(none_as_null=True), nullable=True),
    Column("photos", JSON(none_as_null=True), nullable=True),
    Column("addresses", JSON(none_as_null=True), nullable=True),
    Column("entitlements", JSON(none_as_null=True), nullable=True),
    Column("roles", JSON(none_as_null=True), nullable=True),
    Column("x509_certificates", JSON(none_as_null=True), nullable=True),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    _version(),
    PrimaryKeyConstraint("org_id", "account_id"),
    ForeignKeyConstraint(
        ["account_id", "org_id"],
        [accounts.c.id, accounts.c.managed_by],
        onupdate="RESTRICT",
        ondelete="RESTRICT",
    ),
    Index(
        "ix_nulabpass_scim_users_org_id_user_name_key",
        "org_id",
        "user_name_key",
        "account_id",
    ),
    Index("ix_nulabpass_scim_users_org_id_external_id", "org_id", "external_id"),
    Index("ix_nulabpass_scim_users_account_id", "account_id"),
)

scim_emails = Table(
    "nulabpass_scim_emails",
    metadata,
    Column("org_id", String(), nullable=False),
    Column("account_id", String(), nullable=False),
    Column("position", Integer(), nullable=False),
    Column("value", String(), nullable=False),
    Column("value_key", String(), nullable=False),
    Column("type", String(), nullable=True),
    Column("is_primary", Boolean(), nullable=False),
    Column("display", String(), nullable=True),
    PrimaryKeyConstraint("org_id", "account_id", "position"),
    Index("ix_nulabpass_scim_emails_org_id_value_key", "org_id", "value_key"),
    # emails[type eq ... and value ...] filters read only this index for each user.
    Index(
        "ix_nulabpass_scim_emails_org_id_account_id_type_value_key",
        "org_id",
        "account_id",
        "type",
        "value_key",
    ),
)

scim_groups = Table(
    "nulabpass_scim_groups",
    metadata,
    Column("team_id", String(), nullable=False),
    Column("org_id", String(), nullable=False),
    Column("external_id", String(), nullable=True),
    _timestamp("created_at"),
    PrimaryKeyConstraint("team_id"),
    Index("ix_nulabpass_scim_groups_org_id_external_id", "org_id", "external_id"),
)

# How many SCIM user rows each organization has (migration 0011_scim_visibility),
# written in the transaction that adds or deletes a row: an unfiltered user list
# reads its total here instead of counting the rows.
scim_user_counts = Table(
    "nulabpass_scim_user_counts",
    metadata,
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("users", Integer(), nullable=False),
    PrimaryKeyConstraint("org_id"),
)

scim_tombstones = Table(
    "nulabpass_scim_tombstones",
    metadata,
    Column("org_id", String(), nullable=False),
    Column("account_id", String(), nullable=False),
    Column("user_name", String(), nullable=False),
    Column("external_id", String(), nullable=True),
    _timestamp("deleted_at"),
    PrimaryKeyConstraint("org_id", "account_id"),
)

scim_tokens = Table(
    "nulabpass_scim_tokens",
    metadata,
    _id(),
    Column("org_id", String(), ForeignKey(organizations.c.id), nullable=False),
    Column("name", String(), nullable=False),
    Column("secret_hash", String(), nullable=False),
    _timestamp("created_at"),
    Column("created_by", String(), nullable=False),
    _timestamp("last_used_at", nullable=True),
    _timestamp("revoked_at", nullable=True),
    _version(),
    PrimaryKeyConstraint("id"),
    Index("ix_nulabpass_scim_tokens_org_id", "org_id"),
)

# The break-glass count that runs after every action filters an organization's members on
# role and plan admin; this index lets it skip the other members' rows (with thousands of
# provisioned members, a scan of the memberships was the largest cost of every change).
Index(
    "ix_nulabpass_memberships_org_id_role_plan_admin",
    memberships.c.org_id,
    memberships.c.role,
    memberships.c.plan_admin,
)
