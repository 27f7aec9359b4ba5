"""Initial schema: identity model, audit chains, the outbox and plans.

Revision ID: 0001
Revises: (none)

Types are spelled out here rather than imported from ``schema.py``: a migration is a
snapshot and must keep creating the same tables when ``schema.py`` moves on. Timestamps
are ``DateTime(timezone=True)``, the storage type of ``schema.UtcDateTime``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create every nulabpass table."""
    op.create_table(
        "nulabpass_organizations",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("saml_configured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_organizations"),
    )
    op.create_table(
        "nulabpass_accounts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("managed_by", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_accounts"),
        sa.UniqueConstraint("email", name="uq_nulabpass_accounts_email"),
        sa.ForeignKeyConstraint(
            ["managed_by"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_accounts_managed_by_nulabpass_organizations",
        ),
    )
    op.create_index("ix_nulabpass_accounts_managed_by", "nulabpass_accounts", ["managed_by"])
    op.create_table(
        "nulabpass_memberships",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("plan_admin", sa.Boolean(), nullable=False),
        sa.Column("audit_log_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "account_id", name="pk_nulabpass_memberships"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_memberships_org_id_nulabpass_organizations",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["nulabpass_accounts.id"],
            name="fk_nulabpass_memberships_account_id_nulabpass_accounts",
        ),
    )
    op.create_index("ix_nulabpass_memberships_account_id", "nulabpass_memberships", ["account_id"])
    op.create_table(
        "nulabpass_teams",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("name_key", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_teams"),
        sa.UniqueConstraint("org_id", "name_key", name="uq_nulabpass_teams_org_id_name_key"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_teams_org_id_nulabpass_organizations",
        ),
    )
    op.create_table(
        "nulabpass_team_members",
        sa.Column("team_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "account_id", name="pk_nulabpass_team_members"),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["nulabpass_teams.id"],
            name="fk_nulabpass_team_members_team_id_nulabpass_teams",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["nulabpass_accounts.id"],
            name="fk_nulabpass_team_members_account_id_nulabpass_accounts",
        ),
    )
    op.create_index(
        "ix_nulabpass_team_members_account_id", "nulabpass_team_members", ["account_id"]
    )
    op.create_table(
        "nulabpass_invitations",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("team_id", sa.String(), nullable=True),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("nonce", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_invitations"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_invitations_org_id_nulabpass_organizations",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["nulabpass_accounts.id"],
            name="fk_nulabpass_invitations_account_id_nulabpass_accounts",
        ),
    )
    op.create_index("ix_nulabpass_invitations_account_id", "nulabpass_invitations", ["account_id"])
    op.create_table(
        "nulabpass_conversions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("nonce", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_conversions"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_conversions_org_id_nulabpass_organizations",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["nulabpass_accounts.id"],
            name="fk_nulabpass_conversions_account_id_nulabpass_accounts",
        ),
    )
    op.create_index("ix_nulabpass_conversions_account_id", "nulabpass_conversions", ["account_id"])
    op.create_table(
        "nulabpass_domains",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("include_subdomains", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_domains"),
        sa.UniqueConstraint("org_id", "name", name="uq_nulabpass_domains_org_id_name"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_domains_org_id_nulabpass_organizations",
        ),
    )
    op.create_table(
        "nulabpass_audit_events",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("actor_type", sa.String(), nullable=False),
        sa.Column("actor_id", sa.String(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("commitments", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_audit_events"),
        sa.UniqueConstraint("scope", "seq", name="uq_nulabpass_audit_events_scope_seq"),
    )
    op.create_index(
        "ix_nulabpass_audit_events_scope_occurred_at",
        "nulabpass_audit_events",
        ["scope", "occurred_at"],
    )
    op.create_index(
        "ix_nulabpass_audit_events_scope_action", "nulabpass_audit_events", ["scope", "action"]
    )
    op.create_index(
        "ix_nulabpass_audit_events_scope_actor_id",
        "nulabpass_audit_events",
        ["scope", "actor_id"],
    )
    op.create_table(
        "nulabpass_audit_targets",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("target_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "position", name="pk_nulabpass_audit_targets"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["nulabpass_audit_events.id"],
            name="fk_nulabpass_audit_targets_event_id_nulabpass_audit_events",
        ),
    )
    op.create_index(
        "ix_nulabpass_audit_targets_scope_target_id",
        "nulabpass_audit_targets",
        ["scope", "target_id"],
    )
    op.create_table(
        "nulabpass_audit_personal",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("slot", sa.String(), nullable=False),
        sa.Column("subject_id", sa.String(), nullable=False),
        sa.Column("salt", sa.String(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "slot", name="pk_nulabpass_audit_personal"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["nulabpass_audit_events.id"],
            name="fk_nulabpass_audit_personal_event_id_nulabpass_audit_events",
        ),
    )
    op.create_index(
        "ix_nulabpass_audit_personal_subject_id", "nulabpass_audit_personal", ["subject_id"]
    )
    op.create_table(
        "nulabpass_audit_failure_counters",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_nulabpass_audit_failure_counters"),
    )
    op.create_table(
        "nulabpass_outbox",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nulabpass_outbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_nulabpass_outbox_idempotency_key"),
    )
    op.create_index(
        "ix_nulabpass_outbox_dispatched_at_next_attempt_at",
        "nulabpass_outbox",
        ["dispatched_at", "next_attempt_at"],
    )

    op.create_table(
        "nulabpass_plans",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("trial_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("plan_name", sa.String(), nullable=True),
        sa.Column("seats", sa.Integer(), nullable=True),
        sa.Column("paid_starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_effective_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspended_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name="pk_nulabpass_plans"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_plans_org_id_nulabpass_organizations",
        ),
    )
    op.create_index("ix_nulabpass_plans_next_due_at", "nulabpass_plans", ["next_due_at"])
    op.create_table(
        "nulabpass_plan_notices",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "key", name="pk_nulabpass_plan_notices"),
    )
    op.create_table(
        "nulabpass_billing_events",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_nulabpass_billing_events"),
    )
    op.create_index(
        "ix_nulabpass_billing_events_org_id_outcome_occurred_at",
        "nulabpass_billing_events",
        ["org_id", "outcome", "occurred_at"],
    )
    op.create_table(
        "nulabpass_withdrawn_privileges",
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "account_id", name="pk_nulabpass_withdrawn_privileges"),
    )


def downgrade() -> None:
    """Drop every nulabpass table, dependents first."""
    for table in (
        "nulabpass_withdrawn_privileges",
        "nulabpass_billing_events",
        "nulabpass_plan_notices",
        "nulabpass_plans",
        "nulabpass_outbox",
        "nulabpass_audit_failure_counters",
        "nulabpass_audit_personal",
        "nulabpass_audit_targets",
        "nulabpass_audit_events",
        "nulabpass_domains",
        "nulabpass_conversions",
        "nulabpass_invitations",
        "nulabpass_team_members",
        "nulabpass_teams",
        "nulabpass_memberships",
        "nulabpass_accounts",
        "nulabpass_organizations",
    ):
        op.drop_table(table)
